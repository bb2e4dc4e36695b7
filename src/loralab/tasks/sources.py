"""Read a data source into named splits, the same way for the Hub and for local files.

A source is a Hugging Face Hub dataset id (``datasets.load_dataset(id)``), a
``datasets.save_to_disk`` folder (``load_from_disk``), a folder of per-split files or one file
(json / jsonl / json.gz / jsonl.gz / parquet, through ``load_dataset("json" | "parquet")``), or an
http(s) folder of per-split json files. Every route ends in ``datasets.Dataset`` splits, so one
normalisation per task serves them all, and nothing is converted to Python objects before the
splits are filtered and capped.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loralab.tasks.base import DataError
from loralab.tasks.records import read_json_records

log = logging.getLogger(__name__)

FILE_FORMATS = {
    ".json": "json",
    ".jsonl": "json",
    ".json.gz": "json",
    ".jsonl.gz": "json",
    ".parquet": "parquet",
}
SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
}
ACCEPTED = (
    "a Hugging Face Hub dataset id (owner/name), a datasets.save_to_disk folder, a folder of "
    "<split>.json / .jsonl / .json.gz / .jsonl.gz / .parquet files (split: train, validation, "
    "val, dev or test), one such file, or an http(s) folder of <split>.json files"
)
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


@dataclass
class SplitData:
    """One split's rows and where they come from (named in error messages)."""

    rows: object  # datasets.Dataset, or records.Records for local JSON files
    origin: str


def record_error(origin: str, index: int | str, message: str) -> DataError:
    """``<file>: record <index>: <message>``: the form every bad-data error takes."""
    return DataError(f"{origin}: record {index}: {message}")


def load_source(source: str, subdir: str | None = None) -> dict[str, SplitData]:
    """Splits of ``source`` (its ``subdir`` folder, if given), keyed train / validation / test."""
    if source.startswith(("http://", "https://")):
        return _load_remote_folder(_join(source, subdir))
    path = Path(source).expanduser()
    if path.exists():
        return _load_local(path / subdir if subdir else path)
    if HUB_ID.fullmatch(source):
        return _load_hub(source, subdir)
    raise DataError(f"data source {str(path)!r} does not exist; expected {ACCEPTED}")


def _load_hub(hub_id: str, subdir: str | None) -> dict[str, SplitData]:
    import datasets

    try:
        loaded = datasets.load_dataset(hub_id, data_dir=subdir)
    except Exception as err:  # offline, unknown id, ...: say why the Hub was tried at all
        if _unreachable(err):
            raise DataError(
                f"could not reach the Hugging Face Hub for dataset {hub_id!r}, offline or no "
                f"network ({err}), nor is it a local path: point task.source at a local copy "
                "(a datasets.save_to_disk folder or per-split files), or run where the Hub is "
                "reachable"
            ) from err
        raise DataError(
            f"data source {hub_id!r} is no local path, so it was loaded as a Hub dataset id, "
            f"which failed: {err}. Expected {ACCEPTED}"
        ) from err
    where = f"{hub_id}/{subdir}" if subdir else hub_id
    return _named(loaded, lambda split: f"{where}[{split}]")


def _unreachable(err: BaseException | None) -> bool:
    """Whether ``err`` or what led to it is a failed connection (``datasets`` raises
    ConnectionError both without a network and in the Hub's offline mode)."""
    while err is not None:
        if isinstance(err, ConnectionError):
            return True
        err = err.__cause__ or err.__context__
    return False


def _load_local(path: Path) -> dict[str, SplitData]:
    import datasets

    if not path.exists():
        raise DataError(f"data folder {str(path)!r} does not exist; expected {ACCEPTED}")
    if path.is_dir() and _is_saved_dataset(path):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.Dataset):
            loaded = datasets.DatasetDict(train=loaded)
        return _named(loaded, lambda split: f"{path}[{split}]")
    files = _split_files(path) if path.is_dir() else {"train": path}
    if not files:
        raise DataError(f"no data files in {str(path)!r}; expected {ACCEPTED}")
    return {split: SplitData(_read_file(file), str(file)) for split, file in files.items()}


def _load_remote_folder(url: str) -> dict[str, SplitData]:
    """``<url>/train.json`` and ``<url>/test.json`` (LLM-Adapters' layout); absent ones are skipped."""
    import datasets

    found = {}
    for split in ("train", "validation", "test"):
        file = f"{url}/{split}.json"
        try:
            found[split] = SplitData(
                datasets.load_dataset("json", data_files=file, split="train"), file
            )
        except FileNotFoundError:
            continue
    if not found:
        raise DataError(
            f"no train.json / validation.json / test.json could be read under {url!r}: not "
            "there, or the server is unreachable (offline or no network); point task.source at "
            "a local copy"
        )
    return found


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file()


def _split_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for file in sorted(folder.iterdir()):
        stem, suffix = _split_suffix(file.name)
        split = SPLIT_ALIASES.get(stem)
        if split is None or suffix is None:
            continue
        if split in files:
            raise DataError(
                f"two files for split {split!r} in {str(folder)!r}: {files[split].name}, {file.name}"
            )
        files[split] = file
    return files


def _split_suffix(name: str) -> tuple[str, str | None]:
    for suffix in sorted(FILE_FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)], suffix
    return name, None


def _read_file(file: Path):
    """JSON through Python's json (values exactly as written, `records`); parquet through
    datasets (typed columns)."""
    import datasets

    _, suffix = _split_suffix(file.name)
    if suffix is None:
        raise DataError(f"{str(file)!r} has an unknown format; expected {ACCEPTED}")
    if FILE_FORMATS[suffix] == "json":
        return read_json_records(file)
    try:
        return datasets.load_dataset("parquet", data_files=str(file), split="train")
    except Exception as err:  # pyarrow's errors for a damaged file: name the file
        raise DataError(f"{file}: not a readable parquet file ({err})") from None


def _named(loaded, origin: Callable[[str], str]) -> dict[str, SplitData]:
    splits = {}
    for name, rows in loaded.items():
        split = SPLIT_ALIASES.get(name)
        if split is not None:
            splits[split] = SplitData(rows, origin(name))
    return splits


def _join(url: str, subdir: str | None) -> str:
    return f"{url.rstrip('/')}/{subdir}" if subdir else url.rstrip("/")


TEST_TAKES = ("sample", "first")  # task.test_take: how a cap on the test split picks


def first_of_test(task_cfg, split: str) -> bool:
    """Whether ``split``'s cap takes its first N (``task.test_take=first``, lm-eval's --limit)."""
    return split == "test" and task_cfg.get("test_take", "sample") == "first"


def sample_indices(indices: list[int], n: int | None, seed: str, first: bool = False) -> list[int]:
    """A deterministic subsample of ``n`` of ``indices`` in their original order (all if None).

    Sources may be ordered (the 170k commonsense mix is grouped by task), so a cap takes a
    seeded sample, not the first ``n``; ``first``: the first ``n`` (as lm-eval's ``--limit``).
    """
    if n is None or n >= len(indices):
        return list(indices)
    if first:
        return list(indices[:n])
    chosen = set(random.Random(seed).sample(range(len(indices)), n))
    return [index for position, index in enumerate(indices) if position in chosen]


def hold_out(indices: list[int], n: int, seed: str) -> tuple[list[int], list[int]]:
    """Split ``indices`` into a deterministic held-out sample of ``n`` and the rest."""
    held = set(sample_indices(indices, n, seed))
    return [i for i in indices if i in held], [i for i in indices if i not in held]


def materialise(split: SplitData, indices: list[int], normalise) -> list[dict]:
    """The rows at ``indices`` as normalised dicts: ``normalise(row, origin, index)``."""
    rows = split.rows.select(indices).to_list()
    return [normalise(row, split.origin, index) for index, row in zip(indices, rows, strict=True)]
