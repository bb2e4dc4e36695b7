"""The trainer group (conf/trainer/): the Lightning Trainer arguments loralab checks before
anything loads. Keys not declared here pass through to ``lightning.Trainer`` unchecked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loralab.cli.settings import machine
from loralab.cli.settings.fields import FLAG, Rule, number, one_of, setting, whole
from loralab.values import is_integer

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true")
PRECISIONS += ("32", "16", "64", "bf16", "transformer-engine", "transformer-engine-float16")
# what some settings need installed: (the setting's prefix, the Python package)
NEEDS_PACKAGE = {"transformer-engine": "transformer_engine", "deepspeed": "deepspeed"}


def _steps_or_fraction(value) -> bool:
    return (
        value is None
        or (is_integer(value) and value >= 1)
        or (isinstance(value, float) and 0 < value <= 1)
    )


def _devices(value) -> bool:
    if value in ("auto", -1) or (is_integer(value) and value >= 1):
        return True
    return isinstance(value, list) and bool(value) and all(is_integer(v) and v >= 0 for v in value)


@dataclass(frozen=True)
class TrainerSettings:
    """trainer: where and how long the run trains (Lightning Trainer arguments)."""

    accelerator: str = setting(one_of(ACCELERATORS), "the device kind")
    devices: Any = setting(
        Rule(
            _devices,
            "an integer >= 1, -1 or auto (all), or a list of device indices",
        ),
        "how many devices (processes): above 1 trains data-parallel",
    )
    num_nodes: int = setting(whole(1), "machines, each with `devices` processes")
    strategy: str = setting(None, "Lightning's strategy: auto, ddp, fsdp, deepspeed_stage_2, ...")
    precision: Any = setting(
        Rule(
            lambda v: str(v) in PRECISIONS,
            f"one of {list(PRECISIONS)} (auto: bf16-mixed on a GPU, and on a CPU where a probe "
            "finds it faster than float32)",
        ),
        "the training precision",
    )
    max_steps: int = setting(whole(1), "optimizer steps the run trains for")
    val_check_interval: Any = setting(
        Rule(
            _steps_or_fraction,
            "an integer >= 1 (optimizer steps) or a fraction of an epoch in (0, 1]",
        ),
        "validate every N optimizer steps",
    )
    check_val_every_n_epoch: int | None = setting(
        whole(1, nullable=True), "null: validation counts optimizer steps, not epochs"
    )
    log_every_n_steps: int = setting(whole(1), "log the training metrics every N steps")
    accumulate_grad_batches: int = setting(
        whole(1), "batches per optimizer step (the effective batch is this x data.batch_size)"
    )
    num_sanity_val_steps: int = setting(
        whole(-1, note="-1: all"), "validation batches run before training as a check"
    )
    enable_checkpointing: bool = setting(
        FLAG, "loralab's own atomic, adapter-only checkpoints (checkpoint: settings)"
    )
    deterministic: bool = setting(FLAG, "deterministic kernels only (slower)")
    gradient_clip_val: float | None = setting(
        number(0, nullable="off"),
        "clip every adapter gradient together to this total norm (HF Trainer's max_grad_norm; "
        "MoSLoRA: 1.0); the MoE router has optimizer.router_clip",
    )

    def problems(self, prefix: str) -> list[str]:
        """What this machine lacks for the chosen accelerator, precision or strategy."""
        errors = []
        if self.accelerator in ("gpu", "cuda"):
            gpus = machine.gpu_count()
            if gpus == 0:
                errors.append(
                    f"{prefix}accelerator={self.accelerator} but no GPU is visible here (torch "
                    "finds no CUDA device): use trainer=cpu"
                )
            elif is_integer(self.devices) and self.devices > gpus:
                errors.append(f"{prefix}devices={self.devices} but {gpus} GPU(s) are visible here")
        elif self.accelerator == "mps" and not machine.mps_available():
            errors.append(
                f"{prefix}accelerator=mps but torch sees no Apple GPU here: use trainer=cpu"
            )
        for key in ("precision", "strategy"):
            value = str(getattr(self, key))
            for start, package in NEEDS_PACKAGE.items():
                if value.startswith(start) and not machine.installed(package):
                    errors.append(
                        f"{prefix}{key}={value} needs the Python package {package}, which is "
                        f"not installed here: install it or choose another {prefix}{key}"
                    )
        return errors
