"""LightningModule: answer-only loss, option-scoring accuracy, router statistics, optimizers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from loralab.data.encoding import IGNORE_INDEX
from loralab.evaluation.scoring import predict_options


def answer_logits(model, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits at answer positions only, their targets, and how many each row has.

    The vocabulary projection is the largest matrix of a small LM; prompts are most of each
    sequence, so projecting only where a label exists saves a large share of the step.
    """
    hidden = model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[
        0
    ]
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE_INDEX
    logits = model.get_output_embeddings()(hidden[:, :-1][keep])
    return logits, targets[keep], keep.sum(dim=1)


def answer_loss(model, batch) -> torch.Tensor:
    """Mean cross-entropy over answer tokens (EOS included)."""
    logits, targets, _ = answer_logits(model, batch)
    return F.cross_entropy(logits.float(), targets)


class AdapterModule(L.LightningModule):
    """Trains the adapters of ``model``; the frozen base is never updated or checkpointed."""

    def __init__(
        self,
        model,
        optimizer_cfg: Mapping[str, Any],
        router_stats_every: int = 10,
    ):
        super().__init__()
        self.model = model
        self.optimizer_cfg = optimizer_cfg
        self.router_stats_every = router_stats_every

    def training_step(self, batch, batch_idx):
        from loralab.adapters import auxiliary_loss, collect_router_stats, enable_router_stats

        log_router = self.router_stats_every > 0 and self.global_step % self.router_stats_every == 0
        enable_router_stats(self.model, log_router)
        loss = answer_loss(self.model, batch)
        aux = auxiliary_loss(self.model)
        total = loss if aux is None else loss + aux
        size = batch["input_ids"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        if aux is not None:
            self.log("train/aux_loss", aux, batch_size=size)
        if log_router:
            self.log_dict(collect_router_stats(self.model), batch_size=size)
            enable_router_stats(self.model, False)
        return total

    def on_train_batch_start(self, batch, batch_idx):
        for i, group in enumerate(self.trainer.optimizers[0].param_groups):
            self.log(f"lr/{group.get('name', i)}", group["lr"], batch_size=1)

    def _evaluate(self, batch, split: str):
        size = batch["input_ids"].shape[0]
        logits, targets, counts = answer_logits(self.model, batch)
        loss = F.cross_entropy(logits.float(), targets)
        predictions = predict_options(
            logits, counts, batch["option_offset"], batch["option_token_ids"]
        )
        accuracy = (predictions == batch["gold"]).float().mean()
        self.log(f"{split}/loss", loss, batch_size=size, prog_bar=split == "val")
        self.log(f"{split}/acc", accuracy, batch_size=size, prog_bar=split == "val")

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

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep only trainable (adapter) tensors: the frozen base is reloaded from its source."""
        trainable = {f"model.{n}" for n, p in self.model.named_parameters() if p.requires_grad}
        state = checkpoint["state_dict"]
        checkpoint["state_dict"] = {k: v for k, v in state.items() if k in trainable}
