"""Read the history of an offline W&B run (``run-<id>.wandb``) without any network.

The file is a LevelDB-style log (32 KiB blocks of CRC-framed chunks) of protobuf ``Record``
messages; history records hold the logged metric rows as JSON values. Reading it lets tests and
``loralab-figures`` use offline runs exactly as they were logged, before any ``wandb sync``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

BLOCK_SIZE = 32 * 1024
FILE_HEADER = struct.Struct("<4sHB")  # b":W&B", magic 0xBEE1, version
CHUNK_HEADER = struct.Struct("<IHB")  # crc32, length, type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _chunks(data: bytes) -> Iterator[tuple[int, bytes]]:
    offset = FILE_HEADER.size
    ident, _, _ = FILE_HEADER.unpack_from(data, 0)
    if ident != b":W&B":
        raise ValueError("not a W&B run file (missing :W&B header)")
    while offset + CHUNK_HEADER.size <= len(data):
        room = BLOCK_SIZE - offset % BLOCK_SIZE
        if room < CHUNK_HEADER.size:
            offset += room
            continue
        _, length, kind = CHUNK_HEADER.unpack_from(data, offset)
        offset += CHUNK_HEADER.size
        if kind == 0 and length == 0:  # zero padding at the end of a block
            offset += room - CHUNK_HEADER.size
            continue
        yield kind, data[offset : offset + length]
        offset += length


def read_records(path: str | Path):
    """Every protobuf ``Record`` in a ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2

    pending = b""
    for kind, payload in _chunks(Path(path).read_bytes()):
        if kind in (FIRST, MIDDLE):
            pending += payload
            continue
        data = pending + payload if kind == LAST else payload
        pending = b""
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        yield record


def read_history(path: str | Path) -> list[dict]:
    """The logged rows (``wandb.log`` calls) as dicts of key -> value."""
    rows = []
    for record in read_records(path):
        if record.WhichOneof("record_type") != "history":
            continue
        row = {}
        for item in record.history.item:
            key = item.key or "/".join(item.nested_key)
            row[key] = json.loads(item.value_json)
        rows.append(row)
    return rows


def find_run_file(run_dir: str | Path) -> Path:
    """The single offline ``run-*.wandb`` file under a loralab run directory."""
    found = sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
    if not found:
        raise FileNotFoundError(f"no offline W&B run under {run_dir}/wandb")
    return found[-1]
