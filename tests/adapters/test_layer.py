"""AdapterLinear against a per-expert reference written out here, in float64 (docs/methods.md,
"The adapter family" and "Gate-based rescaling")."""

import math

import pytest
import torch
from torch import nn

from loralab.adapters import AdapterConfig, AdapterLinear

D_IN, D_OUT, RANK = 6, 5, 3


def make_layer(experts=1, top_k=1, mixer=False, rescale=False, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    kind = "moe_lora" if experts > 1 else "moslora" if mixer else "lora"
    config = AdapterConfig(
        kind=kind,
        rank=RANK,
        alpha=6.0,
        dropout=0.0,
        num_experts=experts,
        top_k=top_k,
        mixer=mixer,
        gate_rescale=rescale,
    )
    layer = AdapterLinear(nn.Linear(D_IN, D_OUT, dtype=dtype), config)
    with torch.no_grad():
        layer.lora_B.normal_()
    return layer


def reference(layer, x, rescale):
    """Python loop over experts: y = W0 x + sum_i c_i, with the stop-gradient form of
    docs/methods.md, "Gate-based rescaling"."""
    y = x @ layer.base.weight.T + layer.base.bias
    if layer.router is None:
        gate = torch.ones(*x.shape[:-1], 1, dtype=x.dtype)
    else:  # naive: full softmax, keep the k largest probabilities, renormalise them
        probs = torch.softmax(x @ layer.router.weight.T, dim=-1)
        keep = probs.argsort(dim=-1, descending=True)[..., : layer.top_k]
        mask = torch.zeros_like(probs).scatter(-1, keep, 1.0)
        gate = probs * mask / (probs * mask).sum(-1, keepdim=True)
    for i in range(layer.num_experts):
        h = x @ layer.lora_A[i].T
        if layer.mixer is not None:
            h = h @ layer.mixer[i].T
        e = layer.scale * h @ layer.lora_B[i].T
        g = gate[..., i : i + 1]
        if rescale:
            root = g.sqrt().detach()
            y = y + root * e + (g - root) * e.detach()
        else:
            y = y + g * e
    return y


def value_and_grads(layer, x, forward):
    x = x.clone().requires_grad_(True)
    y = forward(x)
    weights = torch.linspace(-1, 1, y.numel(), dtype=y.dtype, device=y.device).reshape(y.shape)
    params = [p for p in (layer.lora_A, layer.lora_B, layer.mixer) if p is not None]
    params += [layer.router.weight] if layer.router is not None else []
    grads = torch.autograd.grad((y * weights).sum(), [x, *params])
    return y.detach(), grads


@pytest.mark.parametrize("top_k", [1, 2, 5])
@pytest.mark.parametrize("rescale", [False, True])
@pytest.mark.parametrize("mixer", [False, True])
def test_batched_experts_match_per_expert_reference(top_k, rescale, mixer):
    layer = make_layer(experts=5, top_k=top_k, mixer=mixer, rescale=rescale)
    x = torch.randn(2, 3, D_IN, dtype=torch.float64)
    ours, our_grads = value_and_grads(layer, x, layer)
    ref, ref_grads = value_and_grads(layer, x, lambda t: reference(layer, t, rescale))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(our_grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_rescaling_changes_gradients_but_not_values():
    x = torch.randn(4, D_IN, dtype=torch.float64)
    plain, rescaled = make_layer(experts=5, top_k=2), make_layer(experts=5, top_k=2, rescale=True)
    (y0, g0), (y1, g1) = value_and_grads(plain, x, plain), value_and_grads(rescaled, x, rescaled)
    torch.testing.assert_close(y0, y1)
    assert not torch.allclose(g0[1], g1[1])  # lora_A


@pytest.mark.parametrize("mixer", [False, True])
def test_single_expert_is_lora_by_hand(mixer):
    layer = make_layer(mixer=mixer)
    assert layer.router is None
    x = torch.randn(2, 3, D_IN, dtype=torch.float64)
    a, b = layer.lora_A[0], layer.lora_B[0]
    ba = b @ layer.mixer[0] @ a if mixer else b @ a
    want = x @ layer.base.weight.T + layer.base.bias + layer.scale * x @ ba.T
    torch.testing.assert_close(layer(x), want)


def test_identity_mixer_is_lora():
    lora, moslora = make_layer(), make_layer(mixer=True)
    with torch.no_grad():
        moslora.load_state_dict(lora.state_dict(), strict=False)
        moslora.mixer.copy_(torch.eye(RANK))
    x = torch.randn(4, D_IN, dtype=torch.float64)
    torch.testing.assert_close(moslora(x), lora(x))


def test_top1_rescaled_equals_plain_in_value_and_gradients():
    x = torch.randn(2, 3, D_IN, dtype=torch.float64)
    plain, rescaled = make_layer(experts=4), make_layer(experts=4, rescale=True)
    (y0, g0), (y1, g1) = value_and_grads(plain, x, plain), value_and_grads(rescaled, x, rescaled)
    torch.testing.assert_close(y0, y1, rtol=0, atol=1e-12)
    for a, b in zip(g0, g1, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("rescale", [False, True])
def test_unselected_experts_get_exactly_zero_gradient(rescale):
    layer = make_layer(experts=5, top_k=2, mixer=True, rescale=rescale)
    x = torch.randn(1, D_IN, dtype=torch.float64)
    chosen = set(layer.router(x).topk(2).indices[0].tolist())
    layer(x).sum().backward()
    for i in range(5):
        for p in (layer.lora_A, layer.lora_B, layer.mixer):
            assert (p.grad[i] != 0).any() == (i in chosen)


def test_init_and_parameter_contract():
    torch.manual_seed(0)
    config = AdapterConfig(kind="moe_lora", rank=8, num_experts=3, top_k=2, mixer=True)
    layer = AdapterLinear(nn.Linear(64, 32), config)
    assert layer.lora_A.shape == (3, 8, 64) and layer.lora_B.shape == (3, 32, 8)
    assert layer.mixer.shape == (3, 8, 8) and layer.router.weight.shape == (3, 64)
    assert layer.router.bias is None and layer.scale == 2.0
    assert not any(p.requires_grad for p in layer.base.parameters())
    assert (layer.lora_B == 0).all()
    for param, fan_in in ((layer.lora_A, 64), (layer.mixer, 8)):
        bound = 1 / math.sqrt(fan_in)  # nn.Linear's default kaiming-uniform, per expert
        assert param.abs().max() <= bound and param.abs().max() > 0.8 * bound
        assert not torch.equal(param[0], param[1])


def test_bf16_base_keeps_float32_adapter_and_computes_in_input_dtype():
    layer = make_layer(experts=3, top_k=2, dtype=torch.bfloat16)
    assert layer.lora_A.dtype == torch.float32 and layer.router.weight.dtype == torch.float32
    x = torch.randn(2, 3, D_IN)
    y = layer(x.bfloat16())
    assert y.dtype == torch.bfloat16
    layer.base.float()
    torch.testing.assert_close(y.float(), reference(layer, x, False), rtol=0.05, atol=0.05)


def test_bf16_router_gradients_equal_the_float32_cast_and_save_no_float32_copy_of_x():
    """A bf16 input is routed in float32 without autograd keeping a float32 copy of x alive
    until the backward (2 GB at Llama-1B shapes); values and gradients are those of
    `F.linear(x.float(), W)` with autograd through the cast."""
    layer = make_layer(experts=4, top_k=2, dtype=torch.bfloat16)
    x = torch.randn(2, 7, D_IN).bfloat16()
    weights = torch.randn(2, 7, 4)

    def gate_and_grads(gate_of):
        x_leaf = x.clone().requires_grad_(True)
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
            gate = gate_of(x_leaf)
        grads = torch.autograd.grad((gate * weights).sum(), [x_leaf, layer.router.weight])
        return gate, grads, saved

    def plain(x_leaf):  # what autograd does through the cast (the former code path)
        logits = nn.functional.linear(x_leaf.float(), layer.router.weight)
        top = logits.topk(layer.top_k, dim=-1)
        return torch.zeros_like(logits).scatter(-1, top.indices, top.values.softmax(-1))

    gate, grads, saved = gate_and_grads(layer._gate)
    want_gate, want_grads, want_saved = gate_and_grads(plain)
    torch.testing.assert_close(gate, want_gate, rtol=0, atol=0)
    for got, want in zip(grads, want_grads, strict=True):
        assert got.dtype == want.dtype
        torch.testing.assert_close(got, want, rtol=0, atol=0)

    def float32_copies(tensors):
        return [t for t in tensors if t.dtype == torch.float32 and t.numel() == x.numel()]

    assert float32_copies(want_saved), "the reference path should show the float32 copy"
    assert not float32_copies(saved)


def test_dropout_uses_one_mask_for_all_experts():
    layer = make_layer(experts=3, top_k=3)
    layer.drop = nn.Dropout(0.5)
    calls = []
    layer.drop.register_forward_hook(lambda mod, inp, out: calls.append(out))
    layer.train()(torch.randn(4, D_IN, dtype=torch.float64))
    assert len(calls) == 1


def test_gate_rescaled_backward_under_cpu_bf16_autocast():
    """bf16-mixed training (trainer.precision=bf16-mixed) runs the fused backward."""
    torch.manual_seed(0)
    config = AdapterConfig(kind="moe_lora", rank=2, num_experts=4, top_k=2, gate_rescale=True)
    layer = AdapterLinear(nn.Linear(8, 6), config)
    nn.init.normal_(layer.lora_B)
    x = torch.randn(3, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    y.float().sum().backward()
    assert y.dtype == torch.bfloat16
    for grad in (x.grad, layer.lora_A.grad, layer.lora_B.grad, layer.router.weight.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_routing_ignores_autocast():
    """The router runs in float32 under bf16 autocast: the same experts and gate weights as
    without it (a bf16 router matmul would round near-tied logits into other choices)."""
    torch.manual_seed(0)
    config = AdapterConfig(kind="moe_lora", rank=2, num_experts=16, top_k=4)
    layer = AdapterLinear(nn.Linear(64, 8), config)
    x = torch.randn(256, 64)
    want = layer._gate(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = layer._gate(x)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_shapes_on_the_meta_device():
    """Model surgery tools trace shapes on `meta`, where autocast does not exist."""
    with torch.device("meta"):
        layer = AdapterLinear(nn.Linear(8, 6), AdapterConfig(kind="moe_lora", num_experts=4))
        assert layer(torch.randn(2, 3, 8)).shape == (2, 3, 6)
