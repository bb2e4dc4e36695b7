"""Tasks: records per split plus how each record becomes a prompt, a target and options.

A task knows nothing of models or adapters. ``build_task`` maps a ``task`` config node to one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loralab.data.prompts import scienceqa_prompt, scienceqa_target

SPLITS = ("train", "validation", "test")
TASK_NAMES = ("demo",)


@dataclass
class MultipleChoiceTask:
    """Records in the ScienceQA schema (question, choices, answer index, hint)."""

    name: str
    splits: dict[str, list[dict]] = field(repr=False)

    def prompt(self, record: Mapping[str, Any]) -> str:
        return scienceqa_prompt(record)

    def target(self, record: Mapping[str, Any]) -> str:
        return scienceqa_target(record["answer"])

    def option_targets(self, record: Mapping[str, Any]) -> list[str]:
        return [scienceqa_target(i) for i in range(len(record["choices"]))]

    def gold_index(self, record: Mapping[str, Any]) -> int:
        return int(record["answer"])


def build_task(task_cfg: Mapping[str, Any]) -> MultipleChoiceTask:
    """The task named by ``task.name``, with each split capped at ``task.max_examples``."""
    name = task_cfg["name"]
    sizes = task_cfg["max_examples"]
    if name == "demo":
        from loralab.data.demo import generate_demo_quiz

        seed = int(task_cfg["seed"])
        splits = {s: generate_demo_quiz(s, int(sizes[s]), seed=seed) for s in SPLITS}
        return MultipleChoiceTask(name, splits)
    raise ValueError(f"task.name={name!r} is unknown; available: {list(TASK_NAMES)}")
