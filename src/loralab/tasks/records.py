"""Local JSON data read exactly as written: `Records`, `read_json_records` and `read_json`.

`datasets.load_dataset("json")` infers one Arrow type per column; where a column mixes strings
and numbers (a choice "1.50" in one record, 1.5 in another) it falls back to a JSON type that
parses the strings too, so "1.50", "true" and "null" reached the prompt as 1.5, True and None,
and a BoolQ answer given as an integer was reported with another record's value. Local JSON and
JSON Lines files are therefore read with Python's json module: every value stays what the file
says, and an unreadable file (a folder, not gzip, truncated, not UTF-8, bad JSON, not a list of
objects) is a `DataError` naming the file and the line or record. Parquet files, save_to_disk
folders and Hub datasets have typed columns and still come through `datasets`.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

from loralab.tasks.base import DataError


class Records:
    """A split's rows as dicts: the part of `datasets.Dataset`'s interface the tasks use."""

    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def column_names(self) -> list[str]:
        names: dict[str, None] = {}
        for row in self.rows:
            names.update(dict.fromkeys(row))
        return list(names)

    def remove_columns(self, names: list[str]) -> Records:
        return Records([{k: v for k, v in row.items() if k not in names} for row in self.rows])

    def select(self, indices) -> Records:
        return Records([self.rows[i] for i in indices])

    def to_list(self) -> list[dict]:
        return [dict(row) for row in self.rows]

    def is_null(self, column: str) -> list[bool]:
        return [row.get(column) is None for row in self.rows]


def read_json_records(file: Path) -> Records:
    """The records of a .json / .jsonl file (gzip-compressed with .gz): a JSON list of objects,
    or one object per line."""
    loaded = read_json(file)
    rows = loaded if isinstance(loaded, list) else [loaded]
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(
                f"{file}: record {index}: expected an object of fields, got {type(row).__name__}"
            )
    return Records(rows)


def read_json(file: Path):
    """The JSON value of a .json file, or the list of values of a JSON Lines file (.gz:
    gzip-compressed), with every reading error a `DataError` naming the file and line."""
    text = _text(file)
    if not text.strip():
        raise DataError(f"{file}: the file is empty (no records)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        # "Extra data": several JSON values, i.e. JSON Lines; other errors in a file of
        # objects one per line are reported by the line reader with their line number
        if err.msg != "Extra data" and not _looks_like_lines(text):
            raise DataError(f"{file}: line {err.lineno}, column {err.colno}: {err.msg}") from None
        return _json_lines(file, text)


def _text(file: Path) -> str:
    try:
        if file.name.endswith(".gz"):
            with gzip.open(file, "rb") as handle:
                raw = handle.read()
        else:
            raw = file.read_bytes()
    except gzip.BadGzipFile:
        raise DataError(f"{file}: not a gzip file, though its name ends in .gz") from None
    except (EOFError, zlib.error) as err:
        raise DataError(f"{file}: the compressed data is cut short or damaged ({err})") from None
    except IsADirectoryError:
        raise DataError(f"{file}: is a folder, not a data file") from None
    except OSError as err:
        raise DataError(f"{file}: cannot be read ({err.strerror})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(
            f"{file}: line {line}: not UTF-8 text (byte {raw[err.start]:#x} at offset "
            f"{err.start}); save the file as UTF-8"
        ) from None


def _looks_like_lines(text: str) -> bool:
    first = text.lstrip()[:1]
    return first == "{" and "\n" in text.strip()


def _json_lines(file: Path, text: str) -> list:
    """One JSON value per line. Lines end at "\\n" only, as JSON Lines defines: ``splitlines``
    also split inside strings holding U+2028, U+0085 and other Unicode line breaks."""
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise DataError(f"{file}: line {number}, column {err.colno}: {err.msg}") from None
    return rows
