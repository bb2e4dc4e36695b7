"""lm-eval's multiple-choice metrics on hand-computed log-likelihoods: loralab's ``acc``,
``acc_norm`` and ``acc_per_token`` picks equal the definitions written out here (lm-eval's
``process_results`` for ``multiple_choice``: ``argmax(lls)`` and ``argmax(lls / len(choice))``,
the choice without the leading space lm-eval prepends as its target delimiter), in a case where
the three pick different options; their standard errors equal lm-eval's ``mean_stderr``."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from loralab.data.options import encode_option, option_batch
from loralab.evaluation.likelihood import OptionScores
from loralab.evaluation.option_metrics import METRICS, mean_stderr, option_picks
from loralab.evaluation.report import summarize, to_markdown
from loralab.models import load_model
from tests.helpers import compose_config

# (context, [(option text, summed log-likelihood, tokens)], gold). In the first question the
# sum prefers "ok" (-4.0), the sum per character "a long reply" (-6/12 = -0.5) and the mean per
# token "four" (-5/5 = -1.0): each metric picks a different option.
QUESTIONS = [
    ("Question: q1?\nAnswer:", [("ok", -4.0, 1), ("a long reply", -6.0, 4), ("four", -5.0, 5)], 1),
    ("Question: q2?\nAnswer:", [("yes", -2.0, 1), ("no", -1.5, 1)], 1),
    ("Question: q3?\nAnswer:", [("été", -3.0, 1), ("ete", -3.3, 3), ("x", -9.0, 3)], 0),
]


def lm_eval_picks(question):
    """lm-eval's definitions, written out: the argmax of the summed log-likelihoods, and of
    them divided by each choice's length in characters (no delimiter)."""
    _, options, _ = question
    lls = [ll for _, ll, _ in options]
    completion_len = [float(len(text)) for text, _, _ in options]
    per_token = [ll / tokens for _, ll, tokens in options]

    def argmax(values):
        return max(range(len(values)), key=values.__getitem__)

    return {
        "acc": argmax(lls),
        "acc_norm": argmax([ll / n for ll, n in zip(lls, completion_len, strict=True)]),
        "acc_per_token": argmax(per_token),
    }


def lm_eval_stderr(outcomes):
    """lm-eval's ``mean_stderr``: the sample standard deviation over sqrt(n)."""
    mu = sum(outcomes) / len(outcomes)
    sample_stddev = math.sqrt(sum((x - mu) ** 2 for x in outcomes) / (len(outcomes) - 1))
    return sample_stddev / math.sqrt(len(outcomes))


@pytest.fixture(scope="module")
def tokenizer():
    cfg = compose_config(["model=tiny_llama"])
    return load_model(OmegaConf.to_container(cfg, resolve=True)["model"])[1]


def scored_batch(tokenizer):
    """The questions laid out as scoring lays them out (each option's text after a space, as
    the text answer form scores it), with the hand-computed log-likelihoods and token counts."""
    encoded = [
        tuple(encode_option(tokenizer, context, " " + text, 512) for text, _, _ in options)
        for context, options, _ in QUESTIONS
    ]
    batch = option_batch(encoded, tokenizer.pad_token_id)
    options = [option for _, opts, _ in QUESTIONS for option in opts]
    scores = OptionScores(
        loglik=torch.tensor([ll for _, ll, _ in options]),
        tokens=torch.tensor([tokens for _, _, tokens in options]),
        n_bytes=batch["option_bytes"],
        n_chars=batch["option_chars"],
    )
    return batch, scores


def test_picks_equal_lm_evals_definitions(tokenizer):
    batch, scores = scored_batch(tokenizer)
    texts = [text for _, options, _ in QUESTIONS for text, _, _ in options]
    assert batch["option_chars"].tolist() == [len(text) for text in texts]  # no leading space
    assert batch["option_bytes"].tolist()[5] == len("été".encode()) == 5  # bytes differ
    picks = {metric: values.tolist() for metric, values in option_picks(scores, batch).items()}
    expected = [lm_eval_picks(question) for question in QUESTIONS]
    for metric in METRICS:
        assert picks[metric] == [e[metric] for e in expected], metric
    assert expected[0] == {"acc": 0, "acc_norm": 1, "acc_per_token": 2}  # all three differ


def test_summary_reports_each_metric_with_lm_evals_stderr(tokenizer):
    batch, scores = scored_batch(tokenizer)
    picks = {metric: values.tolist() for metric, values in option_picks(scores, batch).items()}
    results = []
    for i, (_, options, gold) in enumerate(QUESTIONS * 3):
        pick = {metric: picks[metric][i % len(QUESTIONS)] for metric in METRICS}
        labels = "ABC"[: len(options)]
        prediction = labels[pick["acc"]]
        results.append(
            {
                "gold": labels[gold],
                "gold_index": gold,
                "prediction": prediction,
                "correct": prediction == labels[gold],
                "picks": pick,
            }
        )
    overall = summarize(results)["overall"]
    for metric in METRICS:
        outcomes = [float(r["picks"][metric] == r["gold_index"]) for r in results]
        assert overall[metric] == pytest.approx(sum(outcomes) / len(outcomes))
        assert overall[f"{metric}_stderr"] == pytest.approx(lm_eval_stderr(outcomes))
    assert overall["accuracy"] == overall["acc"] == overall["acc_norm"] == pytest.approx(2 / 3)
    assert overall["acc_per_token"] == pytest.approx(1 / 3)
    table = to_markdown(summarize(results), "t")
    assert "| group | n | acc | acc_norm | acc_per_token | unparsable |" in table
    se = [f"{100 * lm_eval_stderr(hits * 3):.1f}" for hits in ([0, 1, 1], [0, 1, 0])]
    assert f"| overall | 9 | 66.7% ± {se[0]} | 66.7% ± {se[0]} | 33.3% ± {se[1]} | 0 |" in table


def test_stderr_formula():
    assert mean_stderr([True] * 3 + [False] * 7) == pytest.approx(math.sqrt(0.3 * 0.7 / 9))
    assert mean_stderr([True]) is None and mean_stderr([True, True]) == 0.0


def test_task_mean_of_each_metric_is_the_plain_mean_of_tasks():
    def result(task, acc, acc_norm):
        picks = {"acc": int(not acc), "acc_norm": int(not acc_norm), "acc_per_token": 0}
        row = {"gold": "A", "gold_index": 0, "prediction": "A", "correct": True, "task": task}
        return row | {"picks": picks}

    results = [result("boolq", True, False)] * 3 + [result("piqa", False, True)]
    summary = summarize(results)
    assert summary["task_mean_acc"] == 0.5 and summary["task_mean_acc_norm"] == 0.5  # not 3/4
    assert summary["task_mean_acc_per_token"] == summary["task_mean"] == 1.0
    assert "| mean of tasks | | 50.0% | 50.0% | 100.0% | |" in to_markdown(summary, "t")
