"""LightningDataModule: encodes a task's splits and batches them for training and scoring."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from typing import Any, NamedTuple

import lightning as L
import torch
from torch.utils.data import DataLoader

from loralab.data.encoding import (
    IGNORE_INDEX,
    Encoded,
    answer_lead,
    encode_example,
    option_tokens,
    pad_right,
)
from loralab.data.options import Option, encode_option, option_batch
from loralab.data.sampler import ResumableSampler, batches_per_epoch
from loralab.tasks import DataError, Task

log = logging.getLogger(__name__)


class Item(NamedTuple):
    """One encoded record and what scoring it needs. ``task`` names its task where the split
    mixes several (the commonsense mix), so accuracy can be logged per task; else None.
    Where options are scored whole (`Task.whole_options`), ``options`` holds each option's
    context and own tokens (`data/options.py`), ``option_ids`` is empty and the decision tokens
    are the answer text's ``decision_length`` tokens."""

    example: Encoded
    option_offset: int
    option_ids: list[int]
    gold: int
    task: str | None = None
    decision_length: int = 1
    options: tuple[Option, ...] = ()
    index: int = -1  # its record's place in ``records[split]``: per-question results join there


class TaskDataModule(L.LightningDataModule):
    """Right-padded batches (input_ids, attention_mask, labels) plus what option scoring needs:
    option_offset, option_token_ids, the gold option index and each row's record ``index``
    (its place in ``records[split]``); where options are scored whole,
    decision_length and the options themselves (`option_batch`: each distinct context once,
    each option's own tokens, whose and which option each is); in a split that mixes tasks,
    also ``task``: each row's task name (a list of str).

    ``records[split]`` keeps the records that were encoded (over-long ones may be dropped), in
    the order of ``encoded[split]``.
    """

    def __init__(self, task: Task, tokenizer, data_cfg: Mapping[str, Any]):
        super().__init__()
        self.task = task
        self.tokenizer = tokenizer
        self.max_length = int(data_cfg["max_length"])
        self.overflow = data_cfg["overflow"]
        self.batch_size = int(data_cfg["batch_size"])
        self.eval_batch_size = int(data_cfg["eval_batch_size"])
        self.seed = int(data_cfg["seed"])
        self.sort_by_length = bool(data_cfg.get("sort_by_length", False))
        self.target_layout = data_cfg.get("target_layout", "loralab")
        # the training loss over prompt and answer (MoSLoRA's train_on_inputs), not the answer
        self.train_on_inputs = bool(data_cfg.get("train_on_inputs", False))
        self.encoded: dict[str, list] = {}
        self.records: dict[str, list[dict]] = {}
        self.dropped: dict[str, int] = {}
        self._option_cache: dict[tuple[str, ...], tuple[int, list[int]]] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.encoded:
            return
        for split, records in self.task.splits.items():
            items, kept, truncated = [], [], 0
            for record in records:
                item = self._encode(record)
                if item is not None:
                    items.append(item)
                    kept.append(record)
                    truncated += item.example.truncated
            dropped = len(records) - len(items)
            if truncated:
                log.info(
                    "%s/%s: %d prompts cut on the context side", self.task.name, split, truncated
                )
            if dropped:
                log.warning("%s/%s: dropped %d over-long examples", self.task.name, split, dropped)
            items = [item._replace(index=i) for i, item in enumerate(items)]
            names = [self.task.groups(record).get("task") for record in kept]
            if len(set(names)) > 1:
                items = [item._replace(task=name) for item, name in zip(items, names, strict=True)]
            self.encoded[split], self.records[split], self.dropped[split] = items, kept, dropped

    def check_splits(self, trainer_cfg: Mapping[str, Any]) -> None:
        """Refuse, before anything trains, splits the run cannot use: a training split smaller
        than one optimizer step, or an evaluation split left empty (found after training
        otherwise)."""
        devices = trainer_cfg.get("devices", 1)
        world = devices if isinstance(devices, int) and devices > 0 else 1
        accumulate = int(trainer_cfg.get("accumulate_grad_batches", 1))
        batches_per_epoch(len(self.encoded.get("train", ())), self.batch_size * world, accumulate)
        for split in ("validation", "test"):
            if split in self.encoded and not self.encoded[split]:
                dropped = self.dropped.get(split, 0)
                raise DataError(
                    f"task {self.task.name!r}: its {split} split has no examples"
                    + (f" ({dropped} dropped as longer than data.max_length)" if dropped else "")
                    + f"; check task.source and task.max_examples.{split}"
                )

    def _encode(self, record):
        task, tok = self.task, self.tokenizer
        prompt = task.prompt(record)
        example = encode_example(
            tok, prompt, task.target(record), self.max_length, self.overflow, self.target_layout
        )
        if example is None:
            return None
        targets = task.option_targets(record)
        if task.whole_options:
            target = targets[task.gold_index(record)]
            offset = answer_lead(tok, target, self.target_layout)
            length = len(tok(target, add_special_tokens=False)["input_ids"])
            options = tuple(encode_option(tok, prompt, t, self.max_length) for t in targets)
            return Item(example, offset, [], task.gold_index(record), None, length, options)
        try:
            offset, option_ids = self._option_tokens(tuple(targets))
        except DataError as err:
            raise DataError(f"task {task.name!r}, record {record.get('id')!r}: {err}") from None
        return Item(example, offset, option_ids, task.gold_index(record))

    def _option_tokens(self, targets: tuple[str, ...]) -> tuple[int, list[int]]:
        """Option sets repeat (A/B/C..., answer1..4): tokenise each distinct set once."""
        if targets not in self._option_cache:
            offset, options = option_tokens(self.tokenizer, list(targets))
            offset += answer_lead(self.tokenizer, targets[0], self.target_layout)
            self._option_cache[targets] = offset, options
        return self._option_cache[targets]

    def collate(self, items: list[Item], with_options: bool = True, inputs_as_labels=False):
        """One batch; ``with_options=False`` leaves out whole-option sequences (training reads
        only the gold answer); ``inputs_as_labels`` adds ``input_labels``, every real token
        of the sequence a target (``data.train_on_inputs``); ``labels`` keep the answer."""
        batch = pad_right([item.example for item in items], self.tokenizer.pad_token_id)
        if inputs_as_labels:
            padding = batch["attention_mask"] == 0
            batch["input_labels"] = batch["input_ids"].masked_fill(padding, IGNORE_INDEX)
        width = max(len(item.option_ids) for item in items)
        option_ids = torch.full((len(items), width), -1, dtype=torch.long)
        for row, item in enumerate(items):
            option_ids[row, : len(item.option_ids)] = torch.tensor(item.option_ids)
        batch["option_offset"] = torch.tensor([item.option_offset for item in items])
        batch["option_token_ids"] = option_ids
        batch["gold"] = torch.tensor([item.gold for item in items])
        batch["index"] = torch.tensor([item.index for item in items])
        if items[0].options:  # whole options: the decision is the answer text's tokens
            batch["decision_length"] = torch.tensor([item.decision_length for item in items])
        if with_options and items[0].options:
            pad_id = self.tokenizer.pad_token_id
            batch.update(option_batch([item.options for item in items], pad_id))
        if items[0].task is not None:
            batch["task"] = [item.task for item in items]
        return batch

    def train_dataloader(self) -> DataLoader:
        """Per-process batches of a seeded global order, resumed where the last step left off."""
        items = self.encoded.get("train")
        if not items:
            raise ValueError(
                f"task {self.task.name!r} has no training examples: its source has no train "
                "split (or task.max_examples.train is 0); pick a task or source with train data"
            )
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        accumulate = trainer.accumulate_grad_batches if trainer else 1
        lengths = [len(item.example.input_ids) for item in items] if self.sort_by_length else None
        sampler = ResumableSampler(
            len(items),
            self.batch_size * world,
            self.seed,
            rank,
            world,
            lengths=lengths,
            accumulate=accumulate,
        )
        if trainer is not None:
            sampler.resume_from(trainer.lightning_module.batches_done)  # restored on resume
        return DataLoader(
            items,
            batch_size=self.batch_size,
            sampler=sampler,
            collate_fn=partial(
                self.collate, with_options=False, inputs_as_labels=self.train_on_inputs
            ),
            generator=torch.Generator(),  # see _eval_loader
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("validation")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def _eval_loader(self, split: str) -> DataLoader:
        """Batches of similar length (less padding); the metrics are means over all items, so
        the order does not change them."""
        items = sorted(self.encoded[split], key=lambda item: len(item.example.input_ids))
        # Its own generator: a DataLoader's iterator otherwise draws its base seed from the
        # global RNG, so a validation pass would shift the dropout masks of the steps after it
        # and a resume (which restores the RNG saved before that pass) would differ.
        return DataLoader(
            items,
            batch_size=self.eval_batch_size,
            collate_fn=self.collate,
            generator=torch.Generator(),
        )
