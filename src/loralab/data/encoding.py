"""Tokenisation with correct label masking, and padding collators.

Two target layouts (``data.target_layout``); loss is taken on the labelled positions only:

- ``loralab`` (default): the answer is encoded without special tokens (no BOS inside the
  labels) and ends with EOS, which is trained. An over-long example is cut from the context
  side (the start of the prompt), never the answer.
- ``reference``: what the paper's reference code (dataset.py) computes. Prompt and answer are
  tokenised together with the tokenizer's special tokens; the answer is tokenised again on its
  own, also with special tokens, and aligned with the end of the sequence as the labels: a
  tokenizer that adds BOS (Llama 3) makes BOS a target (predicted before the last prompt
  token), EOS is never a target, and an over-long example is cut on the right, so its answer
  is cut away and the labels then sit on prompt positions. Use it to reproduce the paper's
  loss values; loralab's layout trains what generation needs (stopping at EOS).

With ``overflow="drop"`` an over-long example is dropped instead, and the caller counts it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from loralab.tasks.base import DataError

IGNORE_INDEX = -100
OVERFLOW_MODES = ("truncate", "drop")
TARGET_LAYOUTS = ("loralab", "reference")


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool


def encode_prompt(tokenizer, prompt: str) -> tuple[list[int], int]:
    """Prompt ids (with the tokenizer's own BOS, if it adds one) and how many lead special ids."""
    ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    plain = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    lead = len(ids) - len(plain) if ids[len(ids) - len(plain) :] == plain else 0
    return ids, lead


def fit_prompt(prompt_ids: list[int], lead: int, room: int) -> list[int] | None:
    """Cut the prompt to ``room`` ids from the context side, keeping lead special tokens."""
    if len(prompt_ids) <= room:
        return prompt_ids
    if room <= lead:
        return None
    return prompt_ids[:lead] + prompt_ids[len(prompt_ids) - (room - lead) :]


def encode_example(
    tokenizer,
    prompt: str,
    target: str,
    max_length: int,
    overflow: str = "truncate",
    layout: str = "loralab",
) -> Encoded | None:
    """Ids and labels for one (prompt, target) pair, or None when it must be dropped."""
    if layout == "reference":
        return _encode_as_reference(tokenizer, prompt, target, max_length, overflow)
    if layout != "loralab":
        raise ValueError(f"data.target_layout={layout!r} must be one of {list(TARGET_LAYOUTS)}")
    prompt_ids, lead = encode_prompt(tokenizer, prompt)
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    target_ids = target_ids + [tokenizer.eos_token_id]
    room = max_length - len(target_ids)
    fitted = fit_prompt(prompt_ids, lead, room)
    truncated = fitted is not prompt_ids
    if fitted is None or (truncated and overflow == "drop"):
        return None
    return Encoded(fitted + target_ids, [IGNORE_INDEX] * len(fitted) + target_ids, truncated)


def _encode_as_reference(tokenizer, prompt, target, max_length, overflow) -> Encoded | None:
    ids = tokenizer(prompt + target, add_special_tokens=True)["input_ids"]
    answer = tokenizer(target, add_special_tokens=True)["input_ids"]
    truncated = len(ids) > max_length
    if truncated and overflow == "drop":
        return None
    ids = ids[:max_length]  # the reference's tokenizer(truncation=True): cut on the right
    answer = answer[max(0, len(answer) - len(ids)) :]
    return Encoded(ids, [IGNORE_INDEX] * (len(ids) - len(answer)) + answer, truncated)


def encode_continuation(tokenizer, context: str, continuation: str, max_length: int) -> Encoded:
    """Context ids (cut on the context side to fit) followed by ``continuation``'s ids, which
    alone are labels and are never cut: how a whole option's text is scored after its context
    (cloze mode, ``task.answer_form=text``). No EOS: the option's own tokens are what counts."""
    context_ids, lead = encode_prompt(tokenizer, context)
    option_ids = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    fitted = fit_prompt(context_ids, lead, max(max_length - len(option_ids), lead + 1))
    labels = [IGNORE_INDEX] * len(fitted) + option_ids
    return Encoded(fitted + option_ids, labels, truncated=fitted is not context_ids)


def answer_lead(tokenizer, target: str, layout: str) -> int:
    """How many special tokens precede the answer's own tokens in the labels (the reference
    layout's BOS), so that positions counted within the answer text line up with the labels."""
    return encode_prompt(tokenizer, target)[1] if layout == "reference" else 0


def pad_right(batch: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded training batch: input_ids, attention_mask, labels."""
    width = max(len(item.input_ids) for item in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, item in enumerate(batch):
        n = len(item.input_ids)
        ids[row, :n] = torch.tensor(item.input_ids)
        labels[row, :n] = torch.tensor(item.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def pad_left(batch: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-padded prompts for generation (input_ids, attention_mask): every row ends where
    generation starts, so new tokens line up across the batch."""
    width = max(len(ids) for ids in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, item in enumerate(batch):
        ids[row, width - len(item) :] = torch.tensor(item, dtype=torch.long)
        mask[row, width - len(item) :] = 1
    return {"input_ids": ids, "attention_mask": mask}


def option_tokens(tokenizer, option_targets: list[str]) -> tuple[int, list[int]]:
    """``(offset, token_ids)``: where in the answer the options part ways, and their tokens.

    Options that do not part ways at one token each (the tokenizer splits them alike) are a
    `DataError`: score mode cannot tell them apart, so the run stops with the fix."""
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in option_targets]
    offset = 0
    while all(len(ids) > offset for ids in encoded) and len({ids[offset] for ids in encoded}) == 1:
        offset += 1
    firsts = [ids[offset] if len(ids) > offset else None for ids in encoded]
    if None in firsts or len(set(firsts)) != len(firsts):
        raise DataError(
            f"options {option_targets!r} do not differ at one token after their shared prefix; "
            "score mode needs distinct first answer tokens (use generate mode for this task)"
        )
    return offset, firsts
