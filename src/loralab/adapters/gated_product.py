"""The experts' mixture added onto the base output, with or without gate rescaling
(docs/methods.md, "Gate-based rescaling").

Per expert the reference writes, with sg = stop-gradient and e_i = s * B_i m_i:

    contribution_i = sg(sqrt(g_i)) * e_i + (g_i - sg(sqrt(g_i))) * sg(e_i)

Its value is g_i * e_i. Its gradient reaches e_i scaled by sqrt(g_i) and reaches g_i unchanged
as <dy, e_i>. With experts stacked along the rank axis (m: (N, E*r), whose (N, E, r) view holds
expert i's rank activations in [:, i, :]; g: (N, E); Bt: (E*r, d_out), row block i = B_i^T) and
t = dy @ Bt^T, that is exactly, per expert block i, with w_i = sqrt(g_i) (rescaled) or g_i (plain):

    out          = y + s * sum_i g_i * m_i @ B_i^T
    grad m_i     = s * w_i * t_i                       (= w_i * s * B_i^T dy, per token)
    grad g_i     = s * <t_i, m_i>                      (= <dy, e_i>)
    grad B_i^T   = s * sum over tokens of w_i m_i dy^T
    grad y       = dy

A hook on parameters cannot do this (it misses the input path); scaling m alone would leave the
B gradient at g_i instead of sqrt(g_i). Hence one explicit backward, used for both forms. It
saves only m, g and the lora_B parameter itself: Bt (a transposed copy of lora_B) and the gated
activations are rebuilt in the backward instead of being kept alive between forward and
backward (on SmolLM2-135M with 20 x rank-4 experts that was 30 MB of a 1.2 GB step).

The products use the layouts that are fast for a skinny rank dimension: `addmm(y, h, Bt)` forward,
`dy @ Bt^T` and `h^T @ dy` backward (`dy^T @ h` was up to 10x slower on CPU at E*r = 4).
LoRA (no router) is the same product with g = 1, left to autograd.
"""

import torch
from torch.autograd.function import once_differentiable


def gated_product(y, m, gate, lora_b, scale: float, rescale: bool) -> torch.Tensor:
    """`y + scale * sum_i gate_i * m_i @ B_i^T` (m_i: expert i's r columns of m).

    y: (N, d_out) base output; m: (N, E*r); gate: (N, E), or None for no router (E = 1, LoRA);
    lora_b: the (E, d_out, r) parameter, any float dtype (cast to m's). With `rescale`, the
    backward of docs/methods.md, "Gate-based rescaling".
    """
    device = m.device.type
    if torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device):
        # The saved tensors must share the compute dtype, or the backward (which runs outside
        # autocast) would mix bf16 and float32 operands.
        dtype = torch.get_autocast_dtype(device)
        y, m = y.to(dtype), m.to(dtype)
    if gate is None:
        bt_cat = _stacked_bt(lora_b, m.dtype)
        if y.dtype != m.dtype:
            return y + scale * m @ bt_cat
        return torch.addmm(y, m, bt_cat, alpha=scale)
    gate = gate.to(m.dtype)
    if y.dtype != m.dtype:
        return y + _GatedExperts.apply(None, m, gate, lora_b, scale, rescale)
    return _GatedExperts.apply(y, m, gate, lora_b, scale, rescale)


def _stacked_bt(lora_b: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(E*r, d_out), contiguous: row block i is B_i^T. A small copy of the parameter."""
    experts, d_out, rank = lora_b.shape
    return lora_b.to(dtype).transpose(1, 2).reshape(experts * rank, d_out)


def _gated(m: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """(N, E*r) with block i of each row multiplied by gate[:, i]."""
    experts = gate.shape[-1]
    return (m.view(m.shape[0], experts, -1) * gate.unsqueeze(-1)).view(m.shape)


class _GatedExperts(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, m, gate, lora_b, scale, rescale):
        ctx.save_for_backward(m, gate, lora_b)
        ctx.scale, ctx.rescale = scale, rescale
        bt_cat = _stacked_bt(lora_b, m.dtype)
        if y is None:
            return scale * _gated(m, gate) @ bt_cat
        return torch.addmm(y, _gated(m, gate), bt_cat, alpha=scale)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        m, gate, lora_b = ctx.saved_tensors
        needs = ctx.needs_input_grad
        experts, d_out, rank = lora_b.shape
        grad_y = dy if needs[0] else None
        weight = (gate.sqrt() if ctx.rescale else gate).mul(ctx.scale)  # (N, E)
        grad_m = grad_g = grad_b = None
        if needs[1] or needs[2]:
            t = dy @ _stacked_bt(lora_b, m.dtype).T  # (N, E*r)
            if needs[1]:
                grad_m = _gated(t, weight)
            if needs[2]:
                products = t.view(-1, experts, rank) * m.view(-1, experts, rank)
                grad_g = products.sum(-1).mul_(ctx.scale)
        if needs[3]:
            grad_bt = _gated(m, weight).T @ dy  # (E*r, d_out)
            grad_b = grad_bt.view(experts, rank, d_out).transpose(1, 2)
            grad_b = grad_b.to(lora_b.dtype, memory_format=torch.contiguous_format)
        return grad_y, grad_m, grad_g, grad_b, None, None
