"""CommonsenseQA (Talmor et al., NAACL 2019): five-way multiple-choice commonsense questions.

This file owns the task: its loader, the MoE-LoRA reference's own prompt template for it (not
the Alpaca one), the trained answer string and the reference's answer parser
(THUDM/MoELoRA_Riemannian, ``CommonsenseQADataset``). The prompt lists the question's stem and
then one line per choice, ``(A). bank``; the target is ``The correct answer is A.``.

Two schemas, normalised to one record form (``id``, ``question``, ``labels``, ``choices``,
``answer`` the gold label, ``concept`` or None):
  the Hub's (``tau/commonsense_qa``): ``question`` the stem, ``choices`` ``{label: [A..E],
  text: [...]}``, ``answerKey``, ``question_concept``;
  the original release (``train_rand_split.jsonl``, ``dev_rand_split.jsonl``): ``question``
  ``{stem, choices: [{label, text}], question_concept}``, ``answerKey``.

Sources: any :mod:`loralab.tasks.sources` source (a Hub id, a folder of per-split files, one
file), or a folder of the original release's files (``train_rand_split.jsonl`` as train,
``dev_rand_split.jsonl`` as validation; ``.gz`` too; the test file has no answers and is not
read). One file is one pool of questions, read as the train split.

Splits: the release's test answers are not public (the Hub's test split has empty
``answerKey``), so papers report on the dev split. ``task.test_split`` names the source split
scored as loralab's test split (``validation``: the dev split, which is also the validation
split, as in the reference). Where the source has no such split (one file is train only),
``task.hold_out.<validation|test>`` = N holds N questions out of its train split instead,
seeded by ``task.seed`` (test first, then validation from the rest), so a single file can be
trained on in part and tested on the rest, disjointly; a source with the split ignores it.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loralab.tasks.base import DataError, Task
from loralab.tasks.records import read_json_records
from loralab.tasks.reference_forms import reference_parse
from loralab.tasks.sources import (
    SplitData,
    first_of_test,
    hold_out,
    load_source,
    materialise,
    record_error,
    sample_indices,
)
from loralab.values import is_integer

log = logging.getLogger(__name__)

# The reference's template, answer and parser, string for string.
CSQA_TEMPLATE = (
    "Below is a question followed by several possible answers. Please choose the correct "
    "answer.\n\n### Question and Possible Answers:\n\n{instruction}\n\n### Correct Answer:\n"
)
RESPONSE_SPLIT = "### Correct Answer:"
# Exactly one match, else a failed parse that counts as wrong. The dot is the reference's,
# unescaped: any one character but a newline must follow the letter.
CSQA_ANSWER = re.compile(r"The correct answer is ([A-Z]).")
LETTERS = string.ascii_uppercase

# The original release's file names per split (a .gz of each is read too).
ORIGINAL_FILES = {"train": "train_rand_split.jsonl", "validation": "dev_rand_split.jsonl"}
TEST_SPLITS = ("validation", "test")
HOLD_OUT = ("validation", "test")


def csqa_prompt(record: Mapping[str, Any]) -> str:
    """The stem, then ``(<label>). <text>`` per choice, in the reference's template."""
    options = "\n".join(
        f"({label}). {text}"
        for label, text in zip(record["labels"], record["choices"], strict=True)
    )
    return CSQA_TEMPLATE.format(instruction=f"{record['question']}\n{options}")


def csqa_target(label: str) -> str:
    """The trained and parsed answer string, e.g. ``The correct answer is B.``."""
    return f"The correct answer is {label}."


def parse_csqa(text: str) -> str | None:
    """The answer letter of a generated continuation, as the reference reads it: the text up to
    any repeated ``### Correct Answer:``, stripped; the letter if the pattern matches exactly
    once, else None."""
    return reference_parse(CSQA_ANSWER, text, RESPONSE_SPLIT)


class CommonsenseQATask(Task):
    """CommonsenseQA records; options are labelled as the record labels them (A..E)."""

    def prompt(self, record: Mapping[str, Any]) -> str:
        return csqa_prompt(record)

    def target(self, record: Mapping[str, Any]) -> str:
        return csqa_target(record["answer"])

    def option_targets(self, record: Mapping[str, Any]) -> list[str]:
        return [csqa_target(label) for label in record["labels"]]

    def gold_index(self, record: Mapping[str, Any]) -> int:
        return record["labels"].index(record["answer"])

    def option_labels(self, record: Mapping[str, Any]) -> list[str]:
        return list(record["labels"])

    def parse(self, record: Mapping[str, Any], text: str) -> str | None:
        """The reference's parse; a letter that labels none of the record's options (wrong in
        the reference too) is None."""
        label = parse_csqa(text)
        return label if label in record["labels"] else None

    def cloze(self, record: Mapping[str, Any]) -> tuple[str, list[str]]:
        return f"Question: {record['question']}\nAnswer:", list(record["choices"])


def build(task_cfg: Mapping[str, Any], splits: tuple[str, ...]) -> CommonsenseQATask:
    return CommonsenseQATask(task_cfg["name"], load_csqa(task_cfg, splits))


def config_errors(task_cfg: Mapping[str, Any]) -> list[str]:
    """CommonsenseQA's own keys (the shared ones are checked by the registry)."""
    errors = []
    test_split = task_cfg.get("test_split")
    if test_split not in TEST_SPLITS:
        errors.append(
            f"task.test_split={test_split!r} must be one of {list(TEST_SPLITS)} (validation: "
            "the dev split papers report on; the released test split has no answers)"
        )
    held = task_cfg.get("hold_out")
    if not isinstance(held, Mapping):
        errors.append(
            f"task.hold_out={held!r} must map validation and test to null (read the source's "
            "split) or a count held out of its train split"
        )
        return errors
    unknown = sorted(set(held) - set(HOLD_OUT))
    if unknown:
        errors.append(f"task.hold_out has {unknown}; only validation and test can be held out")
    for split in HOLD_OUT:
        n = held.get(split)
        if n is not None and (not is_integer(n) or n < 0):
            errors.append(f"task.hold_out.{split}={n!r} must be null or an integer >= 0")
    return errors


def load_csqa(task_cfg: Mapping[str, Any], splits: tuple[str, ...]) -> dict[str, list[dict]]:
    """Normalised records per split, each capped by ``task.max_examples``."""
    source, seed = str(task_cfg["source"]), task_cfg["seed"]
    held_counts = task_cfg["hold_out"]
    data = _read_source(source)
    pools: dict[str, tuple[SplitData, list[int]]] = {}
    rest = list(range(len(data["train"].rows))) if "train" in data else []
    # test first: the test set does not depend on how many validation questions are held out
    for split, read_from in (("test", task_cfg["test_split"]), ("validation", "validation")):
        n = held_counts.get(split)
        if read_from in data:
            pools[split] = (data[read_from], list(range(len(data[read_from].rows))))
        elif n is not None and "train" in data:
            if n > len(rest):
                raise DataError(
                    f"task.hold_out.{split}={n}: {data['train'].origin} has {len(rest)} "
                    "questions left to hold out of"
                )
            held, rest = hold_out(rest, n, f"{seed}/hold_out/{split}")
            pools[split] = (data["train"], held)
    if "train" in data:
        pools["train"] = (data["train"], rest)
    records = {}
    for split in splits:
        if split not in pools:
            raise DataError(_missing_split(source, split, task_cfg["test_split"]))
        rows, indices = pools[split]
        cap, first = task_cfg["max_examples"][split], first_of_test(task_cfg, split)
        chosen = sample_indices(indices, cap, f"{seed}/{split}", first)
        records[split] = materialise(rows, chosen, normalise)
    return records


def _missing_split(source: str, split: str, test_split: str) -> str:
    if split == "train":
        return f"csqa: source {source} has no train split (a single file is read as train)"
    read_from = "validation" if split == "validation" else test_split
    scored_as = "" if read_from == split else f" (task.test_split) to score as {split}"
    return (
        f"csqa: source {source} has no {read_from} split{scored_as}; give a source with one, "
        f"or hold {split} questions out of its train split (task.hold_out.{split}=N)"
    )


def _read_source(source: str) -> dict[str, SplitData]:
    path = Path(source).expanduser()
    if path.is_dir():
        found = {}
        for split, name in ORIGINAL_FILES.items():
            for file in (path / name, path / f"{name}.gz"):
                if file.is_file():
                    found[split] = SplitData(read_json_records(file), str(file))
                    break
        if found:
            return found
    return load_source(source)


def normalise(row: Mapping[str, Any], origin: str, index: int) -> dict:
    """One question in either schema as ``{id, question, labels, choices, answer, concept}``;
    errors name the file, the record and the field."""
    where = index if row.get("id") is None else f"{index} (id {row['id']!r})"
    question = row.get("question")
    if question is None:
        raise record_error(
            origin,
            where,
            "missing field 'question' (the question text with 'choices' beside it, as the Hub "
            "writes it, or {stem, choices} as the original release does)",
        )
    if isinstance(question, Mapping):  # the original release
        stem, concept = question.get("stem"), question.get("question_concept")
        labels, texts = _original_choices(question.get("choices"), origin, where)
        stem_field = "question.stem"
    elif isinstance(question, str):  # the Hub's schema
        stem, concept = question, row.get("question_concept")
        labels, texts = _hub_choices(row.get("choices"), origin, where)
        stem_field = "question"
    else:
        raise record_error(
            origin,
            where,
            f"field 'question'={question!r:.80} is neither text (the Hub's schema) nor an "
            "object {stem, choices} (the original release)",
        )
    if stem is None:
        raise record_error(origin, where, f"missing field {stem_field!r}")
    problem = _text_problem(stem, f"field {stem_field!r}")
    if problem:
        raise record_error(origin, where, problem)
    if not isinstance(concept, str | None):
        raise record_error(origin, where, f"field 'question_concept'={concept!r:.80} is not text")
    answer = row.get("answerKey")
    if answer is None:
        raise record_error(origin, where, "missing field 'answerKey'")
    if answer == "":
        raise record_error(
            origin,
            where,
            "field 'answerKey' is empty: the released test split has no answers; score the "
            "dev split (task.test_split=validation)",
        )
    if answer not in labels:
        raise record_error(
            origin, where, f"field 'answerKey'={answer!r:.80} is not among the labels {labels}"
        )
    return {
        "id": str(row["id"]) if row.get("id") is not None else str(index),
        "question": stem,
        "labels": labels,
        "choices": texts,
        "answer": answer,
        "concept": concept,
    }


def _hub_choices(choices: Any, origin: str, where) -> tuple[list[str], list[str]]:
    if choices is None:
        raise record_error(origin, where, "missing field 'choices'")
    if not isinstance(choices, Mapping):
        raise record_error(
            origin, where, f"field 'choices'={choices!r:.80} is not an object {{label, text}}"
        )
    for key in ("label", "text"):
        if choices.get(key) is None:
            raise record_error(origin, where, f"missing field 'choices.{key}'")
        if not isinstance(choices[key], list | tuple):
            raise record_error(
                origin, where, f"field 'choices.{key}'={choices[key]!r:.80} is not a list"
            )
    labels, texts = list(choices["label"]), list(choices["text"])
    if len(labels) != len(texts):
        raise record_error(
            origin,
            where,
            f"fields 'choices.label' and 'choices.text' hold {len(labels)} and {len(texts)} "
            "entries; give one label per text",
        )
    return _checked(labels, texts, "choices.label", "choices.text", origin, where)


def _original_choices(choices: Any, origin: str, where) -> tuple[list[str], list[str]]:
    if choices is None:
        raise record_error(origin, where, "missing field 'question.choices'")
    if not isinstance(choices, list | tuple):
        raise record_error(origin, where, f"field 'question.choices'={choices!r:.80} is not a list")
    labels, texts = [], []
    for position, choice in enumerate(choices):
        field = f"question.choices[{position}]"
        if not isinstance(choice, Mapping):
            raise record_error(
                origin, where, f"field {field!r}={choice!r:.80} is not an object {{label, text}}"
            )
        for key in ("label", "text"):
            if choice.get(key) is None:
                raise record_error(origin, where, f"missing field '{field}.{key}'")
        labels.append(choice["label"])
        texts.append(choice["text"])
    return _checked(
        labels, texts, "question.choices[].label", "question.choices[].text", origin, where
    )


def _checked(labels, texts, label_field, text_field, origin, where) -> tuple[list[str], list[str]]:
    """Labels as the reference prints them (stripped), each one letter A-Z and distinct (the
    answer parser reads one letter); texts exactly as written."""
    if len(labels) < 2:
        raise record_error(
            origin, where, f"field {label_field!r} holds {len(labels)} choice(s); need 2 or more"
        )
    stripped = []
    for label in labels:
        if not isinstance(label, str) or len(label.strip()) != 1 or label.strip() not in LETTERS:
            raise record_error(
                origin,
                where,
                f"field {label_field!r} holds {label!r:.80}; each label is one letter A-Z",
            )
        stripped.append(label.strip())
    if len(set(stripped)) < len(stripped):
        raise record_error(origin, where, f"field {label_field!r} repeats a label: {stripped}")
    for position, text in enumerate(texts):
        problem = _text_problem(text, f"entry {position} of field {text_field!r}")
        if problem:
            raise record_error(origin, where, problem)
    return stripped, list(texts)


def _text_problem(value: Any, what: str) -> str | None:
    if not isinstance(value, str):
        return f"{what} is {value!r:.80}, not text"
    return None if value.strip() else f"{what} is empty"
