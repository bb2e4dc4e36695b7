"""Length-grouped training order (``data.sort_by_length``): less padding per batch.

An epoch's random order is cut into windows of ``WINDOW`` batches; each window is sorted by
length and cut into batches, and the full batches are shuffled. Batch members are of similar
length yet still random from epoch to epoch, and the order depends on (seed, epoch) alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

WINDOW = 50


def length_grouped(
    order: list[int], lengths: list[int], batch_size: int, generator: torch.Generator
) -> list[int]:
    """``order`` rearranged so that each run of ``batch_size`` indices has similar lengths; an
    incomplete last batch stays last (``drop_last`` drops it)."""
    window = batch_size * WINDOW
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lengths.__getitem__)
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    full = [batch for batch in batches if len(batch) == batch_size]
    partial = [i for batch in batches if len(batch) < batch_size for i in batch]
    shuffled = torch.randperm(len(full), generator=generator).tolist()
    return [i for b in shuffled for i in full[b]] + partial


class LengthGroupedSampler(Sampler[int]):
    """Example indices in length-grouped order, a fresh order each epoch (epochs counted by the
    sampler itself)."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed = lengths, batch_size, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        self.epoch += 1
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        yield from length_grouped(order, self.lengths, self.batch_size, generator)
