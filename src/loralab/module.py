"""LightningModule: answer-only loss, option-scoring accuracy, router statistics, optimizers."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
import torch.nn.functional as F

from loralab.evaluation.likelihood import option_loglikelihoods
from loralab.evaluation.option_metrics import mean_stderr, option_picks, option_tables
from loralab.evaluation.scoring import (
    answer_logits,
    base_hidden,
    decision_token,
    predict_options,
)
from loralab.runs.checkpoints import rng_state, set_rng_state

if TYPE_CHECKING:
    from loralab.optim import OptimizerConfig


class NonFiniteError(FloatingPointError):
    """A NaN or infinite loss or gradient (the message names the step)."""


class FineTuningModule(L.LightningModule):
    """Trains the adapters of ``model``; the frozen base is never updated or checkpointed.

    ``nonfinite="stop"`` raises ``NonFiniteError`` on a NaN/inf loss or gradient (the last good
    checkpoint stays); ``"skip"`` drops that batch's update and counts it in ``train/skipped``.
    """

    def __init__(
        self,
        model,
        optimizer_cfg: OptimizerConfig | Mapping[str, Any],
        router_stats_every: int = 10,
        router_stats_per_layer: bool = False,
        nonfinite: str = "stop",
    ):
        super().__init__()
        self.model = model
        self.optimizer_cfg = optimizer_cfg
        self.router_stats_every = router_stats_every
        self.router_stats_per_layer = router_stats_per_layer
        self.nonfinite = nonfinite
        self.skipped = 0
        self._micro_losses: list[torch.Tensor] = []  # this optimizer step's micro-batch losses
        self.run_identity: dict | None = None
        self.batches_done = 0  # training batches consumed: where the sampler resumes
        self.test_records: list[dict] = []  # the last test pass, per question (predictions.jsonl)
        self._pending_rng = None
        self.strict_loading = False  # checkpoints hold the adapters only
        # This run's wall time across resumes: a resumed run adds the time its checkpoint
        # records (``loralab_wall_time_s``, up to that save; a killed process's time after its
        # last save is not counted) to its own.
        self.wall_time_before = 0.0
        self.clock_started = time.perf_counter()

    def wall_time_s(self) -> float:
        return self.wall_time_before + time.perf_counter() - self.clock_started

    def training_step(self, batch, batch_idx):
        from loralab.adapters import auxiliary_loss, collect_router_stats, enable_router_stats

        first_micro_batch = not self._micro_losses
        every = self.router_stats_every
        log_router = first_micro_batch and every > 0 and self.global_step % every == 0
        enable_router_stats(self.model, log_router)
        loss, decision = self._token_mean_loss(batch)
        aux = auxiliary_loss(self.model)
        total = loss if aux is None else loss + aux
        size = batch["input_ids"].shape[0]
        if not torch.isfinite(total):
            self._micro_losses = []
            return self._non_finite(f"loss is {total.item()}")
        self._micro_losses.append(torch.stack([loss.detach(), *decision]))
        if self._steps_after_this_batch(batch_idx):
            # The reference logs the mean over the effective batch: the mean of the micro-batch
            # losses of this optimizer step (each a mean over its answer tokens).
            step_loss, decision_loss, decision_acc = torch.stack(self._micro_losses).mean(dim=0)
            self._micro_losses = []
            sync = self.trainer.world_size > 1
            self.log("train/loss", step_loss, prog_bar=True, batch_size=size, sync_dist=sync)
            self.log("train/decision_loss", decision_loss, batch_size=size, sync_dist=sync)
            self.log("train/decision_acc", decision_acc, batch_size=size, sync_dist=sync)
            if self.nonfinite == "skip":
                self.log("train/skipped", float(self.skipped), batch_size=1)
            if aux is not None:
                self.log("train/aux_loss", aux, batch_size=size)
        if log_router:
            self._log_now(collect_router_stats(self.model, self.router_stats_per_layer))
            enable_router_stats(self.model, False)
        return total

    def _log_now(self, metrics: Mapping[str, Any]) -> None:
        """Send metrics measured at this step only, straight to the loggers: values given to
        ``self.log`` stay in Lightning's results and are sent again at every later step of the
        epoch, which drew stale router statistics at every step between two measurements."""
        values = {k: float(v) for k, v in metrics.items()}
        for logger in self.loggers:
            logger.log_metrics(values, step=self.global_step)

    def between_steps(self) -> bool:
        """Whether the batches consumed so far make whole optimizer steps: a callback at a
        batch's end that saves, stops or reports must not fall between the accumulated
        batches of one step."""
        return self.batches_done % self.trainer.accumulate_grad_batches == 0

    def _steps_after_this_batch(self, batch_idx: int) -> bool:
        """Whether the optimizer steps after this micro-batch (the last of its accumulation).
        Asks Lightning's loop, which decides it; the fallback is the plain modulus (the
        sampler keeps epochs whole numbers of steps, so the two agree)."""
        loop = getattr(getattr(self.trainer, "fit_loop", None), "epoch_loop", None)
        should_accumulate = getattr(loop, "_should_accumulate", None)
        if should_accumulate is not None:
            return not should_accumulate()
        return (batch_idx + 1) % self.trainer.accumulate_grad_batches == 0

    def _token_mean_loss(self, batch) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Mean over the answer tokens (every token under ``data.train_on_inputs``) of the whole
        global batch, also under DDP, and this batch's mean decision-token loss and accuracy
        (detached: logged, not trained).

        Each process divides its token-loss sum by the global token count times the number of
        processes; DDP's gradient average then gives exactly the one-process gradient even when
        answers differ in length across processes.
        """
        whole = "input_labels" in batch  # data.train_on_inputs: the loss covers the prompt too
        hidden = base_hidden(self.model, batch) if whole else None
        logits, targets, counts = answer_logits(self.model, batch, hidden)
        with torch.no_grad():
            losses, correct = decision_token(
                logits, targets, counts, batch["option_offset"], batch.get("decision_length")
            )
            decision = (losses.mean(), correct.mean())
        if whole:
            logits, targets, _ = answer_logits(self.model, batch, hidden, key="input_labels")
        total = F.cross_entropy(logits.float(), targets, reduction="sum")
        world = self.trainer.world_size
        if world == 1:
            return total / targets.numel(), decision
        count = torch.tensor(float(targets.numel()), device=total.device)
        count = self.trainer.strategy.reduce(count, reduce_op="sum")
        return total * world / count, decision

    def _non_finite(self, what: str) -> None:
        message = f"non-finite training at step {self.global_step}: {what}"
        if self.nonfinite == "stop":
            raise NonFiniteError(message)
        self.skipped += 1
        return None  # Lightning skips the optimizer step for this batch

    def on_before_optimizer_step(self, optimizer) -> None:
        for name, param in self.model.named_parameters():
            if param.grad is not None and not torch.isfinite(param.grad).all():
                if self.nonfinite == "stop":
                    raise NonFiniteError(
                        f"non-finite training at step {self.global_step}: gradient of {name}"
                    )
                optimizer.zero_grad(set_to_none=True)
                self._non_finite(f"gradient of {name}")
                return

    def on_train_batch_start(self, batch, batch_idx):
        if self._pending_rng is not None:
            set_rng_state(self._pending_rng)
            self._pending_rng = None
        self.batches_done += 1  # before ModelCheckpoint's on_train_batch_end saves it
        if self._micro_losses:
            return  # not the first micro-batch of this optimizer step: logged already
        for i, group in enumerate(self.trainer.optimizers[0].param_groups):
            self.log(f"lr/{group.get('name', i)}", group["lr"], batch_size=1)

    def _evaluate(self, batch, split: str):
        """Loss, decision-token loss and accuracy, and the option picked under each metric
        (`option_metrics.py`: ``acc``; where options are scored whole also ``acc_norm`` and
        ``acc_per_token``), logged at the optimizer step the evaluated weights belong to.
        On the test split each question's picks (and option scores) are kept for
        predictions.jsonl (`test_records`)."""
        size = batch["input_ids"].shape[0]
        logits, targets, counts = answer_logits(self.model, batch)
        loss = F.cross_entropy(logits.float(), targets)
        tables = None
        if "option_row" in batch:  # options scored whole: every metric from one scoring
            scores = option_loglikelihoods(self.model, batch)
            picks = option_picks(scores, batch)
            tables = option_tables(scores, batch) if split == "test" else None
        else:  # one decision token per option
            options = predict_options(
                logits, counts, batch["option_offset"], batch["option_token_ids"]
            )
            picks = {"acc": options}
        decision_loss, decision_correct = decision_token(
            logits, targets, counts, batch["option_offset"], batch.get("decision_length")
        )
        # Lightning logs an in-training validation before counting its step: "step" puts it at
        # the step whose weights were evaluated, where test/gen_acc and checkpoints are
        self.log("step", float(self.global_step), batch_size=size)
        self.log(f"{split}/loss", loss, batch_size=size, prog_bar=split == "val")
        tasks = batch.get("task")  # a split that mixes tasks: accuracy per task as well
        for metric, chosen in picks.items():
            correct = (chosen == batch["gold"]).float()
            self.log(
                f"{split}/{metric}",
                correct.mean(),
                batch_size=size,
                prog_bar=split == "val" and metric == "acc",
            )
            for name in sorted(set(tasks or ())):
                rows = [row for row, task in enumerate(tasks) if task == name]
                self.log(f"{split}/{metric}/{name}", correct[rows].mean(), batch_size=len(rows))
        self.log(f"{split}/decision_loss", decision_loss.mean(), batch_size=size)
        self.log(f"{split}/decision_acc", decision_correct.mean(), batch_size=size)
        if split == "test":
            chosen = {metric: values.tolist() for metric, values in picks.items()}
            for row, index in enumerate(batch["index"].tolist()):
                record = {"index": index, "gold": int(batch["gold"][row])}
                record["picks"] = {metric: values[row] for metric, values in chosen.items()}
                record["options"] = None if tables is None else tables[row]
                self.test_records.append(record)

    def on_test_epoch_start(self) -> None:
        self.test_records = []

    def on_test_epoch_end(self) -> None:
        """Each metric's standard error over the test questions (lm-eval's ``*_stderr``)."""
        for metric in self.test_records[0]["picks"] if self.test_records else ():
            hits = [r["picks"][metric] == r["gold"] for r in self.test_records]
            stderr = mean_stderr(hits)
            if stderr is not None:
                self.log(f"test/{metric}_stderr", stderr, batch_size=len(hits))

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test")

    def configure_optimizers(self):
        from loralab.optim import build_optimizer

        total = self.trainer.max_steps if self.trainer.max_steps > 0 else None
        optimizer, scheduler = build_optimizer(self.model, self.optimizer_cfg, total_steps=total)
        if scheduler is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def _adapter_keys(self) -> set[str]:
        return {f"model.{n}" for n, p in self.model.named_parameters() if p.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep only trainable (adapter) tensors: the frozen base is reloaded from its source.
        RNG states go along so dropout continues exactly as in an uninterrupted run."""
        keep = self._adapter_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
        checkpoint["loralab_rng"] = rng_state()
        checkpoint["loralab_skipped"] = self.skipped
        checkpoint["loralab_batches_done"] = self.batches_done
        checkpoint["loralab_wall_time_s"] = self.wall_time_s()
        if (
            self.run_identity is not None
        ):  # what a resume must match (runs.checkpoints.run_identity)
            checkpoint["loralab_run"] = self.run_identity

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        missing = sorted(self._adapter_keys() - set(checkpoint["state_dict"]))
        if missing:
            raise KeyError(
                f"checkpoint lacks {len(missing)} adapter tensors (e.g. {missing[0]}): it was "
                "written for a different adapter or target_modules config"
            )
        # Applied at the first training batch, after the data iterator (which draws from the
        # global RNG when created) exists, exactly where the saved state was taken.
        self._pending_rng = checkpoint.get("loralab_rng")
        self.skipped = checkpoint.get("loralab_skipped", 0)
        accumulate = self.trainer.accumulate_grad_batches
        self.batches_done = checkpoint.get(
            "loralab_batches_done", checkpoint["global_step"] * accumulate
        )
