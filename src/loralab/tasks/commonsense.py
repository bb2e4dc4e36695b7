"""The eight commonsense-reasoning tasks in LLM-Adapters' instruction format, singly or as the mix.

This file owns the tasks: the loader, the instruction prompt in the Alpaca template
(docs/methods.md, "Setup of MoSLoRA") and the reference's answer parser (LLM-Adapters / MoSLoRA
``extract_answer``: the first occurrence, anywhere in the output and case-sensitive, of any word
of the task's answer vocabulary; no occurrence is wrong).

A record is ``{"instruction", "input", "output", "answer"}``; the instruction ends with a line
``Answer format: answer1/answer2/...`` that lists the task's answer words (the choices), and
``output`` is the trained target, e.g. ``the correct answer is answer2``.

Layout: ``task.source`` is a root holding one folder per task (``boolq``, ``piqa``,
``social_i_qa``, ``hellaswag``, ``winogrande``, ``ARC-Easy``, ``ARC-Challenge``, ``openbookqa``)
with ``train`` / ``test`` files, as LLM-Adapters' ``dataset/`` folder and
``../shared/data/commonsense`` are laid out; any :mod:`loralab.tasks.sources` source works as root.
The mix (``task=commonsense``) trains on ``task.train_source`` (the 170k mix, e.g. the Hub's
``zwhe99/commonsense_170k``; null = the union of the eight tasks' train files) and tests on all
eight test sets, each record tagged with its task.

None of these sources has a validation split, so one is held out of train, deterministically
for ``task.seed``: ``max_examples.validation`` records (null: 120, MoSLoRA's ``val_set_size``),
which then leave train. A source with its own validation file uses that instead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from functools import partial
from typing import Any

from loralab.tasks.alpaca import alpaca_prompt
from loralab.tasks.base import Task
from loralab.tasks.sources import (
    SplitData,
    first_of_test,
    hold_out,
    load_source,
    materialise,
    record_error,
    sample_indices,
)

log = logging.getLogger(__name__)

FOLDERS = {
    "boolq": "boolq",
    "piqa": "piqa",
    "siqa": "social_i_qa",
    "hellaswag": "hellaswag",
    "winogrande": "winogrande",
    "arc_e": "ARC-Easy",
    "arc_c": "ARC-Challenge",
    "obqa": "openbookqa",
}
COMMONSENSE_TASKS = tuple(FOLDERS)
MIX = "commonsense"
DEFAULT_HELD_OUT = 120
FORMAT_MARKER = "Answer format:"
REQUIRED = ("instruction", "output", "answer")

# Per answer family, the words the reference searches for, in the reference's order.
VOCABULARIES = {
    "true": ("true", "false"),
    "false": ("true", "false"),
    "solution": ("solution1", "solution2"),
    "answer": ("answer1", "answer2", "answer3", "answer4", "answer5"),
    "ending": ("ending1", "ending2", "ending3", "ending4"),
    "option": ("option1", "option2"),
}


def instruction_prompt(record: Mapping[str, Any]) -> str:
    """A record's ``instruction`` (and ``input``, if any) in the Alpaca template."""
    return alpaca_prompt(record["instruction"], record.get("input"))


def answer_family(word: str) -> str:
    """``answer3`` -> ``answer``; ``true`` -> ``true``."""
    return word.rstrip("0123456789")


def parse_commonsense(text: str, gold_word: str) -> str | None:
    """The first word of ``gold_word``'s vocabulary found in ``text``, or None."""
    words = VOCABULARIES[answer_family(gold_word)]
    found = re.search("|".join(map(re.escape, words)), text.strip())
    return found.group(0) if found else None


class CommonsenseTask(Task):
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

    def cloze(self, record: Mapping[str, Any]) -> tuple[str, list[str]]:
        return cloze_form(record)

    def groups(self, record: Mapping[str, Any]) -> dict[str, str]:
        return {"task": record["task"]}


# Where a task lists its options, the instruction reads "<request>: <question> Answer1: <text>
# Answer2: <text> ... Answer format: ..." (Solution1, Option1, Ending1 in others; the separators
# vary between spaces and blank lines).
LISTED_OPTION = re.compile(r"\s(?:Answer|Solution|Option|Ending)(\d+): ")


def cloze_form(record: Mapping[str, Any]) -> tuple[str, list[str]]:
    """``Question: <question>\\nAnswer:`` and the option texts listed in the instruction, or the
    answer words themselves where none are listed (BoolQ: true/false)."""
    body = record["instruction"].rpartition(FORMAT_MARKER)[0]
    request, *listed = LISTED_OPTION.split(body)  # request, "1", text1, "2", text2, ...
    numbers, texts = listed[0::2], [text.strip() for text in listed[1::2]]
    choices = record["choices"]
    if not texts:
        texts = list(choices)
    elif numbers != [str(i) for i in range(1, len(choices) + 1)]:
        raise ValueError(
            f"record {record.get('id')!r}: its instruction lists options {numbers} for the "
            f"answer words {choices}; cloze mode needs one text per answer word"
        )
    question = request.split(": ", 1)[-1].strip()
    return f"Question: {question}\nAnswer:", texts


def build(task_cfg: Mapping[str, Any], splits: tuple[str, ...]) -> CommonsenseTask:
    return CommonsenseTask(task_cfg["name"], load_commonsense(task_cfg, splits))


def config_errors(task_cfg: Mapping[str, Any]) -> list[str]:
    """The mix's own key (the shared ones are checked by the registry)."""
    if task_cfg.get("name") == MIX and "train_source" not in task_cfg:
        return ["task.train_source is missing (the training mix; null = the tasks' train files)"]
    return []


def load_commonsense(task_cfg: Mapping[str, Any], splits: tuple[str, ...]) -> dict[str, list[dict]]:
    """Normalised records per split; the mix's test split holds every member task's test set."""
    name = task_cfg["name"]
    caps, seed = task_cfg["max_examples"], task_cfg["seed"]
    members = COMMONSENSE_TASKS if name == MIX else (name,)
    sources = {}

    def member(task: str) -> dict[str, SplitData]:
        if task not in sources:
            sources[task] = load_source(str(task_cfg["source"]), FOLDERS[task])
        return sources[task]

    records: dict[str, list[dict]] = {}
    if "test" in splits:
        records["test"] = []
        for task in members:
            test = member(task).get("test")
            if test is None:
                log.warning("%s: no test split under %s", task, task_cfg["source"])
                continue
            first = first_of_test(task_cfg, "test")
            indices = sample_indices(range(len(test.rows)), caps["test"], f"{seed}/test", first)
            records["test"] += materialise(test, indices, partial(normalise_record, task=task))
    if {"train", "validation"} & set(splits):
        if name == MIX and task_cfg["train_source"]:
            trains = [(MIX, load_source(str(task_cfg["train_source"])))]
        else:
            trains = [(task, member(task)) for task in members]
        train, validation = _train_and_validation(trains, task_cfg)
        records.update(
            {s: r for s, r in (("train", train), ("validation", validation)) if s in splits}
        )
    return records


def _train_and_validation(sources, task_cfg) -> tuple[list[dict], list[dict]]:
    """Train records of every source that has them, and validation records: the source's own
    validation split if it has one, else a held-out sample of its train split. Caps are shared
    among sources in proportion to their size."""
    caps, seed = task_cfg["max_examples"], task_cfg["seed"]
    present = [(task, data) for task, data in sources if "train" in data]
    missing = [task for task, data in sources if "train" not in data]
    if missing:
        log.warning("%s: no train split for %s", task_cfg["name"], ", ".join(missing))
    total = sum(len(data["train"].rows) for _, data in present)
    to_hold_out = DEFAULT_HELD_OUT if caps["validation"] is None else caps["validation"]
    train, validation = [], []
    for task, data in present:
        normalise, size = partial(normalise_record, task=task), len(data["train"].rows)
        rest = list(range(size))
        if "validation" in data:
            given = data["validation"]
            cap = _share(caps["validation"], size, total)
            held = sample_indices(list(range(len(given.rows))), cap, f"{seed}/validation/{task}")
            validation += materialise(given, held, normalise)
        else:
            n = _share(to_hold_out, size, total)
            held, rest = hold_out(rest, n, f"{seed}/validation/{task}")
            validation += materialise(data["train"], held, normalise)
        rest = sample_indices(rest, _share(caps["train"], size, total), f"{seed}/train/{task}")
        train += materialise(data["train"], rest, normalise)
    return train, validation


def _share(cap: int | None, size: int, total: int) -> int | None:
    """A source's part of a cap shared among sources in proportion to their size."""
    return None if cap is None else round(cap * size / total)


def normalise_record(row: Mapping[str, Any], origin: str, index: int, task: str) -> dict:
    """Check one record; ``choices`` are the answer words its instruction lists."""
    for field in REQUIRED:
        if row.get(field) is None:
            raise record_error(origin, index, f"missing field {field!r}")
        if not isinstance(row[field], str):
            raise record_error(origin, index, f"field {field!r}={row[field]!r:.80} is not text")
    if not isinstance(row.get("input"), str | None):
        raise record_error(
            origin, index, f"field 'input'={row['input']!r:.80} is not text (a string, or null)"
        )
    choices = answer_words(row["instruction"])
    if not choices:
        raise record_error(
            origin,
            index,
            f"field 'instruction' lists no choices (no '{FORMAT_MARKER} a/b/...' line)",
        )
    answer = row["answer"]
    if answer not in choices:
        raise record_error(
            origin, index, f"field 'answer'={answer!r} is not among the choices {choices}"
        )
    if answer_family(answer) not in VOCABULARIES:
        raise record_error(
            origin,
            index,
            f"field 'answer'={answer!r} is in no known answer vocabulary ({sorted(VOCABULARIES)})",
        )
    words = VOCABULARIES[answer_family(answer)]
    if len(choices) < 2 or len(set(choices)) < len(choices) or not set(choices) <= set(words):
        raise record_error(  # options must differ in a word the answer parser knows
            origin,
            index,
            f"field 'instruction' lists the answer words {choices!r:.80}; list two or more "
            f"different words of {list(words)}",
        )
    if answer not in row["output"]:
        raise record_error(
            origin, index, f"field 'output'={row['output']!r:.80} does not name the answer"
        )
    return {
        "instruction": row["instruction"],
        "input": row.get("input") or "",
        "output": row["output"],
        "answer": answer,
        "choices": choices,
        "task": task,
        "id": f"{task}-{index}",
    }


def answer_words(instruction: str) -> list[str]:
    """The words after the last ``Answer format:`` marker, e.g. ``['true', 'false']``."""
    _, marker, tail = instruction.rpartition(FORMAT_MARKER)
    words = tail.split()
    return [w for w in words[0].split("/") if w] if marker and words else []
