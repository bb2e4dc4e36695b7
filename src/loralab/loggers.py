"""Experiment loggers: CSV always, W&B offline unless the user is logged in."""

from __future__ import annotations

import netrc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger

METRICS_FILE = "metrics.csv"


def wandb_mode(requested: str) -> str:
    """``auto`` means online only for a logged-in user; an explicit WANDB_MODE always wins."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if requested != "auto":
        return requested
    return "online" if _logged_in() else "offline"


def _logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def build_loggers(
    logger_cfg: Mapping[str, Any], run_dir: Path, run_name: str, config: dict, resume: bool = False
) -> list[Logger]:
    """CSV logger writing ``run_dir/metrics.csv`` plus, if enabled, a W&B run in ``run_dir``.

    The W&B run id is kept in ``run_dir/wandb_run_id``; a resumed run continues that W&B run
    instead of starting a duplicate.
    """
    loggers: list[Logger] = [CSVLogger(save_dir=run_dir, name="", version="")]
    wandb_cfg = logger_cfg["wandb"]
    if wandb_cfg["enabled"]:
        mode = wandb_mode(wandb_cfg["mode"])
        os.environ["WANDB_MODE"] = mode
        id_file = Path(run_dir) / "wandb_run_id"
        if not (resume and id_file.is_file()):
            from wandb.util import generate_id

            Path(run_dir).mkdir(parents=True, exist_ok=True)
            id_file.write_text(generate_id())
        loggers.append(
            WandbLogger(
                save_dir=str(run_dir),
                name=run_name,
                project=wandb_cfg["project"],
                entity=wandb_cfg["entity"],
                group=wandb_cfg["group"],
                tags=list(wandb_cfg["tags"]),
                offline=mode == "offline",
                mode=mode,
                config=config,
                id=id_file.read_text().strip(),
                resume="allow",
            )
        )
    return loggers


def metrics_path(run_dir: Path) -> Path:
    return Path(run_dir) / METRICS_FILE


def truncate_metrics(metrics_csv: Path, from_step: int) -> None:
    """Drop rows logged at or after ``from_step`` (written after the checkpoint a run resumes
    from), so a resumed run's CSV holds every step exactly once."""
    if not metrics_csv.is_file():
        return
    frame = pd.read_csv(metrics_csv)
    frame[frame["step"] < from_step].to_csv(metrics_csv, index=False)


def first_and_last(metrics_csv: Path, column: str) -> tuple[float | None, float | None]:
    """First and last logged value of ``column`` (e.g. test accuracy before and after)."""
    frame = pd.read_csv(metrics_csv)
    values = frame[column].dropna().tolist() if column in frame else []
    return (values[0], values[-1]) if values else (None, None)
