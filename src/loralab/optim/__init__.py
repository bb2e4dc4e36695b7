"""Optimizers for adapters: SGD or AdamW, plain or Riemannian-preconditioned
(docs/methods.md, "Riemannian preconditioner").

The eight variants are named as in the paper (`OPTIMIZER_NAMES`): sgd, gsgd, rsgd, grsgd,
adamw, gadamw, radamw, gradamw = base {sgd, adamw} x preconditioner {none, riemannian} x
gate_rescale {off, on}. The name alone chooses the three (`VARIANTS`); the "g" switch lives in
the adapter forward, so it is set when the adapters are built. Two more built-in names run the
LoRA optimizers a comparison needs (`BUILT_IN_NAMES`; docs/methods.md, "LoRA+ and LoRA-RITE"):
`loraplus` (AdamW, every lora_B at `loraplus_ratio` x lr) and `lorarite` (LoRA-RITE per expert
pair, `loralab.optim.lorarite`), both of the AdamW family.

The Python API (what the Hydra entry points use too)::

    from loralab.adapters import AdapterConfig, inject_adapters
    from loralab.optim import OptimizerConfig, build_optimizer

    cfg = OptimizerConfig.from_mapping({"name": "grsgd", "lr": 3e-5, "router_lr": 3e-8,
           "scheduler": {"name": "linear", "warmup_steps": 0, "final_lr_fraction": 0.1}})
    inject_adapters(model, AdapterConfig(kind="moe_lora", num_experts=20, top_k=10, rank=4,
                                         gate_rescale=cfg.gate_rescale))
    optimizer, scheduler = build_optimizer(model, cfg, total_steps=2000)
    loss.backward(); optimizer.step(); scheduler.step(); optimizer.zero_grad()

`optimizer` is an `AdapterOptimizer` (a torch.optim.Optimizer) with param groups `experts`
(lora_A, lora_B, mixer) and `router` (router weights: own base optimizer and lr, gradient-norm
clipping inside `step()`); its `state_dict()` round-trips through `torch.load(weights_only=True)`.
Do not clip gradients outside it (e.g. Lightning's gradient_clip_val): experts are never clipped.
Lower-level pieces: `AdapterOptimizer(layers, lr=..., ...)` over `adapter_modules(model)`,
`precondition(layers, "A" | "B", delta, step)` and `build_scheduler(optimizer, name, ...)`.
"""

from loralab.optim.build import build_optimizer
from loralab.optim.config import (
    BUILT_IN_NAMES,
    OPTIMIZER_NAMES,
    SCHEDULER_NAMES,
    VARIANTS,
    OptimizerConfig,
    Variant,
    register_variant,
    variant,
)
from loralab.optim.optimizer import AdapterOptimizer
from loralab.optim.preconditioner import precondition
from loralab.optim.schedulers import build_scheduler, lr_factor

__all__ = [
    "BUILT_IN_NAMES",
    "OPTIMIZER_NAMES",
    "SCHEDULER_NAMES",
    "VARIANTS",
    "AdapterOptimizer",
    "OptimizerConfig",
    "Variant",
    "build_optimizer",
    "build_scheduler",
    "lr_factor",
    "precondition",
    "register_variant",
    "variant",
]
