"""The training order: seeded, resumable mid-epoch, sharded exactly across processes."""

from loralab.data.sampler import ResumableSampler


def batches(sampler, size):
    order = list(sampler)
    return [order[i : i + size] for i in range(0, len(order), size)]


def test_resuming_replays_the_uninterrupted_order():
    whole = ResumableSampler(50, 8, seed=3)
    uninterrupted = batches(whole, 8) + batches(whole, 8)  # two epochs of 6 batches
    resumed = ResumableSampler(50, 8, seed=3)
    resumed.resume_from(4)  # 4 batches done: mid-epoch 0
    assert batches(resumed, 8) + batches(resumed, 8) == uninterrupted[4:]


def test_resume_at_an_epoch_boundary_starts_the_next_epoch():
    whole = ResumableSampler(48, 8, seed=1)
    first, second = list(whole), list(whole)
    resumed = ResumableSampler(48, 8, seed=1)
    resumed.resume_from(6)
    assert list(resumed) == second and first != second


def test_ranks_split_each_global_batch():
    single = batches(ResumableSampler(64, 8, seed=0), 8)
    rank0 = batches(ResumableSampler(64, 8, seed=0, rank=0, world_size=2), 4)
    rank1 = batches(ResumableSampler(64, 8, seed=0, rank=1, world_size=2), 4)
    assert [a + b for a, b in zip(rank0, rank1, strict=True)] == single
