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
# model.quantization: none, or the reference's 4-bit base (NF4 with double quantisation,
# bitsandbytes; matmuls in model.compute_dtype): the adapters train over dequantised weights
QUANTIZATIONS = ("none", "nf4")


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
        quantization = _quantization_config(model_cfg)
        model, tokenizer = _from_pretrained(
            path, dtype, bool(model_cfg["trust_remote_code"]), quantization
        )
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


def _quantization_config(model_cfg: Mapping[str, Any]):
    """transformers' BitsAndBytesConfig for ``model.quantization=nf4`` (the reference's:
    4-bit NF4, double quantisation, ``model.compute_dtype`` matmuls), else None."""
    if model_cfg.get("quantization", "none") != "nf4":
        return None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=DTYPES[model_cfg.get("compute_dtype", "float16")],
    )


def _from_pretrained(path: str, dtype: torch.dtype, trust_remote_code: bool, quantization=None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("loading model %s%s", path, "" if quantization is None else " in 4-bit NF4")
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    placed = {} if quantization is None else {"device_map": {"": torch.cuda.current_device()}}
    model = AutoModelForCausalLM.from_pretrained(
        path,
        dtype=dtype,
        trust_remote_code=trust_remote_code,
        use_safetensors=True,
        quantization_config=quantization,
        **placed,
    )
    if quantization is not None:
        # as the reference: every weight left unquantised (norms, embeddings) in float32;
        # gradient checkpointing stays off (it changes memory, not the numbers)
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return model, tokenizer
