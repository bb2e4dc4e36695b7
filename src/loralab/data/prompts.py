"""Prompt and answer templates of the papers (SPEC §4): ScienceQA's CQM-A format in Alpaca."""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

LETTERS = string.ascii_uppercase

ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)


def scienceqa_prompt(record: Mapping[str, Any]) -> str:
    """``Context / Question / Options`` inside the Alpaca no-input template."""
    hint = (record.get("hint") or "").strip() or "N/A"
    options = " ".join(f"({LETTERS[i]}) {choice}" for i, choice in enumerate(record["choices"]))
    instruction = f"Context: {hint}\nQuestion: {record['question']}\nOptions: {options}\n"
    return ALPACA_NO_INPUT.format(instruction=instruction)


def scienceqa_target(answer_index: int) -> str:
    """The trained and parsed answer string, e.g. ``Answer: The answer is B.``."""
    return f"Answer: The answer is {LETTERS[answer_index]}."
