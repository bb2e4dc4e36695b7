"""The MoE-LoRA router (docs/methods.md, "MoE-LoRA"): a bias-free linear map x -> E logits
and its top-k gate.

The gate is a softmax over the k largest logits, zeros elsewhere, computed in at least float32
so a bf16 input does not round the routing decision. The router's weight is `layer.router`
(nn.Linear(d_in, E, bias=False)), its own optimizer group (`optim/optimizer.py`: own lr,
clipping, never preconditioned).
"""

import contextlib

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


def top_k_gate(
    x: torch.Tensor, weight: torch.Tensor, top_k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gate (N, E), logits (N, E), chosen expert indices (N, k)) for tokens x (N, d_in).

    Autocast is off: CUDA autocast would run the router matmul in bf16 anyway (and softmax in
    float32, which then mismatched the gate's dtype).
    """
    work = torch.promote_types(x.dtype, torch.float32)
    device = x.device.type
    no_autocast = (
        torch.autocast(device, enabled=False)
        if torch.amp.is_autocast_available(device)
        else contextlib.nullcontext()  # e.g. the meta device
    )
    with no_autocast:
        weight = weight.to(work)
        logits = F.linear(x, weight) if x.dtype == work else RouterLogits.apply(x, weight)
    top = logits.topk(top_k, dim=-1)
    gate = torch.zeros_like(logits).scatter(-1, top.indices, top.values.softmax(-1))
    return gate, logits, top.indices


def expert_load(chosen: torch.Tensor, num_experts: int, dtype: torch.dtype) -> torch.Tensor:
    """Fraction of the N*k top-k selections that went to each expert (E,)."""
    selections = torch.bincount(chosen.flatten(), minlength=num_experts)
    return selections.to(dtype) / chosen.numel()


class RouterLogits(torch.autograd.Function):
    """`x W^T` in W's (higher) precision for a low-precision x, saving x itself for the backward.

    Autograd through `F.linear(x.float(), W)` saves the float32 copy of x: at Llama-1B shapes
    (8 x 512 tokens, 64 routers) that was 2 GB, the whole peak-memory gap between MoE-LoRA and
    LoRA on the GPU. x itself is saved by the base layer anyway, so keeping it costs nothing;
    the backward redoes the cast. Same operations, so the same values and gradients.
    """

    @staticmethod
    def forward(ctx, x, weight):
        ctx.save_for_backward(x, weight)
        return F.linear(x.to(weight.dtype), weight)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = (grad @ weight).to(x.dtype)
        if ctx.needs_input_grad[1]:
            rows = grad.reshape(-1, grad.shape[-1])
            grad_w = rows.T @ x.reshape(-1, x.shape[-1]).to(weight.dtype)
        return grad_x, grad_w
