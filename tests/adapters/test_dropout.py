"""AdapterDropout: nn.Dropout's distribution with a faster CPU mask (layer.py)."""

import torch
from torch import nn

from loralab.adapters import AdapterConfig, AdapterLinear
from loralab.adapters.layer import AdapterDropout


def test_keeps_one_minus_p_and_scales_kept_values():
    drop = AdapterDropout(0.25).train()
    x = torch.ones(400, 500)
    torch.manual_seed(0)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.75) < 0.005
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.75))


def test_gradient_is_the_same_mask_and_scale():
    drop = AdapterDropout(0.5).train()
    x = torch.randn(64, 32, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(1)
    y = drop(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad, (y != 0).double() * 2.0)


def test_seeded_masks_repeat_and_eval_is_identity():
    drop = AdapterDropout(0.3).train()
    x = torch.randn(8, 16)
    torch.manual_seed(3)
    first = drop(x)
    torch.manual_seed(3)
    torch.testing.assert_close(drop(x), first)
    torch.testing.assert_close(drop.eval()(x), x)


def test_low_precision_input_keeps_its_dtype():
    drop = AdapterDropout(0.1).train()
    x = torch.randn(16, 16).bfloat16()
    assert drop(x).dtype == torch.bfloat16


def test_layer_uses_it_and_it_is_an_nn_dropout():
    layer = AdapterLinear(nn.Linear(4, 4), AdapterConfig(dropout=0.05))
    assert isinstance(layer.drop, AdapterDropout) and isinstance(layer.drop, nn.Dropout)
    assert layer.drop.p == 0.05
