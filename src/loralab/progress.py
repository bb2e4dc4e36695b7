"""The training progress bar: optimizer steps of the run, not batches of an epoch.

Lightning's bar counts the batches of the current epoch and is labelled "Epoch 0/-2" when a
run is bounded by ``max_steps``; loralab runs are, so the bar shows step k of max_steps, also
across epochs, under gradient accumulation, and from a resumed step on.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar


class StepProgressBar(RichProgressBar):
    """The training bar counts optimizer steps up to ``trainer.max_steps``, across epochs and
    from a resumed step on, instead of batches of the current epoch."""

    def _get_train_description(self, current_epoch: int) -> str:
        return f"{'Training':{len(self.validation_description)}}"

    @property
    def total_train_batches(self) -> int | float:
        if self.trainer.max_steps is not None and self.trainer.max_steps > 0:
            return self.trainer.max_steps
        return super().total_train_batches

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self.is_disabled and self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()
        self._update(self.train_progress_bar_id, trainer.global_step)
        self._update_metrics(trainer, pl_module)
        self.refresh()

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # the W&B run id, not a measurement
        return metrics
