"""What a run prints: each log line once, no third-party advertising, no noise warnings.

Lightning gives its ``lightning`` logger a console handler of its own and also lets records
propagate to the root logger that Hydra configures, so every INFO line came out twice; it also
logs tips for its cloud products. (The training progress bar is ``loralab.progress``.)
"""

from __future__ import annotations

import logging
import warnings

# Lightning's product tips, and a note on its own checkpoint loading (loralab's checkpoints are
# read by checkpointing.safe_load, which refuses pickled code).
NOISE = ("💡 Tip:", "`weights_only` was not set")


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
