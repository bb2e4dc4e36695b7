"""Save / load round-trip, PEFT parity and export, merge, and the MoE-LoRA refusals."""

import copy
import json

import peft
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from loralab.adapters import (
    AdapterConfig,
    adapter_modules,
    export_peft,
    load_adapter,
    merge_adapters,
    save_adapter,
)
from tests.helpers import adapted

# peft 0.21 calls a transformers 5 property that warns; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated")

IDS = torch.arange(14).reshape(2, 7) * 9 % 128
MOE = AdapterConfig(kind="moe_lora", rank=2, num_experts=3, top_k=2, mixer=True, dropout=0.0)
MOSLORA = AdapterConfig(kind="moslora", rank=4, alpha=8, dropout=0.0, target_modules="all")
LORA = AdapterConfig(rank=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"])


def logits(model):
    with torch.no_grad():
        return model(IDS).logits


def test_save_load_round_trip_is_exact(tiny_llama, tmp_path):
    fresh = copy.deepcopy(tiny_llama)
    model = adapted(tiny_llama, MOE)
    save_adapter(model, tmp_path, MOE)
    assert json.loads((tmp_path / "adapter_config.json").read_text())["format_version"] == 1
    assert all(".base." not in key for key in load_file(tmp_path / "adapter.safetensors"))
    layers = load_adapter(fresh, tmp_path)
    assert len(layers) == 8 and layers[0].mixer is not None
    assert torch.equal(logits(fresh), logits(model))


def test_load_names_missing_and_unexpected_keys(tiny_llama, tmp_path):
    save_adapter(adapted(copy.deepcopy(tiny_llama), MOE), tmp_path, MOE)
    tensors = load_file(tmp_path / "adapter.safetensors")
    del tensors["model.layers.1.self_attn.o_proj.lora_A"]
    tensors["model.layers.9.self_attn.q_proj.lora_A"] = torch.zeros(1)
    save_file(tensors, tmp_path / "adapter.safetensors")
    with pytest.raises(
        ValueError, match=r"missing keys \['model.layers.1.self_attn.o_proj.lora_A'"
    ):
        load_adapter(copy.deepcopy(tiny_llama), tmp_path)
    with pytest.raises(ValueError, match=r"unexpected keys \['model.layers.9.self_attn.q_proj"):
        load_adapter(tiny_llama, tmp_path)


def test_a_config_that_does_not_fit_the_weights_is_refused_before_allocating(tiny_llama, tmp_path):
    """rank 10**12 in adapter_config.json: the header's shapes disagree; nothing is injected."""
    save_adapter(adapted(copy.deepcopy(tiny_llama), MOE), tmp_path, MOE)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    (tmp_path / "adapter_config.json").write_text(json.dumps(config | {"rank": 10**12}))
    with pytest.raises(
        ValueError, match=r"lora_A has shape \[3, 2, 64\], but .* give \[3, 1000000000000, 64\]"
    ):
        load_adapter(tiny_llama, tmp_path)
    assert not adapter_modules(tiny_llama)


@pytest.mark.parametrize(
    "damage,fragment",
    [
        (lambda d: (d / "adapter_config.json").write_text("{not json"), "adapter_config.json"),
        (lambda d: (d / "adapter.safetensors").write_bytes(b"garbage"), "not a readable"),
    ],
)
def test_unreadable_adapter_files_are_named(tiny_llama, tmp_path, damage, fragment):
    save_adapter(adapted(copy.deepcopy(tiny_llama), MOE), tmp_path, MOE)
    damage(tmp_path)
    with pytest.raises(ValueError, match=fragment):
        load_adapter(tiny_llama, tmp_path)


def test_non_finite_adapter_weights_are_refused(tiny_llama, tmp_path):
    """A diverged run's adapter would otherwise score every question with its first option."""
    save_adapter(adapted(copy.deepcopy(tiny_llama), MOE), tmp_path, MOE)
    tensors = load_file(tmp_path / "adapter.safetensors")
    tensors["model.layers.0.self_attn.q_proj.lora_B"][0, 0, 0] = float("nan")
    save_file(tensors, tmp_path / "adapter.safetensors")
    with pytest.raises(ValueError, match="non-finite weights .* model.layers.0.self_attn.q_proj"):
        load_adapter(tiny_llama, tmp_path)


def test_our_lora_with_peft_weights_gives_peft_logits(tiny_llama):
    torch.manual_seed(2)
    peft_config = peft.LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0, target_modules=LORA.target_modules
    )
    theirs = peft.get_peft_model(copy.deepcopy(tiny_llama), peft_config).eval()
    ours = adapted(tiny_llama, LORA)
    with torch.no_grad():
        for name, layer in adapter_modules(ours):
            peft_layer = theirs.base_model.model.get_submodule(name)
            peft_layer.lora_B["default"].weight.normal_()
            layer.lora_A[0].copy_(peft_layer.lora_A["default"].weight)
            layer.lora_B[0].copy_(peft_layer.lora_B["default"].weight)
    torch.testing.assert_close(logits(ours), logits(theirs), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("config", [LORA, MOSLORA], ids=["lora", "moslora"])
def test_export_loads_in_peft_with_the_same_logits(tiny_llama, tmp_path, config):
    fresh = copy.deepcopy(tiny_llama)
    ours = adapted(tiny_llama, config)
    export_peft(ours, tmp_path, base_model_name_or_path="tiny-llama")
    theirs = peft.PeftModel.from_pretrained(fresh, tmp_path).eval()
    assert theirs.peft_config["default"].r == config.rank
    torch.testing.assert_close(logits(theirs), logits(ours), rtol=1e-5, atol=1e-5)


def test_merge_equals_unmerged_and_restores_plain_linears(tiny_llama):
    model = adapted(tiny_llama, MOSLORA)
    before = logits(model)
    merged = merge_adapters(model)
    assert len(merged) == 14 and not adapter_modules(model)
    assert type(model.model.layers[0].mlp.down_proj) is nn.Linear
    torch.testing.assert_close(logits(model), before, rtol=1e-5, atol=1e-5)


def test_moe_lora_merge_and_export_are_refused(tiny_llama, tmp_path):
    model = adapted(tiny_llama, MOE)
    with pytest.raises(ValueError, match="cannot be merged.*gate depends on the input"):
        merge_adapters(model)
    with pytest.raises(ValueError, match="cannot be exported as a PEFT LoRA"):
        export_peft(model, tmp_path)
    assert len(adapter_modules(model)) == 8
