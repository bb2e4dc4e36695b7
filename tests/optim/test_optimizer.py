"""AdapterOptimizer against explicit formulas: RSGD, RAdamW, the router group, the quirks."""

import copy

import pytest
import torch

from loralab.adapters import adapter_modules
from loralab.optim import preconditioner

from .helpers import (
    adapted_llama,
    backward,
    build_for,
    explicit_riemannian_grads,
    gram_condition_numbers,
    snapshot,
)

DELTA = 1e-6
LR = 0.01


def _config(name, **overrides):
    return {"name": name, "lr": 0.01, "router_lr": 0.0, "delta": DELTA} | overrides


@pytest.mark.parametrize("stacked", [False, True], ids=["per_layer", "stacked"])
@pytest.mark.parametrize("kind", ["lora", "moslora", "moe_lora", "moe_moslora"])
def test_rsgd_step_is_the_explicit_formula_per_expert(kind, stacked, monkeypatch):
    """Both ways of grouping layers: one matmul per layer (CPU) and layers of one shape
    stacked into one matmul (what a GPU runs; forced here on the CPU)."""
    if stacked:
        monkeypatch.setattr(preconditioner, "_alone", lambda device, index: None)
    model = adapted_llama(kind)
    backward(model)
    before = snapshot(model)
    layers = adapter_modules(model)
    expected = {
        n: explicit_riemannian_grads(layer, DELTA, dtype=torch.float64) for n, layer in layers
    }
    conditions = {n: gram_condition_numbers(layer, DELTA) for n, layer in layers}
    optimizer, _ = build_for(model, _config("rsgd"))
    optimizer.step()
    eps = torch.finfo(torch.float32).eps
    for name, layer in adapter_modules(model):
        grad_a, grad_b = expected[name]
        kappa_b, kappa_a = conditions[name]  # G_A' solves with B's Gram, G_B' with A's
        for factor, grad, kappa in (("lora_A", grad_a, kappa_b), ("lora_B", grad_b, kappa_a)):
            old = before[f"{name}.{factor}"]
            reference = old.double() - LR * grad
            # A float32 solve is accurate to about kappa * eps relative to the solution's norm
            # (x 10 for the Gram's own rounding and the rank-sized sums), plus one float32
            # rounding of the updated weight.
            tolerance = 10 * kappa * eps * LR * grad.abs().max().item() + eps * old.abs().max()
            error = (getattr(layer, factor).double() - reference).abs().max().item()
            assert error <= tolerance, f"{name}.{factor}: {error:.2e} > {tolerance:.2e}"
        if layer.mixer is not None:  # the mixer is not preconditioned: plain SGD, no solve
            torch.testing.assert_close(
                layer.mixer, before[f"{name}.mixer"] - LR * layer.mixer.grad, atol=1e-6, rtol=0
            )


def test_radamw_equals_torch_adamw_on_explicitly_preconditioned_gradients():
    model = adapted_llama("moe_moslora")
    twin = copy.deepcopy(model)
    config = _config("radamw", lr=1e-3, router_lr=1e-3, weight_decay=0.01, eps=1e-8)
    optimizer, _ = build_for(model, config | {"router_clip": None})
    twin_layers = [layer for _, layer in adapter_modules(twin)]
    reference = torch.optim.AdamW(
        [p for layer in twin_layers for p in (layer.lora_A, layer.lora_B, layer.mixer)]
        + [layer.router.weight for layer in twin_layers],
        lr=1e-3,
        weight_decay=0.01,
        eps=1e-8,
        foreach=False,
    )
    for step in range(3):
        backward(model, seed=step)
        backward(twin, seed=step)
        for layer in twin_layers:  # the router's gradient stays raw
            layer.lora_A.grad, layer.lora_B.grad = explicit_riemannian_grads(layer, DELTA)
        optimizer.step()
        reference.step()
        optimizer.zero_grad()
        reference.zero_grad()
    ours, theirs = snapshot(model), snapshot(twin)
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], atol=1e-6, rtol=0, msg=name)


def test_router_is_plain_sgd_at_its_own_lr_never_preconditioned():
    model = adapted_llama("moe_lora")
    backward(model)
    routers = {
        n: (layer.router.weight.clone(), layer.router.weight.grad.clone())
        for n, layer in adapter_modules(model)
    }
    optimizer, _ = build_for(model, _config("rsgd", router_lr=0.5, router_clip=None))
    optimizer.step()
    for name, layer in adapter_modules(model):
        weight, grad = routers[name]
        torch.testing.assert_close(layer.router.weight, weight - 0.5 * grad, atol=1e-7, rtol=0)


def test_only_router_gradients_are_clipped():
    model = adapted_llama("moe_lora")
    backward(model, loss_scale=1e4)
    layers = [layer for _, layer in adapter_modules(model)]
    expert_grads = [layer.lora_A.grad.clone() for layer in layers]
    router_grads = [layer.router.weight.grad for layer in layers]
    assert torch.linalg.vector_norm(torch.stack([g.norm() for g in router_grads])) > 10
    before = snapshot(model)
    optimizer, _ = build_for(model, _config("sgd", lr=1.0, router_lr=1.0, router_clip=1.0))
    optimizer.step()
    router_norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in router_grads]))
    assert router_norm <= 1.0 + 1e-5
    for (name, layer), grad in zip(adapter_modules(model), expert_grads, strict=True):
        assert torch.equal(layer.lora_A.grad, grad)  # huge, untouched
        torch.testing.assert_close(layer.lora_A, before[f"{name}.lora_A"] - grad)


def test_preconditioning_is_batched_not_per_layer_or_expert(monkeypatch):
    calls = []
    solve_ex = torch.linalg.solve_ex

    def counting_solve_ex(*args, **kwargs):
        calls.append(args[0].shape)
        return solve_ex(*args, **kwargs)

    monkeypatch.setattr(torch.linalg, "solve_ex", counting_solve_ex)
    model = adapted_llama("moe_lora")  # 8 layers x 4 experts; A: one shape, B: two shapes
    backward(model)
    optimizer, _ = build_for(model, _config("rsgd"))
    optimizer.step()
    # one solve per factor over all 32 experts, whatever the layers' shapes
    assert sorted(shape[0] for shape in calls) == [32, 32]


@pytest.mark.parametrize("factor", ["A", "B"])
def test_non_finite_preconditioned_gradient_names_layer_and_step(factor):
    model = adapted_llama("moe_lora")
    optimizer, _ = build_for(model, _config("rsgd"))
    backward(model)
    optimizer.step()
    layer = model.model.layers[1].self_attn.v_proj
    getattr(layer, f"lora_{factor}").grad[2, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError) as error:
        optimizer.step()
    message = str(error.value)
    assert f"lora_{factor}" in message
    assert "optimizer step 2" in message
    assert "model.layers.1.self_attn.v_proj (experts [2])" in message


def test_only_parameters_with_gradients_move():
    model = adapted_llama("moe_lora")
    backward(model)
    frozen = model.model.layers[0].self_attn.q_proj
    frozen.lora_B.grad = None
    before = frozen.lora_B.clone()
    optimizer, _ = build_for(model, _config("radamw"))
    optimizer.step()
    assert torch.equal(frozen.lora_B, before)
    assert frozen.lora_B not in optimizer.state


def test_without_bias_correction_equals_hand_written_update():
    model = adapted_llama("lora")
    lr, eps, (beta1, beta2) = 1e-3, 1e-6, (0.9, 0.999)
    config = _config("radamw", lr=lr, eps=eps, bias_correction=False)
    optimizer, _ = build_for(model, config)
    corrected = copy.deepcopy(model)
    other, _ = build_for(corrected, config | {"bias_correction": True})
    layer = model.model.layers[0].self_attn.k_proj
    expected = layer.lora_B.detach().clone()
    m = v = torch.zeros_like(expected)
    for step in range(2):
        backward(model, seed=step)
        backward(corrected, seed=step)
        _, grad = explicit_riemannian_grads(layer, DELTA)
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad**2
        expected = expected - lr * m / (v.sqrt() + eps)
        optimizer.step()
        other.step()
        optimizer.zero_grad()
        other.zero_grad()
    torch.testing.assert_close(layer.lora_B, expected, atol=1e-6, rtol=0)
    assert not torch.allclose(layer.lora_B, corrected.model.layers[0].self_attn.k_proj.lora_B)


def test_precondition_b_with_updated_a_uses_the_new_a():
    model = adapted_llama("moe_moslora")
    default = copy.deepcopy(model)
    backward(model)
    backward(default)
    name, layer = adapter_modules(model)[3]
    a_before, b_before = layer.lora_A.detach().clone(), layer.lora_B.detach().clone()
    grad_a, _ = explicit_riemannian_grads(layer, DELTA)
    new_a = a_before - 0.01 * grad_a
    _, grad_b = explicit_riemannian_grads(layer, DELTA, a=new_a)
    quirk, _ = build_for(model, _config("rsgd", precondition_b_with_updated_a=True))
    plain, _ = build_for(default, _config("rsgd"))
    quirk.step()
    plain.step()
    torch.testing.assert_close(layer.lora_A, new_a, atol=1e-6, rtol=0)
    torch.testing.assert_close(layer.lora_B, b_before - 0.01 * grad_b, atol=1e-6, rtol=0)
    assert not torch.allclose(layer.lora_B, default.get_submodule(name).lora_B, atol=1e-6)
