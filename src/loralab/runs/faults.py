"""Faults planted on purpose, so that the tests (and a user checking a cluster's setup) can
watch the run's guards work: a NaN loss at one step (``debug.nan_at_step``: the non-finite
guard stops or skips it) and a signal to the run's own process at one step
(``debug.kill_at_step`` with ``debug.kill_signal``: a crash, a scheduler's stop or Ctrl+C,
then an exact resume). Kept out of the LightningModule: the product trains, this breaks it.
"""

from __future__ import annotations

import os
import signal

from lightning.pytorch.callbacks import Callback


class PlantedFaults(Callback):
    """Each fault fires once, at the first batch of its optimizer step (a skipped batch does
    not advance the step, and a SIGTERM lets that step finish)."""

    def __init__(
        self, nan_at_step: int | None, kill_at_step: int | None, kill_signal: str = "SIGKILL"
    ):
        self.nan_at_step, self.kill_at_step, self.kill_signal = (
            nan_at_step,
            kill_at_step,
            kill_signal,
        )
        self._poison = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        step = trainer.global_step
        if step == self.kill_at_step:
            self.kill_at_step = None
            os.kill(os.getpid(), signal.Signals[self.kill_signal])
        if step == self.nan_at_step:
            self.nan_at_step = None
            head = pl_module.model.get_output_embeddings()
            self._poison = head.register_forward_hook(lambda _, __, out: out * float("nan"))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._poison is not None:  # one batch's logits only
            self._poison.remove()
            self._poison = None
