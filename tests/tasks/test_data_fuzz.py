"""The data counterpart of test_config_fuzz.py: malformed records (each field given a wrong type,
left out, empty, huge, text with Unicode line breaks) and damaged files (cut short, non-UTF-8
bytes, empty, not JSON objects, a folder in a file's place) go through the real loaders. Each
is either accepted, with records every task method handles in both answer forms, or refused
with a `DataError` naming the file; never another exception. Seeded: the same cases each run."""

import gzip
import json
import random

import pytest

from loralab.tasks import DataError, build_task
from loralab.tasks.text_answers import with_answer_form

ALL = {"train": None, "validation": None, "test": None}
SCIENCEQA = {
    "question": "Which is hot?",
    "choices": ["fire", "ice", "snow"],
    "answer": 0,
    "hint": "Fire burns.",
    "subject": "natural science",
    "grade": "grade2",
    "image": None,
}
BOOLQ = {
    "instruction": "Is fire hot?\n\nAnswer format: true/false",
    "input": "",
    "output": "the correct answer is true",
    "answer": "true",
}
MISSING = object()  # the field left out
ODD_VALUES = [
    MISSING,
    None,
    0,
    -1,
    7,
    2.5,
    float("nan"),
    True,
    "",
    "   ",
    "B",
    "true",
    "x" * 50_000,
    "line\u2028break\x85and\rreturn",
    [],
    ["a"],
    ["a", "a"],
    [f"c{i}" for i in range(1000)],
    [1, 2],
    [[]],
    {"text": "fire"},
]
FORMATS = {
    "scienceqa": ("jsonl", "json", "json.gz", "original"),
    "boolq": ("jsonl", "json", "json.gz"),
}
DAMAGES = ("cut", "cut", "cut", "byte", "empty", "folder", "scalars", "plain_gz", "pid_splits")
ONLY_FOR = {"plain_gz": "json.gz", "pid_splits": "original"}  # damages of one format


def mutated(base: dict, changes: dict) -> dict:
    return {field: v for field, v in (base | changes).items() if v is not MISSING}


def cases():
    rng = random.Random(0)
    for task, base in (("scienceqa", SCIENCEQA), ("boolq", BOOLQ)):
        fields = list(base)
        for field in fields:  # every field with every odd value
            for n, value in enumerate(ODD_VALUES):
                fmt = rng.choice(FORMATS[task])
                yield pytest.param(task, fmt, {field: value}, None, id=f"{task}-{fmt}-{field}-{n}")
        for n in range(40):  # several fields at once
            changes = {f: rng.choice(ODD_VALUES) for f in rng.sample(fields, rng.randint(2, 4))}
            fmt = rng.choice(FORMATS[task])
            yield pytest.param(task, fmt, changes, None, id=f"{task}-{fmt}-mixed-{n}")
        for fmt in FORMATS[task]:  # damaged files
            for n, damage in enumerate(DAMAGES):
                if ONLY_FOR.get(damage, fmt) != fmt:
                    continue
                damage = (damage, rng.random())
                yield pytest.param(task, fmt, {}, damage, id=f"{task}-{fmt}-{damage[0]}-{n}")


def write(folder, task, fmt, rows, damage):
    """Write the case's files into ``folder``; the file a refusal must name."""
    if task == "boolq":
        folder = folder / "boolq"
        folder.mkdir()
    kind, at = damage or (None, 0.0)
    if kind == "scalars":  # records that are no objects
        rows = [rows[0], 1, "two", None, ["three"]]
    if fmt == "original":
        file = folder / "problems.json"
        split = {"split": "train"}
        data = dumps(
            {str(i): row | split if isinstance(row, dict) else row for i, row in enumerate(rows)}
        )
    else:
        file = folder / f"{'train' if task == 'scienceqa' else 'test'}.{fmt}"
        lines = fmt == "jsonl"
        data = "".join(dumps(r) + "\n" for r in rows) if lines else dumps(rows)
    raw = DAMAGE[kind](data.encode(), at) if kind in DAMAGE else data.encode()
    if kind == "folder":
        file.mkdir()
    elif fmt == "json.gz" and kind != "plain_gz":
        file.write_bytes(gzip.compress(raw))
    else:
        file.write_bytes(raw)
    if kind == "pid_splits":
        file = folder / "pid_splits.json"
        file.write_bytes(json.dumps({"train": ["0", "1"]}).encode()[: int(at * 20)])
    return file


def dumps(value) -> str:
    """JSON with non-ASCII characters written as themselves (U+2028 and U+0085 raw)."""
    return json.dumps(value, ensure_ascii=False)


DAMAGE = {  # (bytes, a position in [0, 1)) -> damaged bytes
    "cut": lambda raw, at: raw[: int(at * len(raw))],
    "byte": lambda raw, at: raw[: int(at * len(raw))] + b"\xff" + raw[int(at * len(raw)) :],
    "empty": lambda raw, at: b"",
}


@pytest.mark.parametrize("task,fmt,changes,damage", list(cases()))
def test_bad_data_is_accepted_whole_or_refused_naming_the_file(
    tmp_path, task, fmt, changes, damage
):
    base = SCIENCEQA if task == "scienceqa" else BOOLQ
    file = write(tmp_path, task, fmt, [base, mutated(base, changes)], damage)
    cfg = {"name": task, "source": str(tmp_path), "seed": 0, "max_examples": ALL}
    if task == "scienceqa":
        cfg["text_only"] = True
    try:
        built = build_task(cfg, splits=("train",) if task == "scienceqa" else ("test",))
    except DataError as error:
        assert str(file) in str(error)
        return
    for form in (built, with_answer_form(built, "text")):
        for record in next(iter(form.splits.values())):
            usable(form, record)


SHOWN = ("question", "hint", "subject", "grade", "instruction", "input", "output")


def usable(task, record):
    """Every method a run calls gives a value of its type, and nothing reaches a prompt or a
    report that the file did not give as text."""
    assert all(isinstance(record.get(f), str | None) for f in SHOWN)
    assert all(isinstance(choice, str) for choice in record["choices"])
    labels, targets = task.option_labels(record), task.option_targets(record)
    assert isinstance(task.prompt(record), str) and isinstance(task.target(record), str)
    assert len(labels) == len(targets) >= 2
    assert all(isinstance(t, str) for t in [*labels, *targets])
    assert 0 <= task.gold_index(record) < len(labels)
    assert task.parse(record, task.target(record)) in [*labels, None]
    assert all(isinstance(v, str) for v in task.groups(record).values())
