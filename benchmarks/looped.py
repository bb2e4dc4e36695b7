"""The baseline users have today: MoE-LoRA with a Python loop over experts.

Written here the way the paper's reference code (THUDM/MoELoRA_Riemannian, `moe_lora.py`)
computes it, which is also how other MoE-LoRA implementations do: one `nn.Linear` pair per
expert, the dropout applied to the full input once per expert (a fresh mask each), every expert
computed densely, the gate (softmax, top-k mask, renormalised) multiplied onto each expert's
output and the products summed one by one. Adapter weights are float32 and the input is cast to
them (PEFT's default for a low-precision base). Only for benchmarking: the library's layer is
`loralab.adapters.AdapterLinear`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class LoopedMoELoRA(nn.Module):
    def __init__(
        self,
        base: nn.Linear,
        *,
        experts: int,
        top_k: int,
        rank: int,
        alpha: float,
        dropout: float,
    ):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.experts, self.top_k, self.scale = experts, top_k, alpha / rank
        d_in, d_out, device = base.in_features, base.out_features, base.weight.device
        self.lora_dropout = nn.Dropout(dropout)
        self.lora_A = nn.ModuleList(
            nn.Linear(d_in, rank, bias=False, device=device) for _ in range(experts)
        )
        self.lora_B = nn.ModuleList(
            nn.Linear(rank, d_out, bias=False, device=device) for _ in range(experts)
        )
        for a, b in zip(self.lora_A, self.lora_B, strict=True):
            nn.init.kaiming_uniform_(a.weight, a=math.sqrt(5))
            nn.init.zeros_(b.weight)
        self.gate = nn.Linear(d_in, experts, bias=False, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base(x)
        x = x.to(self.gate.weight.dtype)
        probs = F.softmax(self.gate(x), dim=-1)
        chosen = probs.topk(self.top_k, dim=-1).indices
        mask = F.one_hot(chosen, self.experts).sum(-2)
        gate = probs * mask
        gate = gate / gate.sum(-1, keepdim=True)
        for i in range(self.experts):
            expert = self.lora_B[i](self.lora_A[i](self.lora_dropout(x))) * self.scale
            result = result + (gate[..., i : i + 1] * expert).to(result.dtype)
        return result


def inject_looped(
    model: nn.Module,
    targets: tuple[str, ...],
    *,
    experts: int,
    top_k: int,
    rank: int,
    alpha: float,
    dropout: float,
) -> list[LoopedMoELoRA]:
    """Replace every nn.Linear whose leaf name is in `targets` by a `LoopedMoELoRA`."""
    model.requires_grad_(False)
    names = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in targets
    ]
    wrapped = []
    for name in names:
        parent, _, leaf = name.rpartition(".")
        layer = LoopedMoELoRA(
            model.get_submodule(name),
            experts=experts,
            top_k=top_k,
            rank=rank,
            alpha=alpha,
            dropout=dropout,
        )
        setattr(model.get_submodule(parent), leaf, layer)
        wrapped.append(layer)
    return wrapped
