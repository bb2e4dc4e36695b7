"""Experiment loggers: CSV always, W&B offline unless the user is logged in."""

from __future__ import annotations

import netrc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
    logger_cfg: Mapping[str, Any], run_dir: Path, run_name: str, config: dict
) -> list[Logger]:
    """CSV logger writing ``run_dir/metrics.csv`` plus, if enabled, a W&B run in ``run_dir``."""
    loggers: list[Logger] = [CSVLogger(save_dir=run_dir, name="", version="")]
    wandb_cfg = logger_cfg["wandb"]
    if wandb_cfg["enabled"]:
        mode = wandb_mode(wandb_cfg["mode"])
        os.environ["WANDB_MODE"] = mode
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
            )
        )
    return loggers


def metrics_path(run_dir: Path) -> Path:
    return Path(run_dir) / METRICS_FILE
