"""Checkpoint files that survive a kill and never execute code when read.

``AtomicCheckpointIO`` writes to a temporary file in the same folder, fsyncs it and renames it
over the target, so a kill during a save leaves the previous checkpoint intact. Reading uses
``torch.load(weights_only=True)``: tensors and plain containers only, so a checkpoint that
carries pickled code is refused instead of run.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"


class UnsafeCheckpointError(RuntimeError):
    """The checkpoint holds objects other than tensors and plain containers."""


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        with open(partial, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, target)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return safe_load(path, map_location)


def safe_load(path, map_location=None) -> dict[str, Any]:
    """``torch.load`` restricted to tensors and plain containers."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it holds pickled objects beyond tensors and plain "
            f"containers, which could run code ({str(err).splitlines()[0]})"
        ) from err


def find_resume_checkpoint(resume: str | None, run_dir: Path) -> Path | None:
    """``resume=auto``: this run directory's last checkpoint if there is one; a path: that file."""
    if resume in (None, "", "never"):
        return None
    if resume == "auto":
        last = run_dir / CHECKPOINT_DIR / LAST
        return last if last.is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"resume={resume}: no such checkpoint file")
    return path
