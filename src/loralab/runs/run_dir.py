"""The run directory's policy: whether a run may use it, what it resumes from, taking it.

Every check here comes before anything is written, so a refused command leaves every
existing file as it was; only ``claim_run_dir`` writes, once every check has passed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from loralab.runs.checkpoints import (
    CHECKPOINT_DIR,
    ResumeMismatchError,
    find_resume_checkpoint,
    resume_mismatches,
)
from loralab.runs.loggers import metrics_path, truncate_metrics
from loralab.runs.ownership import RunLock


class UnwritableRunError(OSError):
    """The run's output folder cannot be written (found before anything trains)."""


def checkpoint_to_resume(resume: str | None, run_dir: Path):
    """``(path, state)`` of the checkpoint this run continues, or ``(None, None)``; refuses
    (writing nothing) a run directory that holds another run."""
    found = find_resume_checkpoint(resume, run_dir)
    checkpoint, saved = found if found is not None else (None, None)
    own = checkpoint is not None and checkpoint.resolve().parent.parent == run_dir.resolve()
    if metrics_path(run_dir).is_file() and not own:
        if checkpoint is not None:
            raise FileExistsError(
                f"{run_dir} already holds a run (metrics.csv), not the one that wrote "
                f"{checkpoint}: continue that run in an empty hydra.run.dir, or this one's with "
                "resume=auto (nothing was written)"
            )
        if resume != "auto":
            raise FileExistsError(
                f"{run_dir} already holds a run (metrics.csv); pass resume=auto to continue it "
                "or choose another hydra.run.dir: nothing was overwritten"
            )
    if run_dir.exists() and not os.access(run_dir, os.W_OK):
        raise UnwritableRunError(
            f"cannot write the run's outputs to {run_dir}: permission denied; choose another "
            "hydra.run.dir (nothing was trained)"
        )
    folder = run_dir / CHECKPOINT_DIR
    if folder.exists() and not folder.is_dir():
        raise UnwritableRunError(
            f"cannot write the run's checkpoints to {folder}: a file is in the folder's place; "
            "choose another hydra.run.dir or free that path (nothing was trained)"
        )
    return checkpoint, saved


def check_resume_matches(checkpoint: Path, saved: dict[str, Any], resolved: dict, model) -> None:
    """Refuse to continue ``checkpoint`` with a config or trainable shapes other than its own."""
    shapes = {f"model.{n}": tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad}
    mismatches = resume_mismatches(saved, resolved, shapes)
    if mismatches:
        raise ResumeMismatchError(
            f"cannot resume from {checkpoint}: it was written by a run configured "
            "differently, and nothing was written:\n  - "
            + "\n  - ".join(mismatches[:20])
            + "\nresume with the checkpoint's settings (see its run's .hydra/config.yaml), "
            "or start a new run (another hydra.run.dir, no resume)"
        )


def claim_run_dir(run_dir: Path, resumed_step: int | None, rank: int) -> RunLock:
    """Every check has passed: lock ``run_dir`` for this process (a second one is refused),
    check the checkpoint folder is writable and cut metrics.csv to the resumed step. Returns
    the lock, which the caller releases when the run ends. The other processes of a
    multi-device run (``rank`` > 0) share their rank 0's directory: an unheld lock."""
    lock = RunLock(run_dir)
    if rank != 0:
        return lock
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except PermissionError as err:
        raise UnwritableRunError(
            f"cannot write the run's outputs to {run_dir}: {err.strerror}; choose another "
            "hydra.run.dir (nothing was trained)"
        ) from None
    try:
        ensure_writable(run_dir / CHECKPOINT_DIR)
        truncate_metrics(metrics_path(run_dir), resumed_step or 0)
    except BaseException:
        lock.release()
        raise
    return lock


def write_config_record(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> None:
    """`.hydra/config.yaml` (the composed config) and `.hydra/overrides.yaml` (the command
    line), written by the run itself once everything is checked; Hydra's own writer is off
    (`hydra.output_subdir: null`) because it rewrote them before any check, so a refused command
    replaced a finished run's record. A resume rewrites them with its (compatible) config."""
    folder = run_dir / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder / "config.yaml")
    OmegaConf.save(OmegaConf.create(list(overrides)), folder / "overrides.yaml")


def ensure_writable(folder: Path) -> None:
    """Create `folder` and write a probe file into it now, so that a read-only disk or a file in
    the folder's place stops the run before training, not after it with the adapter lost."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise UnwritableRunError(
            f"cannot write the run's checkpoints to {folder}: {err.strerror or err}; choose "
            "another hydra.run.dir or free that path (nothing was trained)"
        ) from None
