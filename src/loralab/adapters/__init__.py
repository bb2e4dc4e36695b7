"""LoRA-family adapters for any torch / Hugging Face model: LoRA, MoSLoRA and MoE-LoRA.

The Python API (what the Hydra entry points use too)::

    from loralab.adapters import AdapterConfig, inject_adapters

    config = AdapterConfig(kind="moe_lora", rank=4, alpha=16, num_experts=20, top_k=10,
                           target_modules="attention",
                           gate_rescale=True)   # for gSGD / gRSGD / ...: OptimizerConfig.gate_rescale
    layers = inject_adapters(model, config)     # freezes the model, wraps q/k/v/o in place
    enable_router_stats(model)                  # then after a forward:
    collect_router_stats(model)                 # {"router/entropy": ..., ...}
    loss = loss + auxiliary_loss(model)         # only if load_balance_coef > 0 (else None)

    save_adapter(model, "out/adapter", config)  # adapter.safetensors + adapter_config.json
    load_adapter(fresh_base_model, "out/adapter")
    export_peft(model, "out/peft", base_model_name_or_path="HuggingFaceTB/SmolLM2-135M-Instruct")
    merge_adapters(model)                       # LoRA / MoSLoRA only: plain nn.Linear again

`resolve_targets(target_modules, linear_module_names)` checks a target spec on names alone;
`set_gate_rescale(model, on)` switches gate rescaling on built adapters (benchmarks sharing one
model between optimizers). Files: config.py (AdapterConfig), layer.py (AdapterLinear),
router.py (the MoE router and its top-k gate), gated_product.py (the fused gated product and its
rescaled backward), router_stats.py (statistics for logging), inject.py, io.py.
Each `AdapterLinear` exposes `lora_A` (E, r, d_in), `lora_B` (E, d_out, r), `mixer` (E, r, r)
or None and `router` (nn.Linear d_in -> E) or None: the optimizers build on exactly these.
"""

from loralab.adapters.config import AdapterConfig, register_adapter_kind
from loralab.adapters.inject import (
    adapter_modules,
    inject_adapters,
    resolve_targets,
    set_gate_rescale,
)
from loralab.adapters.io import export_peft, load_adapter, merge_adapters, save_adapter
from loralab.adapters.layer import AdapterLinear
from loralab.adapters.router_stats import (
    auxiliary_loss,
    collect_router_stats,
    enable_router_stats,
)

__all__ = [
    "AdapterConfig",
    "AdapterLinear",
    "adapter_modules",
    "auxiliary_loss",
    "collect_router_stats",
    "enable_router_stats",
    "export_peft",
    "inject_adapters",
    "load_adapter",
    "merge_adapters",
    "register_adapter_kind",
    "resolve_targets",
    "save_adapter",
    "set_gate_rescale",
]
