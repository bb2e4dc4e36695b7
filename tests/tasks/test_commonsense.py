"""The eight commonsense tasks and the mix, from the shared LLM-Adapters files and the Hub route."""

import json

import datasets
import pytest

from loralab.data.encoding import IGNORE_INDEX, encode_example
from loralab.tasks import DataError, build_task

ALL = {"train": None, "validation": 0, "test": None}

# README table: (train, test); None = no train file.
README_COUNTS = {
    "boolq": (9427, 3270),
    "piqa": (None, 1838),
    "siqa": (33410, 1954),
    "hellaswag": (None, 10042),
    "winogrande": (None, 1267),
    "arc_e": (2251, 2376),
    "arc_c": (1119, 1172),
    "obqa": (4957, 500),
}


def commonsense(name, source, splits=("train", "validation", "test"), train_source=None, **caps):
    cfg = {"name": name, "source": str(source), "seed": 0, "max_examples": ALL | caps}
    if name == "commonsense":
        cfg["train_source"] = train_source
    return build_task(cfg, splits=splits)


@pytest.mark.parametrize("name", sorted(README_COUNTS))
def test_counts_match_the_readme(shared_data, name):
    train, test = README_COUNTS[name]
    task = commonsense(name, shared_data / "commonsense", splits=("train", "test"))
    assert len(task.splits["test"]) == test
    assert len(task.splits["train"]) == (train or 0)
    assert {r["task"] for r in task.splits["test"]} == {name}


def test_validation_is_held_out_of_train(shared_data):
    task = commonsense("obqa", shared_data / "commonsense", validation=120)
    assert len(task.splits["validation"]) == 120
    assert len(task.splits["train"]) == README_COUNTS["obqa"][0] - 120
    train_ids = {r["id"] for r in task.splits["train"]}
    assert not train_ids & {r["id"] for r in task.splits["validation"]}
    again = commonsense("obqa", shared_data / "commonsense", validation=120)
    assert again.splits["validation"] == task.splits["validation"]


def test_known_record_renders_the_alpaca_prompt(shared_data, tokenizer):
    task = commonsense("boolq", shared_data / "commonsense", splits=("test",), test=None)
    record = task.splits["test"][0]
    assert task.prompt(record) == (
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\n"
        "Please answer the following question with true or false, question: "
        "does ethanol take more energy make that produces?\n\nAnswer format: true/false"
        "\n\n### Response:\n"
    )
    assert task.target(record) == "the correct answer is false"
    assert task.option_targets(record) == [
        "the correct answer is true",
        "the correct answer is false",
    ]
    assert task.gold_index(record) == 1 and task.option_labels(record) == ["true", "false"]
    item = encode_example(tokenizer, task.prompt(record), task.target(record), max_length=256)
    answer = [t for t in item.labels if t != IGNORE_INDEX]
    assert tokenizer.decode(answer[:-1]) == "the correct answer is false"
    assert answer[-1] == tokenizer.eos_token_id and tokenizer.bos_token_id not in answer


def test_five_choice_arc_records(shared_data):
    task = commonsense("arc_e", shared_data / "commonsense", splits=("test",))
    record = next(r for r in task.splits["test"] if r["answer"] == "answer5")
    assert record["choices"] == ["answer1", "answer2", "answer3", "answer4", "answer5"]
    assert task.gold_index(record) == 4
    assert task.option_targets(record)[4] == "the correct answer is answer5"


def test_input_field_uses_the_with_input_template():
    from loralab.tasks.commonsense import instruction_prompt

    prompt = instruction_prompt({"instruction": "Pick one.", "input": "Some context."})
    assert "paired with an input" in prompt
    assert prompt.endswith(
        "### Instruction:\nPick one.\n\n### Input:\nSome context.\n\n### Response:\n"
    )


def test_mix_from_local_files(shared_data):
    task = commonsense(
        "commonsense", shared_data / "commonsense", train=3000, validation=60, test=10
    )
    tests = task.splits["test"]
    assert len(tests) == 80 and {r["task"] for r in tests} == set(README_COUNTS)
    assert len(task.splits["validation"]) == 60
    train_tasks = {r["task"] for r in task.splits["train"]}
    assert train_tasks == {"boolq", "siqa", "arc_e", "arc_c", "obqa"}  # the tasks with train files
    assert abs(len(task.splits["train"]) - 3000) <= 5  # per-source shares, rounded


def test_mix_from_the_hub(shared_data, monkeypatch):
    """``train_source`` a Hub id: ``datasets.load_dataset(id)``; then the same normalisation."""
    local_file = str(shared_data / "commonsense" / "boolq" / "train.json.gz")
    real_load_dataset = datasets.load_dataset
    calls = []

    def fake_load_dataset(path, data_dir=None, **kwargs):
        if path == "json":
            return real_load_dataset(path, data_dir=data_dir, **kwargs)
        calls.append(path)
        return real_load_dataset("json", data_files={"train": local_file})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    task = commonsense(
        "commonsense",
        shared_data / "commonsense",
        splits=("train", "validation"),
        train_source="zwhe99/commonsense_170k",
        train=500,
        validation=20,
    )
    assert calls == ["zwhe99/commonsense_170k"]
    assert len(task.splits["train"]) == 500 and len(task.splits["validation"]) == 20
    assert {r["task"] for r in task.splits["train"]} == {"commonsense"}
    assert {r["answer"] for r in task.splits["train"]} == {"true", "false"}


GOOD = {
    "instruction": "Is it? \n\nAnswer format: true/false",
    "input": "",
    "output": "the correct answer is true",
    "answer": "true",
}


@pytest.mark.parametrize(
    "change,fragment",
    [
        ({"output": None}, "missing field 'output'"),
        ({"answer": "maybe"}, "field 'answer'='maybe' is not among the choices ['true', 'false']"),
        ({"instruction": "Is it?"}, "field 'instruction' lists no choices"),
        (
            {"output": "the correct answer is"},
            "field 'output'='the correct answer is' does not name",
        ),
    ],
)
def test_bad_records_name_file_record_and_field(tmp_path, change, fragment):
    folder = tmp_path / "boolq"
    folder.mkdir()
    (folder / "test.json").write_text(json.dumps([GOOD, GOOD, dict(GOOD, **change)]))
    with pytest.raises(DataError) as err:
        commonsense("boolq", tmp_path, splits=("test",))
    assert f"{folder / 'test.json'}: record 2: {fragment}" in str(err.value)


def test_missing_task_folder_names_the_path(tmp_path):
    with pytest.raises(DataError) as err:
        commonsense("piqa", tmp_path, splits=("test",))
    assert str(tmp_path / "piqa") in str(err.value) and ".json.gz" in str(err.value)
