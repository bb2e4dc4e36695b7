"""Length-grouped training order (``data.sort_by_length``): less padding per batch.

An epoch's random order is cut into windows of ``WINDOW`` batches; each window is sorted by
length and cut into batches, and the full batches are shuffled. Batch members are of similar
length yet still random from epoch to epoch. ``ResumableSampler`` applies it to each epoch's
seeded order, so length grouping resumes and shards like the plain order.
"""

from __future__ import annotations

import torch

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
