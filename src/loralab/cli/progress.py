"""Training progress: a bar of optimizer steps on a terminal, log lines elsewhere.

Lightning's bar counts the batches of the current epoch and is labelled "Epoch 0/-2" when a
run is bounded by ``max_steps``; loralab runs are, so the bar shows step k of max_steps, also
across epochs, under gradient accumulation, and from a resumed step on. With the output sent
to a file (a batch job) a bar draws nothing until the end: `ProgressLog` then logs a line at
every twentieth of the run, or after a minute without one.
"""

from __future__ import annotations

import logging
import math
import time

from lightning.pytorch.callbacks import Callback, RichProgressBar

log = logging.getLogger("loralab")


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


class ProgressLog(Callback):
    """Logs ``Training: step k/max, loss, steps/s, time left`` every ``max_steps / lines``
    steps, or after ``seconds`` without a line, and at the last step."""

    def __init__(self, lines: int = 20, seconds: float = 60.0):
        self.lines, self.seconds = lines, seconds
        self._start: tuple[float, int] | None = None  # (time, step) where timing began
        self._last_line = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = time.monotonic(), trainer.global_step
        self._last_line = self._start[0]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step, total = trainer.global_step, trainer.max_steps
        every = max(1, math.ceil(total / self.lines))
        now = time.monotonic()
        due = step % every == 0 or step >= total or now - self._last_line >= self.seconds
        if step == self._start[1] or not due or not pl_module.between_steps():
            return
        self._last_line = now
        rate = (step - self._start[1]) / max(now - self._start[0], 1e-9)
        loss = trainer.callback_metrics.get("train/loss")
        left = (total - step) / rate if rate > 0 else float("inf")
        log.info(
            "Training: step %d/%d, loss %s, %.2f steps/s, %s left",
            step,
            total,
            "n/a" if loss is None else f"{float(loss):.4f}",
            rate,
            _duration(left),
        )


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
