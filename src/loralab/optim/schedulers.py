"""Learning-rate schedules as one torch LambdaLR that scales every param group alike.

`lr_factor(name, s, ...)` is the multiplier for optimizer step s (0-based; step the scheduler
once per optimizer step):

- warm-up, s < warmup_steps: s / warmup_steps (transformers' linear warm-up, which MoSLoRA's
  reference trains with: the first step runs at lr 0, the full lr is reached at warmup_steps);
- `constant`: 1 after warm-up;
- `linear`: from 1 at s = warmup_steps down to `final_lr_fraction` at s = total_steps, then held;
- `cosine`: half a cosine over the same span, from 1 to `final_lr_fraction`, then held.

The paper decays linearly to 0 over 2222 scheduled steps but stops after 2000, i.e. it ends at
about 0.1 lr: `linear` with total_steps=2000 and final_lr_fraction=0.1 is the same schedule.
"""

import functools
import math

import torch
from torch.optim.lr_scheduler import LambdaLR

from loralab.optim.config import SCHEDULER_NAMES


def lr_factor(
    name: str,
    step: int,
    *,
    total_steps: int | None = None,
    warmup_steps: int = 0,
    final_lr_fraction: float = 0.0,
) -> float:
    if step < warmup_steps:
        return step / warmup_steps
    if name == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    if name == "linear":
        return 1.0 - (1.0 - final_lr_fraction) * progress
    return final_lr_fraction + (1.0 - final_lr_fraction) * 0.5 * (
        1.0 + math.cos(math.pi * progress)
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str,
    *,
    total_steps: int | None = None,
    warmup_steps: int = 0,
    final_lr_fraction: float = 0.0,
) -> LambdaLR:
    """A LambdaLR for `optimizer`; `linear` and `cosine` need total_steps > warmup_steps."""
    if name not in SCHEDULER_NAMES:
        raise ValueError(
            f"scheduler.name={name!r} is invalid: must be one of {', '.join(SCHEDULER_NAMES)}"
        )
    if name != "constant" and (total_steps is None or total_steps <= warmup_steps):
        raise ValueError(
            f"scheduler {name!r} needs total_steps > warmup_steps={warmup_steps}, "
            f"got total_steps={total_steps} (pass the run's max_steps)"
        )
    factor = functools.partial(
        lr_factor,
        name,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        final_lr_fraction=final_lr_fraction,
    )
    return LambdaLR(optimizer, factor)
