"""A shuffling batch-order sampler that can start mid-epoch and shard across processes.

The order of epoch e is a permutation drawn from (seed, e) alone, so a resumed run replays
exactly the batches an uninterrupted run would have seen: the position is derived from the
number of optimizer steps already taken. The sampler counts its own epochs (one per pass)
rather than trusting the trainer's counter, which is ambiguous when a run is resumed from a
checkpoint written on an epoch's last batch. Under DDP each global batch is split into equal
contiguous slices, one per rank, so N processes with batch B/N see the same examples per step
as one process with batch B. With ``lengths``, each epoch's order is length-grouped
(``data.sort_by_length``) before it is cut into batches. Under gradient accumulation an epoch
holds a whole number of optimizer steps (the few tail batches are left out of that pass), so
no optimizer step is ever made from a partial accumulation and every interval counted in
batches is a whole number of optimizer steps.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from loralab.data.batching import length_grouped
from loralab.tasks.base import DataError


def batches_per_epoch(dataset_size: int, global_batch_size: int, accumulate: int = 1) -> int:
    """Global batches in one epoch, a whole number of optimizer steps; a split too small for
    one step is a ``DataError``."""
    batches = dataset_size // global_batch_size // accumulate * accumulate
    if batches < 1:
        raise DataError(
            f"the training split has {dataset_size} examples, fewer than one optimizer step "
            f"({global_batch_size} x {accumulate} accumulated batches); lower "
            "data.batch_size or trainer.accumulate_grad_batches, or raise "
            "task.max_examples.train"
        )
    return batches


class ResumableSampler(Sampler[int]):
    def __init__(
        self,
        dataset_size: int,
        global_batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        lengths: list[int] | None = None,
        accumulate: int = 1,
    ):
        if global_batch_size % world_size:
            raise ValueError(
                f"global batch {global_batch_size} is not divisible by {world_size} processes"
            )
        self.size, self.global_batch, self.seed = dataset_size, global_batch_size, seed
        self.rank, self.world = rank, world_size
        self.lengths = lengths  # given: group batches by length (data.sort_by_length)
        self.batches_per_epoch = batches_per_epoch(dataset_size, global_batch_size, accumulate)
        self.epoch, self.skip_batches = 0, 0

    def resume_from(self, batches_done: int) -> None:
        """Position the sampler after ``batches_done`` global batches since the start."""
        self.epoch, self.skip_batches = divmod(batches_done, self.batches_per_epoch)

    def __len__(self) -> int:
        """A whole epoch, also while the first pass after a resume is partial: the trainer
        reads the length once and uses it for every epoch; it resumes its own batch count."""
        return self.batches_per_epoch * self.global_batch // self.world

    def __iter__(self) -> Iterator[int]:
        """This pass's indices. Each call is one epoch: the trainer may stop reading a pass at
        its known length without exhausting it, so the count advances here, not at the end."""
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        if self.lengths is not None:
            order = length_grouped(order, self.lengths, self.global_batch, generator)
        local = self.global_batch // self.world
        indices = []
        for batch in range(self.skip_batches, self.batches_per_epoch):
            start = batch * self.global_batch + self.rank * local
            indices += order[start : start + local]
        self.epoch, self.skip_batches = self.epoch + 1, 0
        return iter(indices)
