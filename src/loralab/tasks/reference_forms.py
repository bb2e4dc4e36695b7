"""OpenBookQA and BoolQ in the MoE-LoRA reference's form: ``task.template=reference``.

The ``obqa`` and ``boolq`` tasks have two forms, named by ``task.template``:
  ``llm_adapters`` (default): LLM-Adapters' instruction, answer words and parser
  (:mod:`loralab.tasks.commonsense`), as MoSLoRA runs them;
  ``reference``: the prompt, target and answer parser of THUDM/MoELoRA_Riemannian (Sun et al.'s
  code, ``dataset.py``), string for string, as this file states them.

OpenBookQA (the reference's ``OpenBookQADataset``): ScienceQA's form. Its loader reads a
``datasets.save_to_disk`` folder whose records already hold ``instruction`` / ``input`` /
``output`` and wraps them in ``ScienceQADataset``: the Alpaca template, the record's ``output``
as target, ``The answer is ([A-Z]).`` matching exactly once in the text after ``### Response:``.
The script that rendered those records is not published; the reference's only renderer is
``prepare_data.py`` (ScienceQA's CQM-A, context ``N/A`` when there is none), so loralab renders
OpenBookQA with it:

    Context: N/A\\nQuestion: <question>\\nOptions: (A) <text> (B) <text> (C) <text> (D) <text>\\n

in the Alpaca no-input template, target ``Answer: The answer is D.`` (the letter by position).
Records are read in the Hub's schema (``allenai/openbookqa``, config ``main``: ``question_stem``,
``choices {text, label}``, ``answerKey``) or in LLM-Adapters' (the local
``shared/data/commonsense/openbookqa``): its instruction ``Please choose the correct answer to the
question: <question>\\n\\nAnswer1: <text> Answer2: ...`` gives the question and the four texts
(each as LLM-Adapters wrote it, with surrounding spaces stripped), ``answerN`` the letter. What
the local records cannot give: the Hub's 500 validation questions (the reference's validation
split); 120 are held out of train instead (``task.max_examples.validation``).

BoolQ (the reference's ``BoolQDataset``): its own template, instruction ``Title:<title>\\n<passage>
\\nQuestion:<question>?``, target ``The answer is Yes`` / ``The answer is No``, and the regex
``The answer is ([YN][eo][s]?)`` matching exactly once in the text after ``### Response:``. It
reads the original release (``train.jsonl``, ``dev.jsonl``: ``question``, ``title``,
``passage``, ``answer`` a bool), dev as both validation and test split. The Hub's ``google/boolq``
has no ``title`` and LLM-Adapters' records (the local ``shared/data/commonsense/boolq``) hold
only the question, no title and no passage, so neither can give the reference's prompt: both are
refused with an error saying so, never rendered with a part missing.

Sources: a local folder holding the task's folder (``openbookqa/``, ``boolq/``: LLM-Adapters'
root layout, as the ``llm_adapters`` form reads it) reads that folder; an http(s) URL is tried
as the original release's folder (BoolQ: ``<url>/train.jsonl``, ``<url>/dev.jsonl``), else as
LLM-Adapters' root; anything else is read as it is (:mod:`loralab.tasks.sources`: a Hub id, a
``save_to_disk`` folder, a folder of per-split files, one file read as train).

Splits: test is the source's test split, else its validation split (BoolQ's dev, as the
reference); validation is the source's validation split (capped by
``task.max_examples.validation``, null = all), else held out of train (null = 120).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from loralab.tasks import commonsense
from loralab.tasks.alpaca import alpaca_prompt
from loralab.tasks.base import DataError, Task
from loralab.tasks.sources import (
    SplitData,
    first_of_test,
    hold_out,
    load_source,
    materialise,
    record_error,
    sample_indices,
)

TEMPLATES = ("llm_adapters", "reference")
DEFAULT_TEMPLATE = "llm_adapters"
TASKS = ("obqa", "boolq")
LETTERS = string.ascii_uppercase
RESPONSE_SPLIT = "### Response:"  # both classes' response_split

# OpenBookQA: ScienceQADataset's template (the Alpaca one, alpaca.py), target and regex. The
# regex's dot is the reference's, unescaped: any one character but a newline after the letter.
OBQA_ANSWER = re.compile(r"The answer is ([A-Z]).")
# LLM-Adapters' OpenBookQA instruction, from which the question and option texts are read.
LLM_ADAPTERS_OBQA = re.compile(
    r"Please choose the correct answer to the question: (?P<question>.*?)\n\n"
    r"(?P<options>Answer1: .*)\n\nAnswer format: \S+",
    re.DOTALL,
)
LISTED_ANSWER = re.compile(r"(?:^| )Answer(\d+): ")

# BoolQ: BoolQDataset's prompt_no_input, target and regex, string for string.
BOOLQ_TEMPLATE = (
    "Below is a passage followed by a question. Read the whole passage, and write a response to "
    "answer the question by Yes or No.\n\n### Passage And Question:\n\n{instruction}\n\n"
    "### Response:\n"
)
BOOLQ_ANSWER = re.compile(r"The answer is ([YN][eo][s]?)")
BOOLQ_LABELS = ("Yes", "No")
# The original release's files, as the reference's BoolQDataset.load_dataset opens them.
BOOLQ_RELEASE = {"train": "train.jsonl", "validation": "dev.jsonl"}
DEFAULT_HELD_OUT = commonsense.DEFAULT_HELD_OUT


def template_of(task_cfg: Mapping[str, Any]) -> str:
    return task_cfg.get("template", DEFAULT_TEMPLATE)


def obqa_prompt(record: Mapping[str, Any]) -> str:
    """prepare_data.py's CQM-A input (context N/A) in the Alpaca no-input template."""
    options = " ".join(f"({LETTERS[i]}) {text}" for i, text in enumerate(record["choices"]))
    return alpaca_prompt(f"Context: N/A\nQuestion: {record['question']}\nOptions: {options}\n")


def obqa_target(answer_index: int) -> str:
    """prepare_data.py's CQM-A output, e.g. ``Answer: The answer is B.``."""
    return f"Answer: The answer is {LETTERS[answer_index]}."


def boolq_prompt(record: Mapping[str, Any]) -> str:
    instruction = (
        "Title:" + record["title"] + "\n" + record["passage"] + "\nQuestion:" + record["question"]
    ) + "?"
    return BOOLQ_TEMPLATE.format(instruction=instruction)


def boolq_target(answer: bool) -> str:
    return "The answer is " + ("Yes" if answer else "No")


def reference_parse(pattern: re.Pattern, text: str, split: str = RESPONSE_SPLIT) -> str | None:
    """As the reference's ``evaluate``: the text up to any repeated ``split`` (its prompt's
    answer header), stripped; the group if ``pattern`` matches exactly once, else None (its
    ``FAILD``, counted wrong)."""
    found = pattern.findall(text.split(split)[0].strip())
    return found[0] if len(found) == 1 else None


class ReferenceOpenBookQA(Task):
    """OpenBookQA as ScienceQA's form: options lettered A, B, C, D by position."""

    def prompt(self, record: Mapping[str, Any]) -> str:
        return obqa_prompt(record)

    def target(self, record: Mapping[str, Any]) -> str:
        return obqa_target(record["answer"])

    def option_targets(self, record: Mapping[str, Any]) -> list[str]:
        return [obqa_target(i) for i in range(len(record["choices"]))]

    def gold_index(self, record: Mapping[str, Any]) -> int:
        return record["answer"]

    def option_labels(self, record: Mapping[str, Any]) -> list[str]:
        return list(LETTERS[: len(record["choices"])])

    def parse(self, record: Mapping[str, Any], text: str) -> str | None:
        """The reference's parse; a letter that labels none of the options (wrong in the
        reference too) is None."""
        label = reference_parse(OBQA_ANSWER, text)
        return label if label in self.option_labels(record) else None

    def cloze(self, record: Mapping[str, Any]) -> tuple[str, list[str]]:
        return f"Question: {record['question']}\nAnswer:", list(record["choices"])


class ReferenceBoolQ(Task):
    """BoolQ in the reference's own template; the options are Yes and No."""

    def prompt(self, record: Mapping[str, Any]) -> str:
        return boolq_prompt(record)

    def target(self, record: Mapping[str, Any]) -> str:
        return boolq_target(record["answer"])

    def option_targets(self, record: Mapping[str, Any]) -> list[str]:
        return [boolq_target(True), boolq_target(False)]

    def gold_index(self, record: Mapping[str, Any]) -> int:
        return 0 if record["answer"] else 1

    def option_labels(self, record: Mapping[str, Any]) -> list[str]:
        return list(BOOLQ_LABELS)

    def parse(self, record: Mapping[str, Any], text: str) -> str | None:
        """The reference's parse; a match other than Yes or No (``Ye``, ``Nos``: wrong in the
        reference too) is None."""
        word = reference_parse(BOOLQ_ANSWER, text)
        return word if word in BOOLQ_LABELS else None


def build(task_cfg: Mapping[str, Any], splits: tuple[str, ...]) -> Task:
    """``obqa`` / ``boolq`` in the form ``task.template`` names."""
    if template_of(task_cfg) != "reference":
        return commonsense.build(task_cfg, splits)
    name = task_cfg["name"]
    cls = ReferenceOpenBookQA if name == "obqa" else ReferenceBoolQ
    return cls(name, load_reference(task_cfg, splits))


def config_errors(task_cfg: Mapping[str, Any]) -> list[str]:
    errors = commonsense.config_errors(task_cfg)
    template = template_of(task_cfg)
    if template not in TEMPLATES:
        errors.append(
            f"task.template={template!r} must be one of {list(TEMPLATES)} (llm_adapters: "
            "LLM-Adapters' instruction and answer words; reference: the MoE-LoRA reference's "
            "prompt, target and parser, Sun et al.'s)"
        )
    return errors


def load_reference(task_cfg: Mapping[str, Any], splits: tuple[str, ...]) -> dict[str, list[dict]]:
    name, seed, caps = task_cfg["name"], task_cfg["seed"], task_cfg["max_examples"]
    source = str(task_cfg["source"])
    data = _read_source(source, name)
    normalise = partial(normalise_obqa if name == "obqa" else normalise_boolq, task=name)
    pools: dict[str, tuple[SplitData, list[int]]] = {}
    rest = list(range(len(data["train"].rows))) if "train" in data else []
    test_from = "test" if "test" in data else "validation"
    if test_from in data:
        pools["test"] = (data[test_from], list(range(len(data[test_from].rows))))
    if "validation" in data:
        pools["validation"] = (data["validation"], list(range(len(data["validation"].rows))))
        validation_cap = caps["validation"]
    elif "train" in data:
        n = DEFAULT_HELD_OUT if caps["validation"] is None else caps["validation"]
        held, rest = hold_out(rest, n, f"{seed}/validation/{name}")
        pools["validation"] = (data["train"], held)
        validation_cap = None
    if "train" in data:
        pools["train"] = (data["train"], rest)
    records = {}
    for split in splits:
        if split not in pools:
            raise DataError(
                f"{name} (task.template=reference): source {source} has no {split} split"
                + (" (nor a validation split to test on)" if split == "test" else "")
            )
        rows, indices = pools[split]
        cap = validation_cap if split == "validation" else caps[split]
        # the llm_adapters form's seeds: a capped split holds the same questions in both forms
        chosen = sample_indices(
            indices,
            cap,
            f"{seed}/test" if split == "test" else f"{seed}/{split}/{name}",
            first_of_test(task_cfg, split),
        )
        records[split] = materialise(rows, chosen, normalise)
    return records


def _read_source(source: str, name: str) -> dict[str, SplitData]:
    folder = commonsense.FOLDERS[name]
    if source.startswith(("http://", "https://")):
        if name == "boolq":
            found = _remote_release(source.rstrip("/"))
            if found:
                return found
        return load_source(source, folder)
    path = Path(source).expanduser()
    if path.is_dir() and (path / folder).is_dir():
        return load_source(source, folder)
    return load_source(source)


def _remote_release(url: str) -> dict[str, SplitData]:
    """BoolQ's original release at ``url`` (train.jsonl, dev.jsonl); empty if not there."""
    import datasets

    found = {}
    for split, name in BOOLQ_RELEASE.items():
        file = f"{url}/{name}"
        try:
            rows = datasets.load_dataset("json", data_files=file, split="train")
        except FileNotFoundError:
            continue
        found[split] = SplitData(rows, file)
    return found


def _text(row: Mapping[str, Any], field: str, origin: str, where) -> str:
    value = row.get(field)
    if value is None:
        raise record_error(origin, where, f"missing field {field!r}")
    if not isinstance(value, str) or not value.strip():
        raise record_error(origin, where, f"field {field!r}={value!r:.80} is not text")
    return value


def normalise_obqa(row: Mapping[str, Any], origin: str, index: int, task: str) -> dict:
    """One question in the Hub's schema or LLM-Adapters' as ``{id, question, choices, answer}``
    (``answer`` the gold option's index)."""
    where = index if row.get("id") is None else f"{index} (id {row['id']!r})"
    if "question_stem" in row:  # the Hub's allenai/openbookqa
        question = _text(row, "question_stem", origin, where)
        choices = row.get("choices")
        if not isinstance(choices, Mapping) or not all(
            isinstance(choices.get(key), list | tuple) for key in ("text", "label")
        ):
            raise record_error(
                origin,
                where,
                f"field 'choices'={choices!r:.80} is not {{text: [...], label: [...]}}",
            )
        texts, labels = list(choices["text"]), list(choices["label"])
        if len(texts) != len(labels) or not 2 <= len(texts) <= len(LETTERS):
            raise record_error(
                origin,
                where,
                f"fields 'choices.text' / 'choices.label' hold {texts!r:.80} / {labels}",
            )
        if row.get("answerKey") not in labels:
            raise record_error(
                origin, where, f"field 'answerKey'={row.get('answerKey')!r} is not among {labels}"
            )
        answer = labels.index(row["answerKey"])
    elif "instruction" in row:  # LLM-Adapters' records
        checked = commonsense.normalise_record(row, origin, index, task)
        question, texts = _llm_adapters_obqa(checked, origin, where)
        answer = checked["choices"].index(checked["answer"])
    else:
        raise record_error(
            origin,
            where,
            "neither the Hub's OpenBookQA schema (question_stem, choices, answerKey) nor "
            "LLM-Adapters' (instruction, output, answer)",
        )
    for position, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise record_error(origin, where, f"option {position} is {text!r:.80}, not text")
    return {
        "id": str(row["id"]) if row.get("id") is not None else f"{task}-{index}",
        "question": question,
        "choices": texts,
        "answer": answer,
        "task": task,
    }


def _llm_adapters_obqa(record: Mapping[str, Any], origin: str, where) -> tuple[str, list[str]]:
    """The question and option texts of LLM-Adapters' OpenBookQA instruction."""
    found = LLM_ADAPTERS_OBQA.fullmatch(record["instruction"])
    if found is None:
        raise record_error(
            origin,
            where,
            "field 'instruction' is not LLM-Adapters' OpenBookQA form ('Please choose the "
            "correct answer to the question: <question>\\n\\nAnswer1: <text> Answer2: ...\\n\\n"
            "Answer format: ...'), from which the reference's form is rendered",
        )
    _, *listed = LISTED_ANSWER.split(found["options"])  # "", "1", text1, "2", text2, ...
    numbers, texts = listed[0::2], [text.strip() for text in listed[1::2]]
    if numbers != [str(i) for i in range(1, len(record["choices"]) + 1)]:
        raise record_error(
            origin,
            where,
            f"field 'instruction' lists options {numbers} for the answer words "
            f"{record['choices']}; the reference's form needs one text per answer word",
        )
    return found["question"].strip(), texts


def normalise_boolq(row: Mapping[str, Any], origin: str, index: int, task: str) -> dict:
    """One question of the original release as ``{id, title, passage, question, answer}``."""
    where = index if row.get("id") is None else f"{index} (id {row['id']!r})"
    if "instruction" in row and "passage" not in row:
        raise record_error(
            origin,
            where,
            "LLM-Adapters' BoolQ records hold the question only, no title and no passage: the "
            "reference's prompt (Title:<title>\\n<passage>\\nQuestion:<question>?) cannot be "
            "rendered from them. Give BoolQ's original release (train.jsonl, dev.jsonl: "
            "question, title, passage, answer), or use task.template=llm_adapters",
        )
    if row.get("title") is None:
        raise record_error(
            origin,
            where,
            "missing field 'title' (the reference's prompt begins Title:<title>; the Hub's "
            "google/boolq has no titles: give the original release's train.jsonl / dev.jsonl)",
        )
    fields = {field: _text(row, field, origin, where) for field in ("title", "passage", "question")}
    answer = row.get("answer")
    if not isinstance(answer, bool):
        raise record_error(origin, where, f"field 'answer'={answer!r:.80} is not true or false")
    return {
        "id": str(row["id"]) if row.get("id") is not None else f"{task}-{index}",
        **fields,
        "answer": answer,
        "task": task,
    }
