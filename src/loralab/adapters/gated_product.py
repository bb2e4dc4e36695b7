"""Gate-rescaled expert mixture (SPEC §2) as one fused autograd function.

Per expert the reference writes, with sg = stop-gradient and e_i = s * B_i m_i:

    contribution_i = sg(sqrt(g_i)) * e_i + (g_i - sg(sqrt(g_i))) * sg(e_i)

Its value is g_i * e_i. Its gradient reaches e_i scaled by sqrt(g_i) and reaches g_i unchanged
as <dy, e_i>. With experts stacked along the rank axis (m: (N, E*r), g_exp: g repeated r times
per expert, B_cat: (d_out, E*r)) and t = s * dy @ B_cat, that is exactly:

    y            = s * (g_exp * m) @ B_cat^T
    grad m       = t * sqrt(g_exp)                    (= sqrt(g_i) * s * B_i^T dy, per block)
    grad g_exp   = t * m                              (summed over a block: <dy, e_i>)
    grad B_cat   = s * dy^T @ (sqrt(g_exp) * m)       (= sum over tokens of sqrt(g_i) dy m_i^T)

A hook on parameters cannot do this (it misses the input path); scaling m alone would leave the
B gradient at g_i instead of sqrt(g_i). Hence the explicit backward.
"""

import torch
from torch.autograd.function import once_differentiable


def gated_product(m, g_exp, b_cat, scale: float, rescale: bool) -> torch.Tensor:
    """`scale * (g_exp * m) @ b_cat.T`, with the gate-rescaled backward when `rescale`."""
    if rescale:
        # Under autocast the saved tensors must share the compute dtype, or the backward
        # (which runs outside autocast) would mix bf16 and float32 operands.
        device = m.device.type
        if torch.is_autocast_enabled(device):
            dtype = torch.get_autocast_dtype(device)
            m, g_exp, b_cat = m.to(dtype), g_exp.to(dtype), b_cat.to(dtype)
        return _GateRescaledProduct.apply(m, g_exp, b_cat, scale)
    return scale * (g_exp * m) @ b_cat.T


class _GateRescaledProduct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, m, g_exp, b_cat, scale):
        ctx.save_for_backward(m, g_exp, b_cat)
        ctx.scale = scale
        return scale * (g_exp * m) @ b_cat.T

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        m, g_exp, b_cat = ctx.saved_tensors
        root = g_exp.sqrt()
        t = ctx.scale * dy @ b_cat
        grad_m = t * root if ctx.needs_input_grad[0] else None
        grad_g = t * m if ctx.needs_input_grad[1] else None
        grad_b = ctx.scale * dy.T @ (root * m) if ctx.needs_input_grad[2] else None
        return grad_m, grad_g, grad_b, None
