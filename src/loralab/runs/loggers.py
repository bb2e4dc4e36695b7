"""Experiment loggers: CSV always, W&B offline unless the user is logged in."""

from __future__ import annotations

import csv
import logging
import netrc
import os
import secrets
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.csv"


def wandb_mode(requested: str) -> str:
    """``auto`` means online only for a logged-in user; an explicit WANDB_MODE wins over the
    config. Online without an API key, or with the W&B server out of reach, falls back to
    offline with one warning line: wandb itself stalled about 100 s, then failed the run."""
    mode = os.environ.get("WANDB_MODE") or requested
    if mode == "auto":
        mode = "online" if _logged_in() else "offline"
    if mode == "online":
        problem = _online_problem()
        if problem is not None:
            log.warning(
                "W&B: %s; logging offline into the run directory instead (upload it later "
                "with `wandb sync`)",
                problem,
            )
            return "offline"
    return mode


def _online_problem() -> str | None:
    """Why W&B cannot log online from here, or None."""
    if not _logged_in():
        return "mode online but no API key (run `wandb login` or set WANDB_API_KEY)"
    server = urlsplit(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai")
    port = server.port or (443 if server.scheme == "https" else 80)
    if not _reachable(server.hostname or "", port):
        return f"{server.geturl()} cannot be reached (no network?)"
    return None


def _reachable(host: str, port: int, timeout: float = 5.0) -> bool:
    """Whether a TCP connection to host:port opens within ``timeout`` seconds (a thread, as
    a name lookup does not honour a socket timeout)."""
    opened = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                opened.append(True)
        except OSError:
            pass

    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout)
    return bool(opened)


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
    loggers: list[Logger] = [AppendingCSVLogger(save_dir=run_dir, name="", version="")]
    wandb_cfg = logger_cfg["wandb"]
    if wandb_cfg["enabled"]:
        mode = wandb_mode(wandb_cfg["mode"])
        os.environ["WANDB_MODE"] = mode
        id_file = Path(run_dir) / "wandb_run_id"
        if not (resume and id_file.is_file()):
            Path(run_dir).mkdir(parents=True, exist_ok=True)
            id_file.write_text(secrets.token_hex(4))
        wandb_logger = WandbLogger(
            save_dir=str(run_dir),
            name=run_name,
            project=wandb_cfg["project"],
            entity=wandb_cfg["entity"],
            group=wandb_cfg["group"],
            job_type=wandb_cfg.get("job_type") or experiment_name() or "default",
            tags=list(wandb_cfg["tags"]),
            offline=mode == "offline",
            mode=mode,
            config=config,
            id=id_file.read_text().strip(),
            resume="allow",
        )
        # Lightning always passes anonymous=None, which wandb >= 0.2x warns about on every run.
        wandb_logger._wandb_init.pop("anonymous", None)
        loggers.append(wandb_logger)
    return loggers


def experiment_name() -> str | None:
    """The experiment config Hydra composed (e.g. paper_fig3_cpu); None outside a Hydra run."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().runtime.choices.get("experiment")


def metrics_path(run_dir: Path) -> Path:
    return Path(run_dir) / METRICS_FILE


class _AppendingWriter(ExperimentWriter):
    """Continues an existing metrics.csv (a resumed run) instead of deleting it."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
                self.metrics_keys = sorted(next(csv.reader(handle), []))


class AppendingCSVLogger(CSVLogger):
    """Lightning's CSV logger, but a resumed run appends to its run's ``metrics.csv``."""

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class MetricsFileError(ValueError):
    """A metrics.csv that cannot be continued as it is (named with its line)."""


def truncate_metrics(metrics_csv: Path, from_step: int) -> None:
    """Drop rows logged at or after ``from_step`` (written after the checkpoint a run resumes
    from), so a resumed run's CSV holds every step exactly once; a validation row at
    ``from_step`` stays: it evaluates the checkpoint's own weights (logged at its step, run
    after the save) and a resumed run does not repeat it. Kept lines are written back
    byte for byte (no re-typing through a table); a line that is not a row of this file is an
    error naming it, except an unterminated last line, which a kill mid-write leaves (dropped
    with a warning)."""
    if not metrics_csv.is_file():
        return
    try:
        with open(metrics_csv, newline="", encoding="utf-8") as handle:  # keep \r\n line ends
            lines = handle.read().splitlines(keepends=True)
    except UnicodeDecodeError as err:
        raise MetricsFileError(
            f"{metrics_csv}: byte {err.start} is not UTF-8 text, so the file is not one loralab "
            "wrote; restore it or start a new run"
        ) from None
    if lines and not lines[-1].endswith("\n"):
        log.warning("%s: dropping the unterminated last line (a write cut short)", metrics_csv)
        lines = lines[:-1]
    if not lines:
        metrics_csv.unlink()
        return
    header = next(csv.reader([lines[0]]))
    if "step" not in header:
        raise MetricsFileError(
            f"{metrics_csv}: line 1 is not a loralab metrics header (no 'step' column); "
            "restore the file or start a new run"
        )
    column = header.index("step")
    kept = [lines[0]]
    for number, line in enumerate(lines[1:], start=2):
        fields = next(csv.reader([line]), [])
        step = fields[column] if len(fields) == len(header) else None
        if step is None or not step.isdigit():
            raise MetricsFileError(
                f"{metrics_csv}: line {number} is not a row of this file ({len(fields)} fields, "
                f"header {len(header)}; step {step!r}); repair or remove that line, then resume"
            )
        if int(step) < from_step or (int(step) == from_step and _validation_row(header, fields)):
            kept.append(line)
    if len(kept) == 1:
        metrics_csv.unlink()
        return
    partial = metrics_csv.with_name(metrics_csv.name + ".partial")
    with open(partial, "w", newline="") as handle:
        handle.write("".join(kept))
    partial.replace(metrics_csv)


TASK_ACCURACY = "test/acc/"  # + a task's name: its share of a mixed test split


def _validation_row(header: list[str], fields: list[str]) -> bool:
    """Whether a metrics row holds validation metrics only (besides step and epoch)."""
    logged = [name for name, value in zip(header, fields, strict=True) if value != ""]
    return all(name in ("step", "epoch") or name.startswith("val/") for name in logged)


def before_and_after(metrics_csv: Path, column: str) -> tuple[float | None, float | None]:
    """First and last logged value of ``column`` (test accuracy before and after training);
    the first is None where the column was logged once (no evaluation before training, or a
    run continued from another directory's checkpoint)."""
    return _ends(pd.read_csv(metrics_csv), column)


def before_and_after_by_task(metrics_csv: Path) -> dict[str, tuple[float | None, float | None]]:
    """`before_and_after` of each ``test/acc/<task>`` column: per-task test accuracy, logged
    where the test split mixes tasks (the commonsense mix); empty otherwise."""
    frame = pd.read_csv(metrics_csv)
    columns = [c for c in sorted(frame.columns) if c.startswith(TASK_ACCURACY)]
    by_task = {c.removeprefix(TASK_ACCURACY): _ends(frame, c) for c in columns}
    return {task: pair for task, pair in by_task.items() if pair[1] is not None}


def _ends(frame: pd.DataFrame, column: str) -> tuple[float | None, float | None]:
    values = frame[column].dropna().tolist() if column in frame else []
    if not values:
        return None, None
    return (values[0] if len(values) > 1 else None), values[-1]
