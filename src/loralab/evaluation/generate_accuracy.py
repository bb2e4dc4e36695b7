"""The paper's accuracy curve: greedy generation, parsed by the paper's rule, during training.

The reference measures accuracy by generating up to 10 tokens for every test problem and
parsing them (exactly one ``The answer is X.``), every 100 optimizer steps and before training.
Score-mode accuracy (``test/acc``, ``val/acc``) is cheaper and cannot fail to parse; this curve
is the one the paper draws. Logged as ``{split}/gen_acc`` and ``{split}/gen_unparsable`` (the
share of outputs the parser could not read, counted wrong) at the number of optimizer steps
taken: step 0 is the untrained model. Each measurement's per-problem record (generated text,
parse, pick) goes to ``<predictions_dir>/<split>_generate_step<N>.jsonl``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback

from loralab.evaluation.predict import predict_split
from loralab.evaluation.predictions_file import write_predictions

log = logging.getLogger("loralab")


class GenerateAccuracy(Callback):
    def __init__(
        self,
        task,
        tokenizer,
        data_cfg: Mapping[str, Any],
        every: int,
        split: str = "test",
        max_new_tokens: int = 10,
        at_start: bool = True,
        predictions_dir: Path | None = None,
        num_beams: int = 1,
    ):
        self.task, self.tokenizer, self.data_cfg = task, tokenizer, dict(data_cfg)
        self.every, self.split, self.max_new_tokens = every, split, max_new_tokens
        self.at_start, self.num_beams = at_start, num_beams
        self.predictions_dir = predictions_dir  # each measurement's per-problem record, if set
        self._measured_at: int | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        # step 0 (unless at_start is off: every run of a grid would measure the same untrained
        # model); or a run resumed at a measuring step (the resume dropped that row)
        step = trainer.global_step
        if step % self.every == 0 and (step > 0 or self.at_start):
            self._measure(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # after a step is taken (step 0 belongs to on_train_start: under accumulation the first
        # micro-batch ends at step 0 too, and measured it even with at_start off)
        step = trainer.global_step
        if step > 0 and step % self.every == 0 and step != self._measured_at:
            self._measure(trainer, pl_module)

    def _measure(self, trainer, pl_module) -> None:
        self._measured_at = trainer.global_step
        if not trainer.is_global_zero:
            return
        with trainer.precision_plugin.forward_context():
            results, dropped = predict_split(
                pl_module.model,
                self.tokenizer,
                self.task,
                self.split,
                "generate",
                self.data_cfg,
                self.max_new_tokens,
                num_beams=self.num_beams,
            )
        if self.predictions_dir is not None:
            self.predictions_dir.mkdir(parents=True, exist_ok=True)
            name = f"{self.split}_generate_step{trainer.global_step}.jsonl"
            write_predictions(self.predictions_dir / name, results)
        total = len(results) + dropped  # a dropped over-long prompt counts as wrong
        accuracy = sum(r["correct"] for r in results) / total
        unparsable = sum(r["prediction"] is None for r in results) / total
        metrics = {f"{self.split}/gen_acc": accuracy, f"{self.split}/gen_unparsable": unparsable}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        log.info(
            "step %d: generate-mode %s accuracy %.1f%% over %d problems (%.1f%% unparsable)",
            trainer.global_step,
            self.split,
            100 * accuracy,
            total,
            100 * unparsable,
        )
