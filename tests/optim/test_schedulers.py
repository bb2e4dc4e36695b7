"""Learning-rate schedules: hand-computed values at warm-up end, mid-decay and the end."""

import math

import pytest
import torch

from loralab.optim import build_scheduler, lr_factor

SPAN = {"total_steps": 14, "warmup_steps": 4, "final_lr_fraction": 0.1}


@pytest.mark.parametrize(
    ("name", "step", "expected"),
    [
        ("linear", 0, 0.0),  # warm-up: s / warmup_steps, as transformers' schedules
        ("linear", 3, 0.75),  # last warm-up step
        ("linear", 4, 1.0),
        ("linear", 9, 1 - 0.9 * 0.5),  # halfway through the decay
        ("linear", 14, 0.1),
        ("linear", 30, 0.1),
        ("cosine", 1, 0.25),
        ("cosine", 4, 1.0),
        ("cosine", 6, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.2))),
        ("cosine", 9, 0.55),
        ("cosine", 14, 0.1),
        ("constant", 2, 0.5),
        ("constant", 14, 1.0),
    ],
)
def test_factor(name, step, expected):
    assert lr_factor(name, step, **SPAN) == pytest.approx(expected)


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_warmup_and_decay_equal_transformers_schedules(name):
    """With warm-up and a decay to 0, every step's factor is transformers' own (the schedule
    MoSLoRA's reference trains with: HF Trainer's linear warm-up then linear decay)."""
    from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

    make = {"linear": get_linear_schedule_with_warmup, "cosine": get_cosine_schedule_with_warmup}
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    reference = make[name](optimizer, num_warmup_steps=10, num_training_steps=50)
    for step in range(51):  # past the end transformers' cosine rises again; loralab holds
        theirs = reference.lr_lambdas[0](step)
        ours = lr_factor(name, step, total_steps=50, warmup_steps=10, final_lr_fraction=0.0)
        assert ours == pytest.approx(theirs, abs=1e-12), step


def test_paper_schedule_without_warmup():
    """Linear to 0.1 lr over the run = the reference's decay to 0 over 2222 steps, cut at 2000."""
    span = {"total_steps": 2000, "final_lr_fraction": 0.1}
    assert lr_factor("linear", 0, **span) == 1.0
    assert lr_factor("linear", 1000, **span) == pytest.approx(1 - 1000 / 2222.2222)


def test_scheduler_scales_every_group():
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.SGD(
        [{"params": params[:1], "lr": 1.0}, {"params": params[1:], "lr": 0.1}]
    )
    scheduler = build_scheduler(optimizer, "linear", **SPAN)
    for _ in range(9):
        optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr() == pytest.approx([0.55, 0.055])


@pytest.mark.parametrize(
    ("name", "total_steps", "match"),
    [
        ("step", 10, "linear, cosine, constant"),
        ("linear", None, "total_steps"),
        ("cosine", 4, "total_steps"),
    ],
)
def test_bad_schedules_raise(name, total_steps, match):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match=match):
        build_scheduler(optimizer, name, total_steps=total_steps, warmup_steps=4)
