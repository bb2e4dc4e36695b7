"""The field's multiple-choice metrics, named as lm-evaluation-harness names them, and their
standard error over questions.

Options scored whole have three reasonable picks, and they disagree often enough (on ARC-Easy,
on two questions of five) that a figure must say which one it is:

- ``acc``: the highest summed log-likelihood (lm-eval's ``acc``);
- ``acc_norm``: the highest summed log-likelihood per character of the option's text (lm-eval's
  ``acc_norm``; the leading space lm-eval adds as its target delimiter is not counted);
- ``acc_per_token``: the highest mean log-probability per token (loralab's whole-option figure
  before these were reported, and still what training logs as its accuracy).

The standard error is lm-eval's for a mean: the sample standard deviation of the per-question
0/1 outcomes over the square root of their count, i.e. sqrt(p(1-p)/(n-1)).
"""

from __future__ import annotations

import math

import torch

from loralab.evaluation.likelihood import OptionScores
from loralab.evaluation.scoring import best_options

METRICS = ("acc", "acc_norm", "acc_per_token")


def option_picks(scores: OptionScores, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per metric, each question's picked option (``batch`` as `data.options.option_batch`
    lays it out)."""
    values = {
        "acc": scores.loglik,
        "acc_norm": scores.loglik / scores.n_chars.clamp(min=1),
        "acc_per_token": scores.loglik / scores.tokens,
    }
    return {metric: best_options(values[metric].float(), batch) for metric in METRICS}


def option_tables(scores: OptionScores, batch: dict[str, torch.Tensor]) -> list[list[dict]]:
    """Per question of ``batch``, its options in order, each with what its picks are made
    from: summed log-likelihood, tokens, characters and UTF-8 bytes (predictions.jsonl)."""
    columns = [
        scores.loglik.tolist(),
        scores.tokens.tolist(),
        scores.n_chars.tolist(),
        scores.n_bytes.tolist(),
        batch["option_row"].tolist(),
        batch["option_index"].tolist(),
    ]
    questions: dict[int, dict[int, dict]] = {}
    for loglik, tokens, chars, n_bytes, row, index in zip(*columns, strict=True):
        option = {"loglik": loglik, "tokens": tokens, "chars": chars, "bytes": n_bytes}
        questions.setdefault(row, {})[index] = option
    return [[options[i] for i in sorted(options)] for _, options in sorted(questions.items())]


def mean_stderr(outcomes: list[bool]) -> float | None:
    """The standard error of the mean of 0/1 ``outcomes`` (None below two: undefined)."""
    n = len(outcomes)
    if n < 2:
        return None
    p = sum(outcomes) / n
    return math.sqrt(p * (1 - p) / (n - 1))
