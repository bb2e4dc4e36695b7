"""ScienceQA from every source form the README lists, through the loaders the Hub path uses."""

import json

import datasets
import pytest

from loralab.data.encoding import IGNORE_INDEX, encode_example
from loralab.tasks import DataError, build_task
from loralab.tasks.alpaca import ALPACA_NO_INPUT

ALL = {"train": None, "validation": None, "test": None}


def scienceqa(source, text_only=True, splits=("train", "validation", "test"), **caps):
    cfg = {
        "name": "scienceqa",
        "source": str(source),
        "text_only": text_only,
        "seed": 0,
        "max_examples": ALL | caps,
    }
    return build_task(cfg, splits=splits)


def counts(task):
    return {split: len(records) for split, records in task.splits.items()}


def test_hf_sample_counts_and_the_references_rendering(shared_data):
    task = scienceqa(shared_data / "scienceqa" / "hf_sample")
    assert counts(task) == {"train": 200, "validation": 200, "test": 200}
    # The sample carries the MoE-LoRA reference's own rendering (instruction, output) of each
    # problem: our prompt and target must equal it on every record.
    reference = datasets.load_from_disk(str(shared_data / "scienceqa" / "hf_sample"))
    for split, records in task.splits.items():
        rendered = {(r["question"], tuple(r["choices"])): r for r in reference[split]}
        for record in records:
            expected = rendered[(record["question"], tuple(record["choices"]))]
            assert task.prompt(record) == ALPACA_NO_INPUT.format(
                instruction=expected["instruction"]
            )
            assert task.target(record) == expected["output"]


def test_known_record_renders_the_spec_prompt(shared_data, tokenizer):
    task = scienceqa(shared_data / "scienceqa" / "hf_sample", splits=("test",))
    record = next(r for r in task.splits["test"] if r["question"].endswith("knitting hats."))
    assert task.prompt(record) == (
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\n"
        "Context: Hint: People who can knit had to learn how to do it.\n"
        "Question: Is the following trait inherited or acquired?\n"
        "Sasha is good at knitting hats.\n"
        "Options: (A) acquired (B) inherited\n\n\n### Response:\n"
    )
    assert task.target(record) == "Answer: The answer is A."
    assert task.option_labels(record) == ["A", "B"] and task.gold_index(record) == 0
    item = encode_example(tokenizer, task.prompt(record), task.target(record), max_length=256)
    answer = [t for t in item.labels if t != IGNORE_INDEX]
    assert answer[-1] == tokenizer.eos_token_id and tokenizer.bos_token_id not in answer
    assert tokenizer.decode(answer[:-1]) == "Answer: The answer is A."


def test_hub_route_with_int_answers_and_images(shared_data, monkeypatch):
    """The Hub copy: int answers, an Image column; same records as the local sample."""
    local = datasets.load_from_disk(str(shared_data / "scienceqa" / "hf_sample"))
    png = _png_bytes()

    def hub_like(split):
        rows = local[split].to_list()[:20]
        for i, row in enumerate(rows):
            row["answer"] = "ABCDE".index(row["answer"])
            row["image"] = {"bytes": png, "path": None} if i % 4 == 0 else None
        features = local[split].features.copy()
        features["answer"], features["image"] = datasets.Value("int64"), datasets.Image()
        return datasets.Dataset.from_list(rows, features=features)

    calls = []

    def fake_load_dataset(path, data_dir=None, **kwargs):
        calls.append(path)
        return datasets.DatasetDict({s: hub_like(s) for s in ("train", "validation", "test")})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    task = scienceqa("derek-thomas/ScienceQA")
    assert calls == ["derek-thomas/ScienceQA"]
    assert counts(task) == {"train": 15, "validation": 15, "test": 15}  # 5 of 20 have an image
    expected = scienceqa(shared_data / "scienceqa" / "hf_sample", splits=("test",))
    keep = [r for i, r in enumerate(expected.splits["test"][:20]) if i % 4]
    strip = [{k: v for k, v in r.items() if k != "id"} for r in keep]
    assert [{k: v for k, v in r.items() if k != "id"} for r in task.splits["test"]] == strip
    assert counts(scienceqa("derek-thomas/ScienceQA", text_only=False))["test"] == 20


def _png_bytes() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_original_sample_with_pid_splits(shared_data):
    folder = shared_data / "scienceqa" / "original_sample"
    assert counts(scienceqa(folder)) == {"train": 28, "validation": 29, "test": 26}
    everything = scienceqa(folder, text_only=False)
    assert counts(everything) == {"train": 50, "validation": 50, "test": 50}
    record = everything.splits["train"][0]
    assert record["id"] == "1" and record["answer"] == 0 and record["choices"][0] == "West Virginia"


def test_original_partial_gz_with_split_field(shared_data):
    folder = shared_data / "scienceqa" / "original_partial"
    assert counts(scienceqa(folder)) == {"train": 520, "validation": 180, "test": 0}
    assert counts(scienceqa(folder, text_only=False)) == {
        "train": 1041,
        "validation": 371,
        "test": 0,
    }
    assert counts(scienceqa(folder / "problems.json.gz"))["train"] == 520


@pytest.mark.parametrize("name", ["test.json", "test.jsonl", "test.jsonl.gz", "test.parquet"])
def test_file_exports_load_like_the_saved_dataset(shared_data, tmp_path, name):
    saved = datasets.load_from_disk(str(shared_data / "scienceqa" / "hf_sample"))["test"]
    target = str(tmp_path / name)
    if name.endswith(".parquet"):
        saved.to_parquet(target)
    else:
        saved.to_json(target, lines=".jsonl" in name, compression="gzip" if ".gz" in name else None)
    from_file = scienceqa(tmp_path, splits=("test",))
    from_disk = scienceqa(shared_data / "scienceqa" / "hf_sample", splits=("test",))
    assert from_file.splits["test"] == from_disk.splits["test"]


def test_caps_take_a_seeded_sample(shared_data):
    folder = shared_data / "scienceqa" / "hf_sample"
    capped = scienceqa(folder, splits=("test",), test=50).splits["test"]
    assert (
        len(capped) == 50 and capped == scienceqa(folder, splits=("test",), test=50).splits["test"]
    )
    full = scienceqa(folder, splits=("test",)).splits["test"]
    assert capped != full[:50] and all(r in full for r in capped)


PROBLEM = {"question": "Which is hot?", "choices": ["ice", "fire"], "answer": 1, "hint": ""}


@pytest.mark.parametrize(
    "change,fragments",
    [
        ({"question": None}, ["record 1", "missing field 'question'"]),
        ({"answer": "C"}, ["record 1", "field 'answer'='C' is not among the 2 choices"]),
        ({"answer": 5}, ["record 1", "field 'answer'=5"]),
        ({"choices": []}, ["record 1", "field 'choices' holds 0 choice(s)"]),
    ],
)
def test_bad_records_name_file_record_and_field(tmp_path, change, fragments):
    rows = [dict(PROBLEM), dict(PROBLEM, **change)]
    (tmp_path / "test.json").write_text(json.dumps(rows))
    with pytest.raises(DataError) as err:
        scienceqa(tmp_path, splits=("test",))
    assert str(tmp_path / "test.json") in str(err.value)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_original_release_without_splits(tmp_path):
    problems = {"7": dict(PROBLEM, image=None), "8": dict(PROBLEM, image=None)}
    (tmp_path / "problems.json").write_text(json.dumps(problems))
    with pytest.raises(
        DataError, match=r"problems.json: record 0 \(id '7'\): missing field 'split'"
    ):
        scienceqa(tmp_path)


def test_missing_local_path(tmp_path):
    with pytest.raises(DataError, match="does not exist; expected a Hugging Face Hub dataset id"):
        scienceqa(tmp_path / "scienceqa_copy")


def mapped(source, drop_repeats=False, **caps):
    cfg = {"name": "scienceqa", "source": source, "text_only": True, "seed": 0}
    return build_task(cfg | {"drop_repeats": drop_repeats, "max_examples": ALL | caps})


def test_split_to_source_mapping_combines_partial_copies(shared_data):
    """The real-data twins' layout: train from both partial copies without repeats,
    validation from the original release, test from the Hub sample."""
    partial = str(shared_data / "scienceqa" / "original_partial")
    sample = str(shared_data / "scienceqa" / "hf_sample")
    source = {"train": [partial, sample], "validation": partial, "test": sample}
    task = mapped(source, drop_repeats=True)
    alone = {
        "partial": scienceqa(partial, splits=("train",)).splits["train"],
        "sample": scienceqa(sample, splits=("train",)).splits["train"],
    }
    keys = {  # problems identified by content, as the merge does
        name: {(r["question"], r["hint"], tuple(r["choices"]), r["answer"]) for r in records}
        for name, records in alone.items()
    }
    train = task.splits["train"]
    assert len(train) == len(keys["partial"] | keys["sample"])  # 520 + 200 minus repeats
    assert len(train) > 520
    assert len({(r["question"], r["hint"], tuple(r["choices"]), r["answer"]) for r in train}) == (
        len(train)
    )
    assert len(task.splits["validation"]) == 180  # original_partial's text-only val problems
    assert len(task.splits["test"]) == 200


def test_a_single_file_is_the_split_it_is_listed_under(tmp_path):
    problem = {"question": "Which is a fish?", "choices": ["trout", "cat"], "answer": 0}
    file = tmp_path / "problems_test.jsonl"
    file.write_text(json.dumps(problem) + "\n" + json.dumps(problem | {"question": "Q2"}) + "\n")
    task = mapped({"test": str(file)})
    assert len(task.splits["test"]) == 2 and task.splits["train"] == []


def test_a_mapped_split_keeps_its_repeats_unless_asked(tmp_path, caplog):
    """A split is scored as given (the official test split repeats 7 problems);
    task.drop_repeats=true drops repeats and logs their count and every source with a copy."""
    fish, cat = PROBLEM | {"question": "Fish?"}, PROBLEM | {"question": "Cat?"}
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("".join(json.dumps(p) + "\n" for p in (PROBLEM, PROBLEM, fish)))
    second.write_text("".join(json.dumps(p) + "\n" for p in (fish, cat)))
    assert len(mapped({"test": str(first)}).splits["test"]) == 3
    assert len(mapped({"test": [str(first), str(second)]}).splits["test"]) == 5
    with caplog.at_level("INFO", logger="loralab.tasks.scienceqa"):
        kept = mapped({"test": [str(first), str(second)]}, drop_repeats=True).splits["test"]
    assert [r["question"] for r in kept] == ["Which is hot?", "Fish?", "Cat?"]
    logged = "scienceqa/test: 2 repeated problems dropped (task.drop_repeats=true), copies in"
    assert f"{logged}: {first}, {second}" in caplog.text


def test_drop_repeats_must_be_true_or_false():
    from loralab.tasks import task_config_errors

    cfg = {"name": "scienceqa", "source": "x", "text_only": True, "seed": 0, "drop_repeats": "yes"}
    assert task_config_errors(cfg | {"max_examples": ALL}) == [
        "task.drop_repeats='yes' must be true or false"
    ]


def test_a_listed_source_without_that_split_names_it(shared_data):
    partial = str(shared_data / "scienceqa" / "original_partial")  # no test problems
    with pytest.raises(DataError, match="task.source.test: .*original_partial has no test split"):
        mapped({"test": partial})


@pytest.mark.parametrize(
    "source,fragment",
    [
        ({"dev": "a.jsonl"}, "task.source has splits ['dev']"),
        ({"train": 3}, "task.source.train=3 must be a source"),
    ],
)
def test_bad_source_mappings_are_config_errors(source, fragment):
    from loralab.tasks import task_config_errors

    cfg = {"name": "scienceqa", "source": source, "text_only": True, "seed": 0}
    errors = task_config_errors(cfg | {"max_examples": ALL})
    assert any(fragment in e for e in errors), errors
