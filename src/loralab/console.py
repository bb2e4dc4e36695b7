"""What a run prints and how it exits: each log line once, no third-party advertising, no
noise warnings, and exit code 2 for a command line that Hydra rejects.

Lightning gives its ``lightning`` logger a console handler of its own and also lets records
propagate to the root logger that Hydra configures, so every INFO line came out twice; it also
logs tips for its cloud products. (The training progress bar is ``loralab.progress``.)
"""

from __future__ import annotations

import logging
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


def run_entry_point(hydra_main: Callable[[], object]) -> None:
    """Run a console script's ``@hydra.main`` function. Hydra exits with 1 when it rejects the
    command line (an unknown option or key) before the task starts; that is a bad input, so
    it becomes exit 2 like every other one."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        hydra_main()
    except SystemExit as done:
        if done.code == 1 and not _task_started:
            sys.exit(EXIT_BAD_INPUT)
        raise


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
