"""The Alpaca prompt template, which both papers wrap their tasks in (docs/methods.md, "Setup of
Sun et al." and "Setup of MoSLoRA").

LLM-Adapters / MoSLoRA build the same Alpaca prompt inside an indented triple-quoted string, so
their prompts carry the code's indentation and differ in trailing spaces between training and
evaluation; loralab uses the clean template, identical in training and evaluation.
"""

from __future__ import annotations

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


def alpaca_prompt(instruction: str, input: str | None = None) -> str:
    """`instruction` (and `input`, if any) in the Alpaca template."""
    if input:
        return ALPACA_WITH_INPUT.format(instruction=instruction, input=input)
    return ALPACA_NO_INPUT.format(instruction=instruction)
