"""AdapterConfig refuses every bad value with a message naming the key."""

import warnings

import pytest
from omegaconf import OmegaConf

from loralab.adapters import AdapterConfig


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "dora"}, "adapter.kind='dora'.*lora, moslora, moe_lora"),
        ({"rank": 0}, "adapter.rank=0"),
        ({"kind": "moe_lora", "num_experts": 0}, "adapter.num_experts=0"),
        ({"kind": "moe_lora", "num_experts": 4, "top_k": 0}, "adapter.top_k=0"),
        (
            {"kind": "moe_lora", "num_experts": 4, "top_k": 5},
            "adapter.top_k=5 must be <= adapter.num_experts=4",
        ),
        ({"dropout": 1.0}, r"adapter.dropout=1.0.*\[0, 1\)"),
        ({"dropout": -0.1}, "adapter.dropout=-0.1"),
        ({"alpha": 0}, "adapter.alpha=0"),
        ({"load_balance_coef": -1.0}, "adapter.load_balance_coef=-1.0"),
        ({"kind": "lora", "num_experts": 2}, "adapter.num_experts=2.*moe_lora"),
        ({"kind": "moslora", "num_experts": 3}, "adapter.num_experts=3"),
        ({"kind": "lora", "mixer": True}, "adapter.mixer=True.*has none"),
        ({"target_modules": []}, "adapter.target_modules"),
    ],
)
def test_bad_values_are_refused_naming_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdapterConfig(**kwargs)


def test_mixer_defaults_per_kind_and_moe_of_moslora_is_legal():
    assert AdapterConfig(kind="moslora").mixer is True
    assert AdapterConfig(kind="lora").mixer is False
    assert AdapterConfig(kind="moe_lora", num_experts=4, top_k=2).mixer is False
    assert AdapterConfig(kind="moe_lora", num_experts=4, top_k=2, mixer=True).mixer is True


def test_settings_without_effect_for_one_expert_warn():
    with pytest.warns(UserWarning, match="adapter.gate_rescale=True has no effect"):
        AdapterConfig(gate_rescale=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AdapterConfig(kind="moe_lora", num_experts=2, gate_rescale=True)


def test_from_mapping_rejects_unknown_keys_and_round_trips():
    with pytest.raises(ValueError, match="experts.*allowed keys: kind, rank"):
        AdapterConfig.from_mapping({"kind": "moe_lora", "experts": 4})
    config = AdapterConfig(kind="moe_lora", num_experts=4, top_k=2, target_modules=("q_proj",))
    assert config.target_modules == ["q_proj"]
    assert AdapterConfig.from_mapping(config.to_dict()) == config
    assert AdapterConfig(target_modules="mlp").to_dict()["target_modules"] == ["mlp"]
    hydra_node = OmegaConf.create(config.to_dict())  # what the Hydra entry point passes
    assert AdapterConfig.from_mapping(hydra_node) == config
