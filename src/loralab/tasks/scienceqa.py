"""ScienceQA (Lu et al., NeurIPS 2022): multiple-choice science questions, text-only by default.

This file owns the task: its loader, the CQM-A prompt in the Alpaca template (docs/methods.md,
"Setup of Sun et al."), the trained answer string and the reference's answer parser. The
bundled demo quiz (`demo.py`) shares the schema, prompt and parser.

Sources: the Hub copy ``derek-thomas/ScienceQA`` (``answer`` an int index, ``image`` a PIL image
or null), any :mod:`loralab.tasks.sources` source with the same columns (``answer`` may be a
letter, as in the MoE-LoRA reference's prepared copy), or the original release: a dict of
problems keyed by id in ``problems.json`` (or ``.json.gz``), split by ``pid_splits.json`` or by
each problem's ``split`` field (``val`` = validation). Problems with an image are left out
unless ``task.text_only=false`` (the papers train and test on the text-only ones), and the
count left out is logged.

``task.source`` may also map splits to sources, as ``datasets`` maps splits to data files:
``{train: [a, b], validation: a, test: c}`` reads each split from the sources listed for it
(that split of a folder or Hub copy; the whole of a single data file). Each split is scored as
given: problems that repeat within a split (same question, hint, choices and answer) are kept
unless ``task.drop_repeats=true``, meant for combining partial copies of the dataset that
overlap; the count dropped is logged with the sources involved. A single source (no mapping)
is always read as given.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loralab.tasks.alpaca import alpaca_prompt
from loralab.tasks.base import Task
from loralab.tasks.records import Records, read_json
from loralab.tasks.sources import (
    SPLIT_ALIASES,
    DataError,
    SplitData,
    first_of_test,
    load_source,
    materialise,
    record_error,
    sample_indices,
)

log = logging.getLogger(__name__)

ORIGINAL_FILES = ("problems.json", "problems.json.gz")
REQUIRED = ("question", "choices", "answer")
OPTIONAL_TEXT = ("hint", "subject", "grade")  # shown in the prompt or grouped by: text or null
LETTERS = string.ascii_uppercase
# The reference's parser (THUDM/MoELoRA_Riemannian): exactly one match, else a failed parse that
# counts as wrong. Its unescaped dot included: any one character must follow the letter, so an
# output cut right after the letter does not parse.
SCIENCEQA_ANSWER = re.compile(r"The answer is ([A-Z]).")


def scienceqa_prompt(record: Mapping[str, Any]) -> str:
    """``Context / Question / Options`` inside the Alpaca no-input template."""
    hint = (record.get("hint") or "").strip() or "N/A"
    options = " ".join(f"({LETTERS[i]}) {choice}" for i, choice in enumerate(record["choices"]))
    return alpaca_prompt(f"Context: {hint}\nQuestion: {record['question']}\nOptions: {options}\n")


def scienceqa_target(answer_index: int) -> str:
    """The trained and parsed answer string, e.g. ``Answer: The answer is B.``."""
    return f"Answer: The answer is {LETTERS[answer_index]}."


def parse_scienceqa(text: str) -> str | None:
    """The answer letter, or None unless the pattern matches exactly once."""
    found = SCIENCEQA_ANSWER.findall(text)
    return found[0] if len(found) == 1 else None


class ScienceQATask(Task):
    """Records in the ScienceQA schema (question, choices, answer index, hint); options are
    labelled A, B, C, ..."""

    def prompt(self, record: Mapping[str, Any]) -> str:
        return scienceqa_prompt(record)

    def cloze(self, record: Mapping[str, Any]) -> tuple[str, list[str]]:
        hint = (record.get("hint") or "").strip()
        context = f"Context: {hint}\n" if hint else ""
        return f"{context}Question: {record['question']}\nAnswer:", list(record["choices"])

    def target(self, record: Mapping[str, Any]) -> str:
        return scienceqa_target(record["answer"])

    def option_targets(self, record: Mapping[str, Any]) -> list[str]:
        return [scienceqa_target(i) for i in range(len(record["choices"]))]

    def gold_index(self, record: Mapping[str, Any]) -> int:
        return int(record["answer"])

    def option_labels(self, record: Mapping[str, Any]) -> list[str]:
        return list(LETTERS[: len(record["choices"])])

    def parse(self, record: Mapping[str, Any], text: str) -> str | None:
        return parse_scienceqa(text)

    def groups(self, record: Mapping[str, Any]) -> dict[str, str]:
        return {key: record[key] for key in ("subject", "grade") if record.get(key)}


def build(task_cfg: Mapping[str, Any], splits: tuple[str, ...]) -> ScienceQATask:
    return ScienceQATask(task_cfg["name"], load_scienceqa(task_cfg, splits))


def config_errors(task_cfg: Mapping[str, Any]) -> list[str]:
    """ScienceQA's own keys (the shared ones are checked by the registry)."""
    errors = []
    if not isinstance(task_cfg.get("text_only"), bool):
        errors.append(f"task.text_only={task_cfg.get('text_only')!r} must be true or false")
    drop = task_cfg.get("drop_repeats", False)
    if not isinstance(drop, bool):
        errors.append(f"task.drop_repeats={drop!r} must be true or false")
    return errors


def load_scienceqa(task_cfg: Mapping[str, Any], splits: tuple[str, ...]) -> dict[str, list[dict]]:
    """Normalised records per split: ``answer`` an int index, ``hint`` a string, ``id`` set."""
    if isinstance(task_cfg["source"], Mapping):
        return _load_mapped(task_cfg, splits)
    source = str(task_cfg["source"])
    data = _read_source(source)
    records = {}
    for split in splits:
        if split not in data:
            log.warning("scienceqa: source %s has no %s split", source, split)
            records[split] = []
            continue
        rows, kept = _usable(data[split], split, task_cfg["text_only"])
        cap = task_cfg["max_examples"][split]
        first = first_of_test(task_cfg, split)
        indices = sample_indices(kept, cap, f"{task_cfg['seed']}/{split}", first)
        records[split] = materialise(rows, indices, normalise)
    return records


def _usable(data: SplitData, split: str, text_only: bool) -> tuple[SplitData, list[int]]:
    """The split without its image column (never decoded: prompts are text only) and the
    indices of the problems to use (the text-only ones when ``text_only``)."""
    rows = data.rows
    kept = _text_only(rows, split) if text_only else list(range(len(rows)))
    if "image" in rows.column_names:
        rows = rows.remove_columns(["image"])
    return SplitData(rows, data.origin), kept


def _read_source(source: str) -> dict[str, SplitData]:
    original = _original_release(Path(source).expanduser())
    return _read_original(original) if original else load_source(source)


def _load_mapped(task_cfg: Mapping[str, Any], splits: tuple[str, ...]) -> dict[str, list[dict]]:
    mapping = task_cfg["source"]
    read: dict[str, dict[str, SplitData]] = {}
    records = {}
    for split in splits:
        listed = mapping.get(split) or []
        listed = [listed] if isinstance(listed, str) else list(listed)
        pairs: list[tuple[str, dict]] = []  # (source, record)
        for source in listed:
            data = read.setdefault(source, _read_source(source))
            if _is_single_file(source):  # a file holds just the split it is listed under
                data = {split: next(iter(data.values()))}
            if split not in data:
                raise DataError(
                    f"task.source.{split}: {source} has no {split} split; list a source that "
                    f"has one (a folder or Hub copy with a {split} split, or a single file)"
                )
            rows, kept = _usable(data[split], split, task_cfg["text_only"])
            pairs += [(source, record) for record in materialise(rows, kept, normalise)]
        if task_cfg.get("drop_repeats", False):
            pairs = _drop_repeats(pairs, split)
        merged = [record for _, record in pairs]
        cap = task_cfg["max_examples"][split]
        first = first_of_test(task_cfg, split)
        chosen = sample_indices(range(len(merged)), cap, f"{task_cfg['seed']}/{split}", first)
        records[split] = [merged[i] for i in chosen]
    return records


def _is_single_file(source: str) -> bool:
    path = Path(source).expanduser()
    return path.is_file() and _original_release(path) is None


def _drop_repeats(pairs: list[tuple[str, dict]], split: str) -> list[tuple[str, dict]]:
    """``(source, record)`` pairs without the problems seen before in the split, logging how
    many were dropped and every source that held a copy of one."""
    first_source: dict[tuple, str] = {}
    kept, involved = [], {}
    for source, record in pairs:
        key = _problem_key(record)
        if key in first_source:
            involved.update(dict.fromkeys((first_source[key], source)))
            continue
        first_source[key] = source
        kept.append((source, record))
    if involved:
        log.info(
            "scienceqa/%s: %d repeated problems dropped (task.drop_repeats=true), copies in: %s",
            split,
            len(pairs) - len(kept),
            ", ".join(involved),
        )
    return kept


def _problem_key(record: Mapping[str, Any]) -> tuple:
    return (record["question"], record["hint"], tuple(record["choices"]), record["answer"])


def normalise(row: Mapping[str, Any], origin: str, index: int) -> dict:
    """Check one problem and put its answer in index form; errors name file, record and field."""
    where = index if row.get("id") is None else f"{index} (id {row['id']!r})"
    for field in REQUIRED:
        if row.get(field) is None:
            raise record_error(origin, where, f"missing field {field!r}")
    problem = _text_problem(row["question"], "field 'question'")
    if problem:
        raise record_error(origin, where, problem)
    for field in OPTIONAL_TEXT:
        if not isinstance(row.get(field, ""), str | None):
            raise record_error(
                origin,
                where,
                f"field {field!r}={row[field]!r:.80} is not text: write a JSON string, or null",
            )
    choices = row["choices"]
    if not isinstance(choices, list | tuple):
        raise record_error(origin, where, f"field 'choices'={choices!r:.80} is not a list")
    if not 2 <= len(choices) <= len(LETTERS):
        raise record_error(
            origin,
            where,
            f"field 'choices' holds {len(choices)} choice(s); a problem needs 2 to {len(LETTERS)} "
            "(one per letter A-Z)",
        )
    for position, choice in enumerate(choices):
        problem = _text_problem(choice, f"choice {position} of field 'choices'")
        if problem:
            raise record_error(origin, where, problem)
    answer = _answer_index(row["answer"], len(choices))
    if answer is None:
        raise record_error(
            origin,
            where,
            f"field 'answer'={row['answer']!r:.80} is not among the {len(choices)} choices "
            f"(expected an index 0..{len(choices) - 1} or a letter A..{LETTERS[len(choices) - 1]})",
        )
    record = dict(row)
    record.update(choices=list(choices), answer=answer, hint=row.get("hint") or "")
    record.setdefault("id", str(index))
    return record


def _text_problem(value: Any, what: str) -> str | None:
    """Why ``value`` cannot be shown in the prompt (it is shown exactly as the file writes it),
    or None."""
    if not isinstance(value, str):
        return (
            f"{what} is {value!r:.80}, not text: write it as a JSON string (quoted) exactly as "
            "the prompt should show it"
        )
    return None if value.strip() else f"{what} is empty"


def _answer_index(answer: Any, n: int) -> int | None:
    if isinstance(answer, str) and len(answer) == 1 and answer in LETTERS:
        index = LETTERS.index(answer)
    elif isinstance(answer, int) and not isinstance(answer, bool):
        index = answer
    else:
        return None
    return index if 0 <= index < n else None


def _text_only(rows, name: str) -> list[int]:
    """Indices of problems without an image (a null ``image``), read without decoding images."""
    if "image" not in rows.column_names:
        return list(range(len(rows)))
    if isinstance(rows, Records):
        kept = [i for i, null in enumerate(rows.is_null("image")) if null]
    else:  # a datasets.Dataset: read the column's validity without decoding any image
        column = rows.select_columns(["image"]).with_format("arrow")[:]["image"]
        kept = [i for i, has_image in enumerate(column.is_valid().to_pylist()) if not has_image]
    log.info(
        "scienceqa/%s: %d text-only problems kept, %d with an image left out (task.text_only)",
        name,
        len(kept),
        len(rows) - len(kept),
    )
    return kept


def _original_release(path: Path) -> Path | None:
    """The ``problems.json(.gz)`` file if ``path`` is (or holds) the original release."""
    if path.is_file() and path.name in ORIGINAL_FILES:
        return path
    if path.is_dir():  # a folder named problems.json is found too, and refused when read
        return next((path / n for n in ORIGINAL_FILES if (path / n).exists()), None)
    return None


def _read_original(problems_file: Path) -> dict[str, SplitData]:
    problems = read_json(problems_file)
    if not isinstance(problems, dict):
        raise DataError(f"{problems_file}: expected a dict of problems keyed by problem id")
    for index, (pid, problem) in enumerate(problems.items()):
        if not isinstance(problem, dict):
            raise record_error(
                str(problems_file),
                f"{index} (id {pid!r})",
                f"expected an object of fields, got {type(problem).__name__} {problem!r:.80}",
            )
    split_of = _split_membership(problems_file, problems)
    grouped: dict[str, list[dict]] = {}
    for pid, problem in problems.items():
        split = SPLIT_ALIASES.get(split_of[pid])
        if split is not None:
            grouped.setdefault(split, []).append({**problem, "id": pid, "split": split})
    outside = len(problems) - sum(len(rows) for rows in grouped.values())
    if outside:
        log.warning(
            "%s: %d problems in no train / val / test split left out", problems_file, outside
        )
    return {split: SplitData(Records(rows), str(problems_file)) for split, rows in grouped.items()}


def _split_membership(problems_file: Path, problems: dict) -> dict[str, str]:
    """Problem id -> split name, from ``pid_splits.json`` beside the problems, else ``split``."""
    pid_splits = problems_file.parent / "pid_splits.json"
    if pid_splits.exists():
        return _pid_splits(pid_splits, problems)
    for index, (pid, problem) in enumerate(problems.items()):
        split = problem.get("split")
        if not isinstance(split, str):
            found = "missing field 'split'" if split is None else f"field 'split'={split!r:.80}"
            raise record_error(
                str(problems_file),
                f"{index} (id {pid!r})",
                f"{found}: give train, val or test (or put a pid_splits.json beside the file)",
            )
    return {pid: problem["split"] for pid, problem in problems.items()}


def _pid_splits(file: Path, problems: dict) -> dict[str, str]:
    """Problem id -> split name as ``pid_splits.json`` lists them: ``{"train": [ids], ...}``."""
    listed = read_json(file)
    if not isinstance(listed, dict):
        raise DataError(
            f'{file}: expected an object of problem id lists, {{"train": ["1", ...], '
            f'"val": [...], "test": [...]}}, got a {type(listed).__name__}'
        )
    membership = {}
    for split in ("train", "val", "test"):
        ids = listed.get(split, [])
        if not isinstance(ids, list) or not all(isinstance(pid, str) for pid in ids):
            raise DataError(
                f"{file}: field {split!r}={ids!r:.80} must be a list of problem ids, each a "
                "JSON string as problems.json keys them"
            )
        membership.update(dict.fromkeys(ids, split))
    return {pid: membership.get(pid, "") for pid in problems}
