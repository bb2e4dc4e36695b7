"""Tasks: records per split plus how each record becomes a prompt, a target, options and labels.

A task knows nothing of models or adapters. ``build_task`` maps a ``task`` config node to one.
Two record formats: ScienceQA's (question, choices, answer index, hint: ``demo`` and
``scienceqa``) and LLM-Adapters' instructions (the commonsense tasks).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loralab.data.commonsense import COMMONSENSE_TASKS, MIX, load_commonsense
from loralab.data.prompts import LETTERS, instruction_prompt, scienceqa_prompt, scienceqa_target
from loralab.evaluation.parsing import parse_commonsense, parse_scienceqa

SPLITS = ("train", "validation", "test")
TASK_NAMES = ("demo", "scienceqa", MIX, *COMMONSENSE_TASKS)


@dataclass
class MultipleChoiceTask:
    """Records in the ScienceQA schema; options are labelled A, B, C, ..."""

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

    def option_labels(self, record: Mapping[str, Any]) -> list[str]:
        return list(LETTERS[: len(record["choices"])])

    def parse(self, record: Mapping[str, Any], text: str) -> str | None:
        """The label a generated ``text`` answers with, or None when it does not parse."""
        return parse_scienceqa(text)

    def groups(self, record: Mapping[str, Any]) -> dict[str, str]:
        """What the final table breaks accuracy down by."""
        return {key: record[key] for key in ("subject", "grade") if record.get(key)}


@dataclass
class InstructionTask(MultipleChoiceTask):
    """LLM-Adapters records: the options are the answer words (``answer1``, ``true``, ...)."""

    def prompt(self, record: Mapping[str, Any]) -> str:
        return instruction_prompt(record)

    def target(self, record: Mapping[str, Any]) -> str:
        return record["output"]

    def option_targets(self, record: Mapping[str, Any]) -> list[str]:
        before, _, after = record["output"].rpartition(record["answer"])
        return [before + word + after for word in record["choices"]]

    def gold_index(self, record: Mapping[str, Any]) -> int:
        return record["choices"].index(record["answer"])

    def option_labels(self, record: Mapping[str, Any]) -> list[str]:
        return list(record["choices"])

    def parse(self, record: Mapping[str, Any], text: str) -> str | None:
        return parse_commonsense(text, record["answer"])

    def groups(self, record: Mapping[str, Any]) -> dict[str, str]:
        return {"task": record["task"]}


def build_task(task_cfg: Mapping[str, Any], splits: tuple[str, ...] = SPLITS) -> MultipleChoiceTask:
    """The task named by ``task.name`` with the requested splits, each capped at
    ``task.max_examples``."""
    errors = task_config_errors(task_cfg)
    if errors:
        raise ValueError("; ".join(errors))
    name = task_cfg["name"]
    if name == "demo":
        from loralab.data.demo import generate_demo_quiz

        sizes, seed = task_cfg["max_examples"], int(task_cfg["seed"])
        return MultipleChoiceTask(
            name, {s: generate_demo_quiz(s, int(sizes[s]), seed=seed) for s in splits}
        )
    if name == "scienceqa":
        from loralab.data.scienceqa import load_scienceqa

        return MultipleChoiceTask(name, load_scienceqa(task_cfg, splits))
    return InstructionTask(name, load_commonsense(task_cfg, splits))


def task_config_errors(task_cfg: Mapping[str, Any]) -> list[str]:
    """Every problem with a ``task`` config node, each naming its key (empty when valid)."""
    name = task_cfg.get("name")
    if name not in TASK_NAMES:
        return [f"task.name={name!r} must be one of {list(TASK_NAMES)}"]
    errors = []
    source = task_cfg.get("source")
    if isinstance(source, Mapping):
        if name != "scienceqa":
            errors.append(
                f"task.source: a split -> source mapping is read for scienceqa only; give "
                f"{name} one source (a Hub id or a folder of per-split files)"
            )
        unknown = sorted(set(source) - set(SPLITS))
        if unknown:
            errors.append(
                f"task.source has splits {unknown}; name train, validation or test, e.g. "
                "task.source={train: a.jsonl, test: b.jsonl}"
            )
        for split, listed in source.items():
            entries = [listed] if isinstance(listed, str) else listed
            if not isinstance(entries, list | tuple) or not all(
                isinstance(e, str) and e for e in entries
            ):
                errors.append(
                    f"task.source.{split}={listed!r} must be a source (a Hub id or a local "
                    "path) or a list of them"
                )
    elif not source:
        errors.append("task.source must name a Hub dataset id or a local path")
    caps = task_cfg.get("max_examples") or {}
    for split in SPLITS:
        cap = caps.get(split)
        if split not in caps or (cap is not None and (not isinstance(cap, int) or cap < 0)):
            errors.append(f"task.max_examples.{split}={cap!r} must be null or an integer >= 0")
    if name == "demo" and any(caps.get(s) is None for s in SPLITS):
        errors.append("task.max_examples: the generated demo task needs a size for every split")
    seed = task_cfg.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        errors.append(f"task.seed={seed!r} must be an integer >= 0")
    if name == "scienceqa" and not isinstance(task_cfg.get("text_only"), bool):
        errors.append(f"task.text_only={task_cfg.get('text_only')!r} must be true or false")
    if name == MIX and "train_source" not in task_cfg:
        errors.append(
            "task.train_source is missing (the training mix; null = the tasks' train files)"
        )
    return errors
