"""SIGTERM (what schedulers send before they kill) and Ctrl+C stop a run at its next optimizer
step with a checkpoint saved, so ``resume=auto`` continues it exactly.

Lightning swallows SIGTERM in a single process and trains on, and turns Ctrl+C into a shutdown
without a checkpoint. Here the signal is noted, the current optimizer step finishes (a step is
never cut between two accumulated batches), ``last.ckpt`` is written and ``RunInterrupted``
ends the run, before the final test, with exit code 128 + the signal's number. A second
Ctrl+C stops at once.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path

from lightning.pytorch.callbacks import Callback

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunInterrupted(Exception):
    """The run stopped on a signal after saving ``checkpoint`` at ``step``."""

    def __init__(self, signum: int, step: int, checkpoint: Path):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.exit_code = 128 + signum
        super().__init__(
            f"stopped by {signal.Signals(signum).name} after step {step}; checkpoint saved to "
            f"{checkpoint}"
        )


class StopOnSignal(Callback):
    """Within ``watching()``, a SIGTERM or SIGINT stops training at the next optimizer step
    with ``path`` saved."""

    def __init__(self, path: Path):
        self.path = path
        self.received: int | None = None
        self.stopped_at: int | None = None

    @contextmanager
    def watching(self):
        previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
        self._listen()
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _listen(self) -> None:
        for signum in SIGNALS:
            signal.signal(signum, self._note)

    def _note(self, signum, frame) -> None:
        self.received = signum
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl+C: at once

    def on_train_start(self, trainer, pl_module) -> None:
        # Lightning has just put its own SIGTERM handler in place (it would end the run with
        # exit 0 and no checkpoint at the end of the current batch): listen again.
        if self.received is None:
            self._listen()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.received is None or self.stopped_at is not None:
            return
        if not pl_module.between_steps():
            return  # mid-way through an optimizer step's batches
        # Saved where ModelCheckpoint saves; this step then ends as usual (its metrics row, a
        # validation due at it) and the run stops at the next batch, as one killed right after
        # this save would.
        trainer.save_checkpoint(self.path)
        self.stopped_at = trainer.global_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.raise_if_stopped()

    def raise_if_stopped(self) -> None:
        """A run stopped on a signal ends here: at the next batch, or after ``fit`` where the
        signal came at the last step (before the final test)."""
        if self.stopped_at is not None:
            raise RunInterrupted(self.received, self.stopped_at, self.path)
