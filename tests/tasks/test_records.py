"""Local JSON files reach the tasks exactly as written, and every unreadable file is a
DataError naming the file and the line or record (never a raw parser traceback)."""

import gzip
import json

import pytest

from loralab.tasks import DataError
from loralab.tasks.scienceqa import load_scienceqa, scienceqa_prompt
from loralab.tasks.sources import load_source

SPLITS = ("train", "validation", "test")


def _scienceqa_cfg(source):
    return {
        "name": "scienceqa",
        "source": str(source),
        "text_only": True,
        "seed": 0,
        "max_examples": {"train": None, "validation": None, "test": None},
    }


def test_mixed_type_choices_are_shown_exactly_as_the_file_writes_them(tmp_path):
    """'1.50', 'true' and 'null' as text in one record, numbers in another: the text record
    keeps its strings (datasets' type inference turned them into 1.5, True, None), and the
    numeric record is refused naming its record and choice."""
    text = {"question": "Pick one.", "choices": ["1.50", "true", "null"], "answer": 0}
    (tmp_path / "train.jsonl").write_text(json.dumps(text) + "\n")
    records = load_scienceqa(_scienceqa_cfg(tmp_path / "train.jsonl"), ("train",))["train"]
    assert records[0]["choices"] == ["1.50", "true", "null"]
    assert "(A) 1.50 (B) true (C) null" in scienceqa_prompt(records[0])

    numeric = {"question": "Pick again.", "choices": [1.5, 2, 3], "answer": 1}
    (tmp_path / "train.jsonl").write_text(json.dumps(text) + "\n" + json.dumps(numeric) + "\n")
    with pytest.raises(DataError, match=r"train.jsonl: record 1: choice 0 .* is 1.5, not text"):
        load_scienceqa(_scienceqa_cfg(tmp_path / "train.jsonl"), ("train",))


def test_an_integer_answer_is_reported_with_its_own_record_and_value(tmp_path):
    from loralab.tasks.commonsense import normalise_record

    rows = [
        {
            "instruction": "Q? Answer format: true/false",
            "input": "",
            "output": "the correct answer is true",
            "answer": "true",
        },
        {
            "instruction": "Q2? Answer format: true/false",
            "input": "",
            "output": "the correct answer is 1",
            "answer": 1,
        },
    ]
    file = tmp_path / "train.json"
    file.write_text(json.dumps(rows))
    split = load_source(str(file))["train"]
    assert split.rows.to_list()[1]["answer"] == 1  # not coerced to "1" by a shared column type
    with pytest.raises(DataError, match=r"train.json: record 1: field 'answer'=1 is not text"):
        normalise_record(split.rows.to_list()[1], split.origin, 1, task="boolq")


def _gz(data: bytes) -> bytes:
    return gzip.compress(data)


@pytest.mark.parametrize(
    "name,content,fragment",
    [
        ("train.json", b'[{"question": "q", "choices": ["a"', "line 1, column"),
        ("train.json", b"", "the file is empty"),
        ("train.json.gz", b'[{"question": "q"}]', "not a gzip file"),
        ("train.jsonl", b'{"question": "q"}\n{"question": oops}\n', "line 2, column"),
        ("train.jsonl", b'{"question": "caf\xe9"}\n', "line 1: not UTF-8 text"),
        ("train.json.gz", _gz(b'[{"question": "q"}, {"question": "r"}]')[:-12], "cut short"),
        ("train.json", b"[1, 2]", "record 0: expected an object"),
    ],
    ids=["truncated", "empty", "not_gzip", "bad_line", "not_utf8", "truncated_gz", "not_objects"],
)
def test_unreadable_files_name_the_file_and_the_place(tmp_path, name, content, fragment):
    file = tmp_path / name
    file.write_bytes(content)
    with pytest.raises(DataError) as error:
        load_source(str(file))
    assert str(file) in str(error.value) and fragment in str(error.value)
