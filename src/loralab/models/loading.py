"""Build the model and tokenizer named by a ``model`` config node."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch

from loralab.values import is_integer

log = logging.getLogger(__name__)

SOURCES = ("tiny", "embedded", "hub", "auto")

# Fully qualified linear-module names per architecture, so target patterns can be checked
# against a model before any weights load.
LINEAR_TEMPLATES = {
    "llama": [
        "model.layers.{i}.self_attn.q_proj",
        "model.layers.{i}.self_attn.k_proj",
        "model.layers.{i}.self_attn.v_proj",
        "model.layers.{i}.self_attn.o_proj",
        "model.layers.{i}.mlp.gate_proj",
        "model.layers.{i}.mlp.up_proj",
        "model.layers.{i}.mlp.down_proj",
    ],
}

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def linear_module_names(model_cfg: Mapping[str, Any]) -> list[str]:
    """The linear modules of the configured model, from its architecture and layer count."""
    arch = model_cfg["architecture"]
    if arch not in LINEAR_TEMPLATES:
        raise ValueError(
            f"model.architecture={arch!r} is unknown; known: {sorted(LINEAR_TEMPLATES)}"
        )
    layers = model_cfg["num_layers"]
    if not is_integer(layers) or layers < 1:
        raise ValueError(f"model.num_layers={layers!r} must be an integer >= 1")
    names = [t.format(i=i) for i in range(layers) for t in LINEAR_TEMPLATES[arch]]
    return names + ["lm_head"]


def load_model(model_cfg: Mapping[str, Any]):
    """Return ``(model, tokenizer)``: model in eval mode, float dtype from ``model.dtype``."""
    source = model_cfg["source"]
    dtype = DTYPES[model_cfg["dtype"]]
    if source == "tiny":
        from loralab.models.tiny import build_tiny_llama, build_tiny_tokenizer

        tiny = dict(model_cfg["tiny"])
        tokenizer = build_tiny_tokenizer(vocab_size=tiny.pop("vocab_size"))
        model = build_tiny_llama(tokenizer, **tiny).to(dtype)
    else:
        path = _pretrained_path(model_cfg)
        model, tokenizer = _from_pretrained(path, dtype, bool(model_cfg["trust_remote_code"]))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def _pretrained_path(model_cfg: Mapping[str, Any]) -> str:
    """Hub id or local folder: ``auto`` prefers a Hub copy already on disk, else the GGUF."""
    source, hub_id = model_cfg["source"], model_cfg["pretrained"]
    if source == "hub":
        return hub_id
    if source == "auto" and hub_id and _in_local_hub_cache(hub_id):
        return hub_id
    from loralab.models.embedded import prepared_model_dir

    return str(prepared_model_dir())


def _in_local_hub_cache(hub_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(hub_id, "config.json")
    return isinstance(found, str)


def _from_pretrained(path: str, dtype: torch.dtype, trust_remote_code: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("loading model %s", path)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype, trust_remote_code=trust_remote_code, use_safetensors=True
    )
    return model, tokenizer
