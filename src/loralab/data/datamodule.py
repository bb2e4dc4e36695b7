"""LightningDataModule: encodes a task's splits and batches them for training and scoring."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from loralab.data.encoding import encode_example, pad_right
from loralab.data.tasks import MultipleChoiceTask
from loralab.evaluation.scoring import option_tokens

log = logging.getLogger(__name__)


class TaskDataModule(L.LightningDataModule):
    """Right-padded batches (input_ids, attention_mask, labels) plus what option scoring needs:
    option_offset, option_token_ids and the gold option index."""

    def __init__(self, task: MultipleChoiceTask, tokenizer, data_cfg: Mapping[str, Any]):
        super().__init__()
        self.task = task
        self.tokenizer = tokenizer
        self.max_length = int(data_cfg["max_length"])
        self.overflow = data_cfg["overflow"]
        self.batch_size = int(data_cfg["batch_size"])
        self.eval_batch_size = int(data_cfg["eval_batch_size"])
        self.seed = int(data_cfg["seed"])
        self.encoded: dict[str, list] = {}
        self.dropped: dict[str, int] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.encoded:
            return
        for split, records in self.task.splits.items():
            items, dropped = [], 0
            for record in records:
                item = self._encode(record)
                if item is None:
                    dropped += 1
                else:
                    items.append(item)
            if dropped:
                log.warning("%s/%s: dropped %d over-long examples", self.task.name, split, dropped)
            self.encoded[split], self.dropped[split] = items, dropped

    def _encode(self, record):
        task, tok = self.task, self.tokenizer
        prompt = task.prompt(record)
        example = encode_example(tok, prompt, task.target(record), self.max_length, self.overflow)
        if example is None:
            return None
        offset, options = option_tokens(tok, task.option_targets(record))
        return example, offset, options, task.gold_index(record)

    def _collate(self, items):
        batch = pad_right([example for example, *_ in items], self.tokenizer.pad_token_id)
        width = max(len(options) for _, _, options, _ in items)
        option_ids = torch.full((len(items), width), -1, dtype=torch.long)
        for row, (_, _, options, _) in enumerate(items):
            option_ids[row, : len(options)] = torch.tensor(options)
        batch["option_offset"] = torch.tensor([offset for _, offset, _, _ in items])
        batch["option_token_ids"] = option_ids
        batch["gold"] = torch.tensor([gold for *_, gold in items])
        return batch

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            self.encoded["train"],
            batch_size=self.batch_size,
            shuffle=True,
            generator=generator,
            collate_fn=self._collate,
            drop_last=True,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("validation")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader(
            self.encoded[split], batch_size=self.eval_batch_size, collate_fn=self._collate
        )
