"""Targeting by preset / leaf / regex, injection into a tiny Llama, and its exact algebra."""

import copy

import pytest
import torch
from torch import nn

from loralab.adapters import (
    AdapterConfig,
    adapter_modules,
    inject_adapters,
    resolve_targets,
    set_gate_rescale,
)

ATTN = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP = ["gate_proj", "up_proj", "down_proj"]
NAMES = [f"model.layers.{i}.self_attn.{leaf}" for i in range(2) for leaf in ATTN]
NAMES += [f"model.layers.{i}.mlp.{leaf}" for i in range(2) for leaf in MLP] + ["lm_head"]


def leaves(names):
    return sorted({n.rsplit(".", 1)[-1] for n in names})


@pytest.mark.parametrize(
    ("targets", "want"),
    [("attention", ATTN), ("mlp", MLP), ("all", ATTN + MLP), (["q_proj", "down_proj"], None)],
)
def test_presets_and_leaf_names(targets, want):
    got = resolve_targets(targets, NAMES)
    assert leaves(got) == sorted(want or targets)
    assert len(got) == 2 * len(leaves(got))


def test_regex_is_fullmatched_on_the_full_name_and_skips_lm_head():
    assert resolve_targets(r"model\.layers\.1\.self_attn\.[qv]_proj", NAMES) == [
        "model.layers.1.self_attn.q_proj",
        "model.layers.1.self_attn.v_proj",
    ]
    assert "lm_head" not in resolve_targets(".*", NAMES)
    assert resolve_targets(["attention", "lm_head"], NAMES)[-1] == "lm_head"


def test_unmatched_entry_lists_the_linear_modules():
    with pytest.raises(ValueError, match="'qkv'.*linear modules of this model: down_proj, gate"):
        resolve_targets(["q_proj", "qkv"], NAMES)
    with pytest.raises(ValueError, match="not a valid regex"):
        resolve_targets("q_proj[", NAMES)


def test_only_named_modules_are_wrapped_and_base_is_frozen(tiny_llama):
    config = AdapterConfig(kind="moe_lora", rank=2, num_experts=3, top_k=2, target_modules="v_proj")
    layers = inject_adapters(tiny_llama, config)
    names = [name for name, _ in adapter_modules(tiny_llama)]
    assert names == ["model.layers.0.self_attn.v_proj", "model.layers.1.self_attn.v_proj"]
    assert [layer for _, layer in adapter_modules(tiny_llama)] == layers
    trainable = {n for n, p in tiny_llama.named_parameters() if p.requires_grad}
    suffixes = ("lora_A", "lora_B", "router.weight")
    assert trainable == {f"{n}.{s}" for n in names for s in suffixes}
    v = tiny_llama.model.layers[0].self_attn.v_proj
    trainable = sum(p.numel() for p in tiny_llama.parameters() if p.requires_grad)
    assert trainable == 2 * (3 * 2 * (64 + v.out_features) + 3 * 64)
    assert isinstance(tiny_llama.model.layers[0].self_attn.q_proj, nn.Linear)
    set_gate_rescale(tiny_llama, True)
    assert all(layer.gate_rescale for layer in layers)
    with pytest.raises(ValueError, match="already has adapters"):
        inject_adapters(tiny_llama, config)


def test_wrapped_llama_equals_base_at_init_and_w0_plus_sba_after(tiny_llama):
    base = copy.deepcopy(tiny_llama)
    ids = torch.randint(0, 128, (2, 7))
    layers = inject_adapters(tiny_llama, AdapterConfig(rank=4, alpha=8, dropout=0.0))
    tiny_llama.eval()
    with torch.no_grad():
        before = base(ids).logits
        torch.testing.assert_close(tiny_llama(ids).logits, before, rtol=0, atol=0)
        for layer in layers:
            layer.lora_B.normal_()
        for name, layer in adapter_modules(tiny_llama):
            delta = layer.scale * layer.lora_B[0] @ layer.lora_A[0]
            base.get_submodule(name).weight += delta
        after = tiny_llama(ids).logits
        torch.testing.assert_close(after, base(ids).logits)
        assert not torch.allclose(after, before, atol=1e-3)
