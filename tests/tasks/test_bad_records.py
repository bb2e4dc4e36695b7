"""Every malformed record or file shape is a `DataError` naming the file, the record and the
field (exit 2 at the command line, no traceback), never another exception or a prompt built
from a value the file did not mean as text."""

import json

import pytest

from loralab.data.encoding import option_tokens
from loralab.tasks import DataError, build_task, task_config_errors
from tests.helpers import run_cli

ALL = {"train": None, "validation": None, "test": None}
PROBLEM = {"question": "Which is hot?", "choices": ["ice", "fire"], "answer": 1, "hint": ""}


def scienceqa(source, **extra):
    cfg = {"name": "scienceqa", "source": str(source), "text_only": True, "seed": 0}
    return build_task(cfg | {"max_examples": ALL} | extra, splits=("train",))


def write_jsonl(file, rows):
    file.parent.mkdir(parents=True, exist_ok=True)
    lines = (json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    file.write_text("".join(lines), encoding="utf-8")
    return file


def error_of(load) -> str:
    with pytest.raises(DataError) as error:
        load()
    return str(error.value)


@pytest.mark.parametrize(
    "change,field",
    [
        ({"choices": ["fire"], "answer": 0}, "field 'choices' holds 1 choice(s)"),
        ({"choices": [f"c{i}" for i in range(27)]}, "field 'choices' holds 27 choice(s)"),
        ({"choices": "ice, fire"}, "field 'choices'='ice, fire' is not a list"),
        ({"choices": ["ice", " "]}, "choice 1 of field 'choices' is empty"),
        ({"hint": 3}, "field 'hint'=3 is not text"),
        ({"hint": ["a hint"]}, "field 'hint'=['a hint'] is not text"),
        ({"subject": ["physics"]}, "field 'subject'=['physics'] is not text"),
        ({"question": ["Which", "is hot?"]}, "field 'question' is ['Which', 'is hot?'], not text"),
        ({"question": ""}, "field 'question' is empty"),
    ],
)
def test_a_bad_scienceqa_record_names_file_record_and_field(tmp_path, change, field):
    file = write_jsonl(tmp_path / "train.jsonl", [PROBLEM, PROBLEM | change])
    assert error_of(lambda: scienceqa(file)).startswith(f"{file}: record 1: {field}")


def original_release(folder, problems, pid_splits=None):
    (folder / "problems.json").write_text(json.dumps(problems))
    if pid_splits is not None:
        (folder / "pid_splits.json").write_text(pid_splits)
    return folder


@pytest.mark.parametrize(
    "pid_splits,fragment",
    [
        ('{"train": ["1"', "pid_splits.json: line 1, column"),
        ('["1"]', "pid_splits.json: expected an object of problem id lists"),
        ('{"train": "1"}', "pid_splits.json: field 'train'='1' must be a list of problem ids"),
        ('{"train": [1]}', "pid_splits.json: field 'train'=[1] must be a list of problem ids"),
    ],
)
def test_a_bad_pid_splits_file_is_named(tmp_path, pid_splits, fragment):
    folder = original_release(tmp_path, {"1": PROBLEM}, pid_splits)
    assert fragment in error_of(lambda: scienceqa(folder))


@pytest.mark.parametrize("pid_splits", [None, '{"train": ["1", "2"]}'])
def test_a_problem_that_is_no_object_is_named_by_its_id(tmp_path, pid_splits):
    folder = original_release(tmp_path, {"1": PROBLEM | {"split": "train"}, "2": "hot"}, pid_splits)
    expected = "record 1 (id '2'): expected an object of fields, got str 'hot'"
    assert error_of(lambda: scienceqa(folder)) == f"{folder / 'problems.json'}: {expected}"


def test_a_split_field_that_is_no_text_is_named(tmp_path):
    folder = original_release(tmp_path, {"7": PROBLEM | {"split": ["train"]}})
    assert "problems.json: record 0 (id '7'): field 'split'=['train']" in error_of(
        lambda: scienceqa(folder)
    )


def test_a_folder_in_place_of_a_split_file_is_named(tmp_path):
    (tmp_path / "train.jsonl").mkdir()
    assert (
        error_of(lambda: scienceqa(tmp_path))
        == f"{tmp_path / 'train.jsonl'}: is a folder, not a data file"
    )


def test_json_lines_split_at_newlines_only(tmp_path):
    """U+2028, U+0085 and the other Unicode line breaks are text inside a JSON string (Python's
    splitlines split there and the line was refused as an unterminated string)."""
    questions = ["Line\u2028separator?", "Next\x85line?", "Form\x0cfeed\u2029?"]
    file = write_jsonl(tmp_path / "train.jsonl", [PROBLEM | {"question": q} for q in questions])
    assert [r["question"] for r in scienceqa(file).splits["train"]] == questions


COMMONSENSE = {
    "instruction": "Is it hot? Answer format: true/false",
    "input": "",
    "output": "the correct answer is true",
    "answer": "true",
}


@pytest.mark.parametrize(
    "change,field",
    [
        ({"instruction": "Hot? Answer format: true/true"}, "answer words ['true', 'true']"),
        ({"instruction": "Hot? Answer format: true"}, "answer words ['true']"),
        ({"instruction": "Hot? Answer format: true/maybe"}, "answer words ['true', 'maybe']"),
        ({"input": ["context"]}, "field 'input'=['context'] is not text"),
    ],
)
def test_a_bad_commonsense_record_names_file_record_and_field(tmp_path, change, field):
    write_jsonl(tmp_path / "boolq" / "test.jsonl", [COMMONSENSE, COMMONSENSE | change])
    cfg = {"name": "boolq", "source": str(tmp_path), "seed": 0, "max_examples": ALL}
    message = error_of(lambda: build_task(cfg, splits=("test",)))
    assert (
        message.startswith(f"{tmp_path / 'boolq' / 'test.jsonl'}: record 1: ") and field in message
    )


def test_options_the_tokenizer_does_not_tell_apart_are_a_data_error(tokenizer):
    """Left to the tokenizer (the record layer has none): a DataError with the fix."""
    with pytest.raises(DataError, match="score mode needs distinct first answer tokens"):
        option_tokens(tokenizer, ["the answer is true", "the answer is true"])


def test_an_unreachable_hub_is_not_reported_as_a_missing_file():
    """The tests run with HF_HUB_OFFLINE=1 (conftest): the Hub cannot be reached."""
    message = error_of(lambda: scienceqa("loralab-tests/no-such-dataset"))
    assert message.startswith("could not reach the Hugging Face Hub for dataset ")
    for fragment in ("'loralab-tests/no-such-dataset'", "offline", "nor is it a local path"):
        assert fragment in message
    assert "point task.source at a local copy" in message


@pytest.mark.parametrize(
    "change,fragment",
    [
        ({"source": "/nonexistent"}, "task.source='/nonexistent' is not read by the demo task"),
        ({"text_only": False}, "task.text_only is not read by the demo task"),
    ],
)
def test_the_demo_task_refuses_keys_it_does_not_read(change, fragment):
    cfg = {"name": "demo", "source": "bundled", "seed": 0, "answer_form": "label"}
    cfg["max_examples"] = {"train": 8, "validation": 4, "test": 4}
    assert task_config_errors(cfg) == []
    assert any(fragment in e for e in task_config_errors(cfg | change))


def test_the_command_line_exits_2_naming_the_bad_record(tmp_path):
    file = write_jsonl(tmp_path / "train.jsonl", [PROBLEM, PROBLEM | {"question": ["a", "b"]}])
    args = [
        "model=tiny_llama",
        "task=scienceqa",
        f"task.source={file}",
        f"hydra.run.dir={tmp_path}",
    ]
    done = run_cli("loralab.cli.train", args, tmp_path, LORALAB_CACHE=str(tmp_path / "cache"))
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"loralab-train: {file}: record 1: field 'question'" in done.stderr
    assert "Traceback" not in done.stderr
