"""From an optimizer config to an `AdapterOptimizer` over a model's adapters and its scheduler.

The builder reads the model's adapters and never changes them: gate rescaling is an adapter
switch set when the adapters are built, and `build_optimizer` only checks that it agrees with
the optimizer's name.
"""

from collections.abc import Mapping

import torch

from loralab.adapters import adapter_modules
from loralab.optim.config import OptimizerConfig
from loralab.optim.optimizer import AdapterOptimizer
from loralab.optim.schedulers import build_scheduler


def build_optimizer(
    model: torch.nn.Module,
    optimizer_config: Mapping | OptimizerConfig,
    total_steps: int | None = None,
) -> tuple[AdapterOptimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """An `AdapterOptimizer` over the adapters of `model` and its scheduler (None if the config
    has none). `total_steps` (the run's max_steps) is needed by the linear and cosine schedules."""
    cfg = OptimizerConfig.from_mapping(optimizer_config)
    layers = adapter_modules(model)
    if not layers:
        raise ValueError("the model has no adapter layers: call loralab.adapters.inject_adapters")
    if cfg.pairwise and not any(
        layer.lora_A.requires_grad or layer.lora_B.requires_grad for _, layer in layers
    ):
        raise ValueError(
            f"optimizer {cfg.name!r} is {'Riemannian' if cfg.riemannian else 'LoRA-RITE'} but "
            "the model has no trainable adapter (lora_A, lora_B) pair to precondition"
        )
    disagree = [  # without a router there is no gate to rescale
        name
        for name, layer in layers
        if layer.router is not None and layer.gate_rescale != cfg.gate_rescale
    ]
    if disagree:
        raise ValueError(
            f"optimizer {cfg.name!r} {'needs' if cfg.gate_rescale else 'runs without'} gate "
            f"rescaling, but {len(disagree)} adapter layer(s) (e.g. {disagree[0]}) were built "
            f"with gate_rescale={not cfg.gate_rescale}: build the adapters with "
            f"AdapterConfig(..., gate_rescale=OptimizerConfig.from_mapping(cfg).gate_rescale)"
        )
    optimizer = AdapterOptimizer(layers, **cfg.optimizer_arguments())
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    stray = [
        n for n, p in model.named_parameters() if p.requires_grad and id(p) not in in_optimizer
    ]
    if stray:
        raise ValueError(
            f"{len(stray)} trainable parameter(s) outside the adapters would never be updated "
            f"(e.g. {', '.join(stray[:3])}); freeze them (inject_adapters freezes the base model)"
        )
    scheduler = None
    if cfg.scheduler is not None:
        sched = dict(cfg.scheduler)
        length = sched.pop("total_steps") or total_steps
        scheduler = build_scheduler(optimizer, total_steps=length, **sched)
    return optimizer, scheduler
