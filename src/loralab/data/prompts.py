"""Prompt and answer templates of the papers: the Alpaca template around ScienceQA's CQM-A
format (SPEC §4) and around LLM-Adapters' commonsense instructions (SPEC §5).

LLM-Adapters / MoSLoRA build the same Alpaca prompt inside an indented triple-quoted string, so
their prompts carry the code's indentation and differ in trailing spaces between training and
evaluation; we use the clean template, identical in training and evaluation.
"""

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
ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
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


def instruction_prompt(record: Mapping[str, Any]) -> str:
    """An LLM-Adapters record's ``instruction`` (and ``input``, if any) in the Alpaca template."""
    if record.get("input"):
        return ALPACA_WITH_INPUT.format(instruction=record["instruction"], input=record["input"])
    return ALPACA_NO_INPUT.format(instruction=record["instruction"])
