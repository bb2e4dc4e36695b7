"""Checkpoint files that survive a kill and never execute code when read.

``AtomicCheckpointIO`` writes to a temporary file in the same folder, fsyncs it and renames it
over the target, so a kill during a save leaves the previous checkpoint intact. Reading uses
``torch.load(weights_only=True)``: tensors and plain containers only, so a checkpoint that
carries pickled code is refused instead of run. A checkpoint also carries the RNG states
(`rng_state`), so a resumed run draws the same dropout masks and batches as an unbroken one.
"""

from __future__ import annotations

import logging
import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"


class UnsafeCheckpointError(RuntimeError):
    """The checkpoint holds objects other than tensors and plain containers."""


class ResumeMismatchError(ValueError):
    """The checkpoint was written by a run configured differently (the message says how)."""


# What a checkpoint's run must share with the run that resumes it: the model, its adapters,
# how they are trained and on what. Free to change: trainer.max_steps (extend a run),
# evaluation, checkpoint and logger settings.
RESUME_KEYS = ("model", "adapter", "optimizer", "task", "data", "seed")
RESUME_TRAINER_KEYS = ("accumulate_grad_batches",)
SCHEDULE_LENGTH = "optimizer.scheduler.total_steps"


def run_identity(resolved: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved run config that a checkpoint records and a resume must match.

    The learning-rate schedule is recorded with its length resolved: `linear` and `cosine`
    decay over `optimizer.scheduler.total_steps`, which defaults to `trainer.max_steps`, so
    extending a run's max_steps would stretch the schedule its first steps were trained with
    (the lr would jump at the resume). Such a resume is refused; with `total_steps` set to the
    old length, or a `constant` schedule, the extended run equals one longer run."""
    identity = {key: resolved[key] for key in RESUME_KEYS}
    trainer = resolved.get("trainer", {})
    identity["trainer"] = {k: trainer.get(k) for k in RESUME_TRAINER_KEYS}
    scheduler = identity["optimizer"].get("scheduler")
    if isinstance(scheduler, dict):
        decays = scheduler.get("name") != "constant"
        length = (scheduler.get("total_steps") or trainer.get("max_steps")) if decays else None
        schedule = dict(scheduler, total_steps=length)
        identity["optimizer"] = dict(identity["optimizer"], scheduler=schedule)
    return identity


def resume_mismatches(
    checkpoint: dict[str, Any], resolved: dict[str, Any], adapter_shapes: dict[str, tuple]
) -> list[str]:
    """How this run differs from the one that wrote ``checkpoint``: each differing config key
    (``key: there -> here``) and each adapter tensor whose shape differs or that is missing."""
    differences = []
    saved = checkpoint.get("loralab_run")
    if saved is not None:
        differences += _differences(_without_switches(saved), run_identity(resolved), "")
    if any(d.startswith(SCHEDULE_LENGTH + "=") for d in differences):
        there = saved["optimizer"]["scheduler"]["total_steps"]
        differences.append(
            f"{SCHEDULE_LENGTH} follows trainer.max_steps unless set: a longer run would "
            "stretch the schedule its first steps were trained with (the lr would jump at the "
            f"resume); add optimizer.scheduler.total_steps={there} to keep the schedule "
            "(the added steps then run at its final lr)"
        )
    stored = {k: tuple(v.shape) for k, v in checkpoint.get("state_dict", {}).items()}
    for name, shape in adapter_shapes.items():
        if name not in stored:
            differences.append(f"{name}: not in the checkpoint")
        elif stored[name] != shape:
            differences.append(f"{name}: shape {list(stored[name])} there -> {list(shape)} here")
    return differences


def _without_switches(identity: dict[str, Any]) -> dict[str, Any]:
    """A recorded identity without optimizer.base / riemannian / gate_rescale and
    adapter.gate_rescale: older runs recorded them, and optimizer.name fixes all four."""
    identity = dict(identity)
    for section, keys in (
        ("optimizer", ("base", "riemannian", "gate_rescale")),
        ("adapter", ("gate_rescale",)),
    ):
        if isinstance(identity.get(section), dict):
            identity[section] = {k: v for k, v in identity[section].items() if k not in keys}
    return identity


def _differences(there: Any, here: Any, prefix: str) -> list[str]:
    if isinstance(there, dict) and isinstance(here, dict):
        found = []
        for key in sorted(set(there) | set(here), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            found += _differences(there.get(key), here.get(key), name)
        return found
    return [] if there == here else [f"{prefix}={there!r} there -> {here!r} here"]


class StepCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, never between the accumulated batches of one optimizer
    step. After a resume it saved on the first batch of the step it resumed at (its record of
    the step last saved is not restored): a checkpoint of half a step, which the next resume
    continued a batch late. A file's ``{step}`` is the optimizer step it holds: Lightning takes
    a logged ``step`` metric first, and evaluations log theirs (the step they evaluated, which
    is an earlier one by the time the next checkpoint is saved)."""

    _trainer = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._trainer = trainer

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.between_steps():
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def format_checkpoint_name(self, metrics, filename=None, ver=None, prefix=None) -> str:
        if self._trainer is not None:
            metrics = dict(metrics, step=torch.tensor(self._trainer.global_step))
        return super().format_checkpoint_name(metrics, filename, ver, prefix)


class FinalStepCheckpoint(Callback):
    """Saves ``path`` right after the run's last optimizer step, inside the training loop like
    every other checkpoint. One saved after ``fit`` returns holds loop counters a step and an
    epoch on (the loop has closed its epoch), so a run extended from it (a larger
    ``trainer.max_steps``) logged every later row one step and one epoch late."""

    def __init__(self, path: Path):
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= trainer.max_steps:  # the loop stops after this batch
            trainer.save_checkpoint(self.path)


def close_finished_loop(trainer) -> None:
    """A run resumed from a checkpoint of its last step trains nothing, and Lightning's loop
    then keeps the counters of that step: the final test would be logged a step and an epoch
    before where the uninterrupted run logs it. Close the step, and the epoch of the last
    batch, as fit does."""
    loop = trainer.fit_loop
    loop.epoch_loop._batches_that_stepped = trainer.global_step
    batches = trainer.lightning_module.batches_done
    loop.epoch_progress.current.completed = -(-batches // trainer.num_training_batches)


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
        # torch's message advises retrying with weights_only=False; name only what it found
        found = [line for line in str(err).splitlines() if "GLOBAL" in line or "global" in line]
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it holds pickled objects beyond tensors and plain "
            "containers, which could run code" + (f" ({found[0].strip()})" if found else "")
        ) from None


def find_resume_checkpoint(resume: str | None, run_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint to resume from and its loaded state, or None. ``resume=auto``: this run
    directory's intact checkpoint with the most steps (``last.ckpt`` or a ``stepN.ckpt``; each
    one that cannot be read is named in the log); a path: that file, which must be readable."""
    if resume in (None, "", "never"):
        return None
    if resume == "auto":
        folder = run_dir / CHECKPOINT_DIR
        by_step = sorted(folder.glob("step*.ckpt"), key=_step_of, reverse=True)
        candidates = [p for p in [folder / LAST, *by_step] if p.is_file()]
        intact = []
        for path in candidates:
            state, problem = _load_intact(path)
            if problem is None:
                intact.append((path, state))
            else:
                log.warning("resume=auto: skipping %s, which cannot be read (%s)", path, problem)
        if intact:  # the most steps; last.ckpt on a tie (a kill can fall between two saves)
            return max(intact, key=lambda found: found[1].get("global_step", -1))
        if candidates:
            raise CorruptCheckpointError(
                f"resume=auto: no checkpoint in {folder} can be read "
                f"({', '.join(p.name for p in candidates)}); start a new run"
            )
        return None
    path = Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"resume={resume}: no such checkpoint file")
    state, problem = _load_intact(path)
    if problem is not None:
        others = sorted(p.name for p in path.parent.glob("*.ckpt") if p != path)
        raise CorruptCheckpointError(
            f"resume={resume}: the checkpoint cannot be read ({problem}); "
            + (f"other checkpoints beside it: {', '.join(others)}" if others else "none beside it")
        )
    return path, state


class CorruptCheckpointError(ValueError):
    """No readable checkpoint where a resume looked (a truncated or damaged file)."""


def _load_intact(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(state, None)``, or ``(None, why)`` when ``path`` cannot be loaded (truncated, not a
    checkpoint). A checkpoint carrying code is not skipped: that refusal stands."""
    try:
        return safe_load(path), None
    except UnsafeCheckpointError:
        raise
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        return None, str(err).splitlines()[0][:200]


def _step_of(path: Path) -> int:
    digits = "".join(c for c in path.stem if c.isdigit())
    return int(digits) if digits else -1


def rng_state() -> dict:
    """Python, NumPy and torch (CPU and CUDA) RNG states as tensors and plain values (what
    ``torch.load(weights_only=True)`` reads back). Dropout draws from torch's generators."""
    version, python, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": list(python)}
    state.update(python_version=version, python_gauss=gauss)
    state["numpy"] = {
        "kind": kind,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "position": int(position),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    saved = state.get("numpy")  # absent from older checkpoints
    if saved is not None:
        keys = saved["keys"].numpy().astype(np.uint32)
        np.random.set_state(
            (saved["kind"], keys, saved["position"], saved["has_gauss"], saved["cached"])
        )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
