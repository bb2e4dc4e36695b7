"""The experts' mixture added onto the base output; gate-rescaled (SPEC §2) as one fused function.

Per expert the reference writes, with sg = stop-gradient and e_i = s * B_i m_i:

    contribution_i = sg(sqrt(g_i)) * e_i + (g_i - sg(sqrt(g_i))) * sg(e_i)

Its value is g_i * e_i. Its gradient reaches e_i scaled by sqrt(g_i) and reaches g_i unchanged
as <dy, e_i>. With experts stacked along the rank axis (m: (N, E*r), whose (N, E, r) view holds
expert i's rank activations in [:, i, :]; g: (N, E); Bt: (E*r, d_out), row block i = B_i^T) and
t = dy @ Bt^T, that is exactly, per expert block i:

    out          = y + s * sum_i g_i * m_i @ B_i^T
    grad m_i     = s * sqrt(g_i) * t_i                 (= sqrt(g_i) * s * B_i^T dy, per token)
    grad g_i     = s * <t_i, m_i>                      (= <dy, e_i>)
    grad B_i^T   = s * sum over tokens of sqrt(g_i) m_i dy^T
    grad y       = dy

A hook on parameters cannot do this (it misses the input path); scaling m alone would leave the
B gradient at g_i instead of sqrt(g_i). Hence the explicit backward. Without rescaling, plain
autograd does the same products with g_i in place of sqrt(g_i).

The products use the layouts that are fast for a skinny rank dimension: `addmm(y, h, Bt)` forward,
`dy @ Bt^T` and `h^T @ dy` backward (`dy^T @ h` was up to 10x slower on CPU at E*r = 4).
"""

import torch
from torch.autograd.function import once_differentiable


def gated_product(y, m, gate, bt_cat, scale: float, rescale: bool) -> torch.Tensor:
    """`y + scale * (g (x) m) @ bt_cat` (g broadcast over each expert's r columns of m).

    y: (N, d_out) base output; m: (N, E*r); gate: (N, E), or None for no router (E = 1, LoRA);
    bt_cat: (E*r, d_out). With `rescale`, the backward of SPEC §2.
    """
    device = m.device.type
    if torch.is_autocast_enabled(device):
        # The saved tensors must share the compute dtype, or the backward (which runs outside
        # autocast) would mix bf16 and float32 operands.
        dtype = torch.get_autocast_dtype(device)
        y, m, bt_cat = y.to(dtype), m.to(dtype), bt_cat.to(dtype)
        gate = None if gate is None else gate.to(dtype)
    elif gate is not None:
        gate = gate.to(m.dtype)
    if gate is not None and rescale:
        if y.dtype != m.dtype:
            return y + _GateRescaledProduct.apply(None, m, gate, bt_cat, scale)
        return _GateRescaledProduct.apply(y, m, gate, bt_cat, scale)
    h = m if gate is None else _gated(m, gate)
    if y.dtype != h.dtype:
        return y + scale * h @ bt_cat
    return torch.addmm(y, h, bt_cat, alpha=scale)


def _gated(m: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """(N, E*r) with block i of each row multiplied by gate[:, i]."""
    experts = gate.shape[-1]
    return (m.view(m.shape[0], experts, -1) * gate.unsqueeze(-1)).view(m.shape)


class _GateRescaledProduct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, m, gate, bt_cat, scale):
        ctx.save_for_backward(m, gate, bt_cat)
        ctx.scale = scale
        if y is None:
            return scale * _gated(m, gate) @ bt_cat
        return torch.addmm(y, _gated(m, gate), bt_cat, alpha=scale)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        m, gate, bt_cat = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_y = dy if needs[0] else None
        scaled_root = gate.sqrt().mul_(ctx.scale)
        t = dy @ bt_cat.T if needs[1] or needs[2] else None  # (N, E*r)
        grad_m = _gated(t, scaled_root) if needs[1] else None
        grad_g = None
        if needs[2]:
            experts = gate.shape[-1]
            products = t.view(t.shape[0], experts, -1) * m.view(m.shape[0], experts, -1)
            grad_g = products.sum(-1).mul_(ctx.scale)
        grad_bt = _gated(m, scaled_root).T @ dy if needs[3] else None
        return grad_y, grad_m, grad_g, grad_bt, None
