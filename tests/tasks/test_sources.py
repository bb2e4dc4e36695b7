"""Source reading: every local form and the Hub route end in the same splits."""

import datasets
import pytest

from loralab.tasks import DataError
from loralab.tasks.sources import hold_out, load_source, sample_indices

ROWS = [{"question": f"q{i}", "answer": i % 2} for i in range(6)]


def _write(folder, name, rows):
    path = folder / name
    dataset = datasets.Dataset.from_list(rows)
    if name.endswith(".parquet"):
        dataset.to_parquet(str(path))
    else:
        dataset.to_json(str(path), lines=".jsonl" in name)
    return path


def test_folder_of_split_files_in_any_format(tmp_path):
    _write(tmp_path, "train.parquet", ROWS)
    _write(tmp_path, "val.jsonl", ROWS[:2])
    _write(tmp_path, "test.json", ROWS[:3])
    (tmp_path / "notes.txt").write_text("ignored")
    splits = load_source(str(tmp_path))
    assert {name: len(split.rows) for name, split in splits.items()} == {
        "train": 6,
        "validation": 2,
        "test": 3,
    }
    assert splits["validation"].origin.endswith("val.jsonl")
    assert splits["train"].rows.to_list() == ROWS


def test_one_file_is_the_train_split(tmp_path):
    file = _write(tmp_path, "mix.jsonl", ROWS)
    assert len(load_source(str(file))["train"].rows) == 6


def test_save_to_disk_folder(tmp_path):
    datasets.DatasetDict(train=datasets.Dataset.from_list(ROWS)).save_to_disk(str(tmp_path / "d"))
    splits = load_source(str(tmp_path / "d"))
    assert splits["train"].rows.to_list() == ROWS


def test_hub_id_goes_through_load_dataset(monkeypatch):
    calls = []

    def fake_load_dataset(path, data_dir=None, **kwargs):
        calls.append((path, data_dir))
        return datasets.DatasetDict(test=datasets.Dataset.from_list(ROWS))

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    splits = load_source("owner/some-dataset", "boolq")
    assert calls == [("owner/some-dataset", "boolq")]
    assert splits["test"].origin == "owner/some-dataset/boolq[test]"


def test_hub_failure_says_it_was_tried_as_a_hub_id(monkeypatch):
    def not_on_the_hub(*args, **kwargs):
        raise FileNotFoundError("Dataset 'owner/typo-in-a-local-path' doesn't exist on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", not_on_the_hub)
    with pytest.raises(DataError, match="no local path, so it was loaded as a Hub dataset id"):
        load_source("owner/typo-in-a-local-path")


def test_missing_path_names_it_and_the_accepted_formats(tmp_path):
    missing = tmp_path / "nowhere" / "data"
    with pytest.raises(DataError) as err:
        load_source(str(missing))
    assert str(missing) in str(err.value)
    for fragment in ("save_to_disk", ".jsonl", ".json.gz", ".parquet", "Hub dataset id"):
        assert fragment in str(err.value)


def test_folder_without_data_files(tmp_path):
    (tmp_path / "README.md").write_text("nothing here")
    with pytest.raises(DataError, match="no data files in"):
        load_source(str(tmp_path))


def test_two_files_for_one_split(tmp_path):
    _write(tmp_path, "val.json", ROWS)
    _write(tmp_path, "validation.jsonl", ROWS)
    with pytest.raises(DataError, match="two files for split 'validation'"):
        load_source(str(tmp_path))


def test_samples_are_deterministic_ordered_subsets():
    indices = list(range(100, 200))
    sample = sample_indices(indices, 10, "0/test")
    assert sample == sample_indices(indices, 10, "0/test")
    assert sample != sample_indices(indices, 10, "1/test")
    assert sample == sorted(sample) and set(sample) <= set(indices) and len(sample) == 10
    assert sample_indices(indices, None, "0/test") == indices
    assert sample_indices(indices, 500, "0/test") == indices


def test_hold_out_is_disjoint_and_complete():
    held, rest = hold_out(list(range(50)), 7, "0/validation")
    assert len(held) == 7 and not set(held) & set(rest) and sorted(held + rest) == list(range(50))


def test_remote_folder_takes_the_split_files_it_finds(monkeypatch):
    """LLM-Adapters' GitHub folders hold test.json and sometimes train.json."""
    requested = []

    def fake_load_dataset(path, data_files=None, split=None, **kwargs):
        requested.append(data_files)
        if not data_files.endswith("/test.json"):
            raise FileNotFoundError(data_files)
        return datasets.Dataset.from_list(ROWS)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    splits = load_source("https://example.org/dataset/", "piqa")
    assert (
        list(splits) == ["test"]
        and splits["test"].origin == "https://example.org/dataset/piqa/test.json"
    )
    assert "https://example.org/dataset/piqa/train.json" in requested
