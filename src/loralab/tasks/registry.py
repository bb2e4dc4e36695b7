"""Task names -> how to build them: the built-in tasks and any a user registers.

`build_task` turns a `task` config node into a `Task` (in the answer form `task.answer_form`
names); `task_config_errors` checks the keys every task shares (source, max_examples, seed,
answer_form) and then the task's own. A user's task module
calls `register_task` when imported (`plugins: [my_tasks]` in the config imports it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from loralab.tasks.base import Task
from loralab.tasks.sources import TEST_TAKES
from loralab.tasks.text_answers import ANSWER_FORMS, with_answer_form
from loralab.values import is_integer

SPLITS = ("train", "validation", "test")

Builder = Callable[[Mapping[str, Any], tuple[str, ...]], Task]
ConfigCheck = Callable[[Mapping[str, Any]], list[str]]


@dataclass(frozen=True)
class TaskEntry:
    build: Builder  # (task config, splits) -> Task with those splits, each capped
    config_errors: ConfigCheck | None = None  # the task's own keys; [] when valid
    split_sources: bool = False  # task.source may map splits to sources


TASKS: dict[str, TaskEntry] = {}
BUILT_IN: set[str] = set()  # filled by loralab.tasks; register_task refuses these names


def register_task(
    name: str,
    build: Builder,
    config_errors: ConfigCheck | None = None,
    split_sources: bool = False,
) -> None:
    """Make `task.name=<name>` build tasks with `build(task_cfg, splits)`."""
    if name in BUILT_IN:
        raise ValueError(f"task {name!r} is built in; register under another name")
    TASKS[name] = TaskEntry(build, config_errors, split_sources)


def build_task(task_cfg: Mapping[str, Any], splits: tuple[str, ...] = SPLITS) -> Task:
    """The task named by ``task.name`` with the requested splits, each capped at
    ``task.max_examples``."""
    errors = task_config_errors(task_cfg)
    if errors:
        raise ValueError("; ".join(errors))
    task = TASKS[task_cfg["name"]].build(task_cfg, splits)
    return with_answer_form(task, task_cfg.get("answer_form", "label"))


def task_config_errors(task_cfg: Mapping[str, Any]) -> list[str]:
    """Every problem with a ``task`` config node, each naming its key (empty when valid)."""
    name = task_cfg.get("name")
    if name not in TASKS:
        return [
            f"task.name={name!r} must be one of {list(TASKS)} (a task of your own: register it "
            "in a module listed in `plugins`, see docs/extending.md)"
        ]
    entry = TASKS[name]
    errors = []
    source = task_cfg.get("source")
    if isinstance(source, Mapping):
        if not entry.split_sources:
            errors.append(
                f"task.source: a split -> source mapping is not read by {name}; give it one "
                "source (a Hub id or a folder of per-split files)"
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
        if split not in caps or (cap is not None and (not is_integer(cap) or cap < 0)):
            errors.append(f"task.max_examples.{split}={cap!r} must be null or an integer >= 0")
    take = task_cfg.get("test_take", "sample")
    if take not in TEST_TAKES:
        errors.append(
            f"task.test_take={take!r} must be one of {list(TEST_TAKES)} (sample: a seeded sample "
            "of task.max_examples.test questions; first: the first N, as lm-eval's --limit)"
        )
    seed = task_cfg.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        errors.append(f"task.seed={seed!r} must be an integer >= 0")
    form = task_cfg.get("answer_form", "label")  # optional: a user's task may leave it out
    if form not in ANSWER_FORMS:
        errors.append(
            f"task.answer_form={form!r} must be one of {list(ANSWER_FORMS)} (label: the "
            "papers' format, answer with the option's label; text: answer with its text)"
        )
    if entry.config_errors is not None:
        errors.extend(entry.config_errors(task_cfg))
    return errors
