"""What a run prints and how it exits: each log line once, no third-party advertising, no
noise warnings, and exit code 2 for a command line that Hydra rejects.

Lightning gives its ``lightning`` logger a console handler of its own and also lets records
propagate to the root logger that Hydra configures, so every INFO line came out twice; it also
logs tips for its cloud products. (The training progress bar is ``loralab.cli.progress``.)
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import warnings
from collections.abc import Callable

# Lightning's product tips, and a note on its own checkpoint loading (loralab's checkpoints are
# read by runs.checkpoints.safe_load, which refuses pickled code).
NOISE = ("💡 Tip:", "`weights_only` was not set")


EXIT_BAD_INPUT = 2
_task_started = False


def mark_task_started() -> None:
    """Call first in a Hydra task function: from then on an exit code is the task's own."""
    global _task_started
    _task_started = True


class JobFailed(Exception):
    """One job of a multirun ended with ``code``: the task function catches it and returns,
    so the sweep goes on with the next job (Hydra would print a traceback for it)."""

    def __init__(self, code: int, message: str):
        self.code = code
        super().__init__(message)


_failed_jobs: list[tuple[str, int]] = []  # (job description, exit code) of this multirun


def fail(code: int) -> None:
    """End the task with exit ``code`` (its message printed already). In a multirun the job is
    recorded instead and the sweep goes on: exiting stopped every job after it unrun, with
    nothing said; ``run_entry_point`` reports each failed job and exits with the highest
    code once the sweep is done."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    if hydra is None or hydra.mode != RunMode.MULTIRUN:
        sys.exit(code)
    job = f"#{hydra.job.num} ({' '.join(hydra.overrides.task) or 'no overrides'})"
    _failed_jobs.append((job, code))
    raise JobFailed(code, f"job {job} failed with exit code {code}")


def run_entry_point(hydra_main: Callable[[], object]) -> None:
    """Run a console script's ``@hydra.main`` function. Hydra exits with 1 when it rejects the
    command line (an unknown option or key) before the task starts; that is a bad input, so
    it becomes exit 2 like every other one. A multirun with failed jobs exits with the
    highest of their codes after listing them."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        hydra_main()
    except SystemExit as done:
        _exit_if_jobs_failed()
        if done.code == 1 and not _task_started:
            sys.exit(EXIT_BAD_INPUT)
        raise
    _exit_if_jobs_failed()


def _exit_if_jobs_failed() -> None:
    if not _failed_jobs:
        return
    lines = "\n".join(f"  - job {job}: exit {code}" for job, code in _failed_jobs)
    print(
        f"loralab: {len(_failed_jobs)} job(s) of the multirun failed:\n{lines}",
        file=sys.stderr,
    )
    sys.exit(max(code for _, code in _failed_jobs))


class _HeldLogFile(logging.handlers.MemoryHandler):
    """Keeps a run's log records in memory until the run owns its directory, then writes them
    to the log file: a command refused after a few log lines must not create or append to the
    run's ``train.log``. Records still held at exit are dropped (logging's shutdown flushes
    every handler: this one writes only once released)."""

    released = False

    def shouldFlush(self, record: logging.LogRecord) -> bool:
        return False

    def flush(self) -> None:
        if self.released:
            super().flush()


def hold_log_file() -> None:
    """Detach the root logger's file handlers (Hydra's job log) and hold their records."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)
        root.addHandler(_HeldLogFile(capacity=0, target=handler, flushOnClose=False))


def open_log_file() -> None:
    """The run owns its directory: write the held records and log to the file from now on."""
    root = logging.getLogger()
    for held in [h for h in root.handlers if isinstance(h, _HeldLogFile)]:
        root.removeHandler(held)
        root.addHandler(held.target)
        held.released = True
        held.flush()


def quiet_known_warnings() -> None:
    """Silence third-party warnings that say nothing actionable about a loralab run."""
    warnings.filterwarnings("ignore", message=".*Experiment logs directory .* exists")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*is not supported by the model summary.*")


def route_lightning_logs() -> None:
    """Send Lightning's records through the root logger only (Hydra's format and log file),
    without its advertising tips and noise. Call once logging is configured."""
    import lightning.pytorch  # noqa: F401  (its import installs the handlers removed here)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        source = logging.getLogger(name)
        for handler in list(source.handlers):
            source.removeHandler(handler)
        source.propagate = True
    for name in (
        "lightning.pytorch.utilities.rank_zero",
        "lightning.fabric.utilities.rank_zero",
        "lightning.pytorch.trainer.connectors.checkpoint_connector",
    ):
        source = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in source.filters):
            source.addFilter(_DropNoise())


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(NOISE)
