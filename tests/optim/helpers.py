"""Tiny adapted models and an explicit, loop-per-expert Riemannian preconditioner to test against."""

import torch

from loralab.adapters import AdapterConfig, inject_adapters, set_gate_rescale
from loralab.optim import OptimizerConfig, build_optimizer
from tests.helpers import make_tiny_llama

KINDS = {
    "lora": {"kind": "lora"},
    "moslora": {"kind": "moslora"},
    "moe_lora": {"kind": "moe_lora", "num_experts": 4, "top_k": 2},
    "moe_moslora": {"kind": "moe_lora", "num_experts": 3, "top_k": 2, "mixer": True},
}


def adapted_llama(kind: str = "moe_lora", seed: int = 0) -> torch.nn.Module:
    """Tiny Llama with rank-4 adapters on attention; B (zero at init) is randomised so that every
    Gram matrix is well conditioned and every gradient is non-zero."""
    model = make_tiny_llama()
    torch.manual_seed(seed)
    config = AdapterConfig(rank=4, alpha=8, dropout=0.0, **KINDS[kind])
    for layer in inject_adapters(model, config):
        with torch.no_grad():
            layer.lora_B.normal_(std=0.1)
    return model


def backward(model: torch.nn.Module, seed: int = 0, loss_scale: float = 1.0) -> float:
    """Causal-LM loss on a fixed random batch (chosen by `seed`), backpropagated."""
    ids = torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(seed))
    loss = model(input_ids=ids, labels=ids).loss
    (loss_scale * loss).backward()
    return loss.item()


def explicit_riemannian_grads(layer, delta: float, a=None, dtype=torch.float32):
    """(G_A', G_B') of one adapter layer with one explicit inverse per expert
    (docs/methods.md, "Riemannian preconditioner"),
    computed in `dtype` (float64 for a reference that float32 rounding cannot reach).

    `a` replaces lora_A in B's preconditioner (the reference's updated-A quirk)."""
    a = (layer.lora_A.detach() if a is None else a).to(dtype)
    b, eye = layer.lora_B.detach().to(dtype), torch.eye(layer.rank, dtype=dtype)
    grad_a, grad_b = layer.lora_A.grad.to(dtype), layer.lora_B.grad.to(dtype)
    grads_a, grads_b = [], []
    for i in range(layer.num_experts):
        mixer = eye if layer.mixer is None else layer.mixer.detach()[i].to(dtype)
        b_eff, a_eff = b[i] @ mixer, mixer @ a[i]
        grads_a.append(torch.linalg.inv(b_eff.T @ b_eff + delta * eye) @ grad_a[i])
        grads_b.append(grad_b[i] @ torch.linalg.inv(a_eff @ a_eff.T + delta * eye))
    return torch.stack(grads_a), torch.stack(grads_b)


def gram_condition_numbers(layer, delta: float) -> tuple[float, float]:
    """Largest condition number over the experts of (B^T B + delta I) and (A A^T + delta I),
    with the mixer folded in as the preconditioner sees it (float64)."""
    a, b = layer.lora_A.detach().double(), layer.lora_B.detach().double()
    eye = torch.eye(layer.rank, dtype=torch.float64)
    mixer = eye if layer.mixer is None else layer.mixer.detach().double()
    b_eff, a_eff = b @ mixer, mixer @ a
    gram_b = b_eff.transpose(-1, -2) @ b_eff + delta * eye
    gram_a = a_eff @ a_eff.transpose(-1, -2) + delta * eye
    return torch.linalg.cond(gram_b).max().item(), torch.linalg.cond(gram_a).max().item()


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def build_for(model: torch.nn.Module, config, total_steps: int | None = None):
    """`build_optimizer` on a model whose adapters were built for another variant: first give
    the adapters the gate rescaling the optimizer's name stands for (what `loralab.cli.train` does
    when it builds them)."""
    set_gate_rescale(model, OptimizerConfig.from_mapping(config).gate_rescale)
    return build_optimizer(model, config, total_steps=total_steps)
