"""The multi-tensor (`foreach`) updates equal the one-tensor-at-a-time loop.

On the CPU the `torch._foreach_*` calls run the same element-wise operations in the same order
as the loop, so the weights, moments and momentum buffers must match exactly; any reordering or
a missed state entry would show as a difference."""

import copy

import pytest
import torch

from loralab.adapters import adapter_modules
from loralab.optim import OPTIMIZER_NAMES
from loralab.optim.optimizer import AdapterOptimizer

from .helpers import adapted_llama, backward, build_for

SETTINGS = {
    "plain": {},
    "decay_momentum": {"weight_decay": 0.1, "momentum": 0.9},
    "reference_adamw": {"bias_correction": False, "precondition_b_with_updated_a": True},
}


def _train(model, config, steps=4, skip_router_at=None):
    optimizer, _ = build_for(model, config)
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        backward(model, seed=step)
        if step == skip_router_at:  # a parameter without a gradient: its step count lags
            for _, layer in adapter_modules(model):
                if layer.router is not None:
                    layer.router.weight.grad = None
        optimizer.step()
    return optimizer


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("name", [*OPTIMIZER_NAMES, "loraplus"])  # lorarite: no mixer, own loop
@pytest.mark.parametrize("kind", ["moe_lora", "moe_moslora"])
def test_foreach_updates_equal_the_per_tensor_loop(kind, name, setting):
    looped_model = adapted_llama(kind)
    fused_model = copy.deepcopy(looped_model)
    config = {"name": name, "lr": 1e-2, "router_lr": 1e-3} | SETTINGS[setting]
    looped = _train(looped_model, config | {"foreach": False}, skip_router_at=1)
    fused = _train(fused_model, config | {"foreach": True}, skip_router_at=1)
    assert not looped.foreach and fused.foreach
    fused_params = dict(fused_model.named_parameters())
    moved = 0
    for key, param in looped_model.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(fused_params[key], param, rtol=0, atol=0)
            moved += 1
    assert moved
    for looped_state, fused_state in zip(
        looped.state_dict()["state"].values(), fused.state_dict()["state"].values(), strict=True
    ):
        assert looped_state.keys() == fused_state.keys()
        for key, value in looped_state.items():
            if torch.is_tensor(value):
                torch.testing.assert_close(fused_state[key], value, rtol=0, atol=0)
            else:
                assert fused_state[key] == value, key


def test_foreach_updates_float64_parameters_in_float64():
    """Tensors of two dtypes go through separate multi-tensor calls, each in its own dtype."""
    model = adapted_llama("moe_lora").double()
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    optimizer = AdapterOptimizer(adapter_modules(model), lr=1e-2, base="adamw", foreach=True)
    backward(model)
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    optimizer.step()
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.dtype == torch.float64
            # first bias-corrected AdamW step: p - lr * g / (|g| + eps)
            expected = before[name] - 1e-2 * grads[name] / (grads[name].abs() + 1e-6)
            torch.testing.assert_close(param, expected, rtol=1e-12, atol=1e-12)


def test_default_is_multi_tensor_on_gpus_and_the_loop_on_cpu():
    optimizer, _ = build_for(adapted_llama("lora"), {"name": "sgd", "lr": 0.1})
    assert optimizer.foreach is None
    assert not optimizer._use_foreach(torch.device("cpu"))
    assert optimizer._use_foreach(torch.device("cuda"))


def test_foreach_is_an_optimizer_config_switch():
    with pytest.raises(ValueError, match="optimizer.foreach='yes'"):
        build_for(adapted_llama("lora"), {"name": "sgd", "lr": 0.1, "foreach": "yes"})
