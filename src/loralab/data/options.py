"""Options scored whole (``task.answer_form=text``, cloze mode): each option's context and its
own tokens kept apart, and a batch that holds each distinct context once.

All options of a question continue the same prompt, so scoring encodes that prompt once and
continues every option from it (`evaluation/likelihood.py`) instead of re-encoding it per
option. The split is the one `encode_continuation` made (context ids, then the option's own
ids): re-tokenising the prompt or the option could merge tokens across the boundary and score
other tokens. An over-long prompt is cut to leave room for each option, so the options of one
question may have different contexts; each distinct context is a context row of the batch.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from loralab.data.encoding import IGNORE_INDEX, encode_continuation


class Option(NamedTuple):
    """One option: the ids it is scored after, its own ids (the scored tokens), and its text's
    length in UTF-8 bytes and in characters (lm-eval's ``acc_norm`` divides by the latter).
    Both lengths leave out the text's leading space: lm-eval adds that space (its target
    delimiter) to the scored continuation but measures the option without it."""

    context: tuple[int, ...]
    tokens: tuple[int, ...]
    n_bytes: int
    n_chars: int


def encode_option(tokenizer, prompt: str, text: str, max_length: int) -> Option:
    """``text`` as scored after ``prompt``: `encode_continuation`'s ids, split where the
    option's labelled ids begin."""
    encoded = encode_continuation(tokenizer, prompt, text, max_length)
    start = len(encoded.labels) - sum(label != IGNORE_INDEX for label in encoded.labels)
    ids = encoded.input_ids
    measured = text.removeprefix(" ")
    return Option(
        tuple(ids[:start]), tuple(ids[start:]), len(measured.encode("utf-8")), len(measured)
    )


def option_batch(questions: list[tuple[Option, ...]], pad_id: int) -> dict[str, torch.Tensor]:
    """The options of ``questions`` as tensors: ``context_input_ids`` /
    ``context_attention_mask`` (C, P), each distinct context once, right-padded;
    ``option_input_ids`` / ``option_attention_mask`` (O, L), each option's own tokens,
    right-padded; per option ``option_context`` (its context row), ``option_row`` (its
    question), ``option_index`` (its place among that question's options),
    ``option_bytes`` and ``option_chars``."""
    contexts: dict[tuple[int, ...], int] = {}
    options = [(row, i, o) for row, opts in enumerate(questions) for i, o in enumerate(opts)]
    context_of = [contexts.setdefault(o.context, len(contexts)) for _, _, o in options]
    context_ids, context_mask = _padded(list(contexts), pad_id)
    option_ids, option_mask = _padded([o.tokens for _, _, o in options], pad_id)
    return {
        "context_input_ids": context_ids,
        "context_attention_mask": context_mask,
        "option_input_ids": option_ids,
        "option_attention_mask": option_mask,
        "option_context": torch.tensor(context_of),
        "option_row": torch.tensor([row for row, _, _ in options]),
        "option_index": torch.tensor([i for _, i, _ in options]),
        "option_bytes": torch.tensor([o.n_bytes for _, _, o in options]),
        "option_chars": torch.tensor([o.n_chars for _, _, o in options]),
    }


def _padded(rows: list[tuple[int, ...]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[r, : len(row)] = 1
    return ids, mask
