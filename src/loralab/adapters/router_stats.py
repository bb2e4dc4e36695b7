"""Router health for logging (load balance, dead experts, entropy) and the optional aux loss.

Statistics come from the most recent forward pass of each MoE layer (see AdapterLinear).
"""

import torch
from torch import nn

from loralab.adapters.inject import adapter_modules


def enable_router_stats(model: nn.Module, on: bool = True) -> None:
    for _, layer in adapter_modules(model):
        layer.track_router_stats = on
        if not on:
            layer.router_load = layer.router_entropy = None


def collect_router_stats(model: nn.Module, per_layer: bool = True) -> dict[str, float]:
    """Over all layers `router/entropy` (mean), `router/load_imbalance` (max load / mean load,
    averaged) and `router/dead_experts` (experts that got no token, summed); with `per_layer`
    also `router/<layer>/entropy` and `router/<layer>/max_load` (two columns per adapted
    layer: 240 on SmolLM2 with q/k/v/o). Empty without MoE stats."""
    stats, entropies, imbalances, dead = {}, [], [], 0
    for name, layer in adapter_modules(model):
        if layer.router_load is None:
            continue
        load, entropy = layer.router_load, layer.router_entropy.item()
        if per_layer:
            short = _short_name(name)
            stats[f"router/{short}/entropy"] = entropy
            stats[f"router/{short}/max_load"] = load.max().item()
        entropies.append(entropy)
        imbalances.append((load.max() / load.mean()).item())
        dead += int((load == 0).sum())
    if entropies:
        stats["router/entropy"] = sum(entropies) / len(entropies)
        stats["router/load_imbalance"] = sum(imbalances) / len(imbalances)
        stats["router/dead_experts"] = float(dead)
    return stats


def auxiliary_loss(model: nn.Module) -> torch.Tensor | None:
    """Sum over layers of `load_balance_coef * aux_loss` from the last forward, or None."""
    terms = [
        layer.load_balance_coef * layer.aux_loss
        for _, layer in adapter_modules(model)
        if layer.load_balance_coef > 0 and layer.aux_loss is not None
    ]
    return sum(terms) if terms else None


def _short_name(name: str) -> str:
    """`model.layers.3.self_attn.q_proj` -> `3.q_proj`: the layer indices and the leaf."""
    parts = name.split(".")
    return ".".join([p for p in parts[:-1] if p.isdigit()] + parts[-1:])
