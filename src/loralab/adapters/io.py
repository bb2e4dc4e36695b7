"""Save / load our adapters, export LoRA and MoSLoRA to PEFT, merge them into the base weights.

Only safetensors and JSON are written; nothing is pickled. Our own format keeps every adapter
tensor under `<module name>.<lora_A|lora_B|mixer|router.weight>` next to the AdapterConfig, so a
fresh base model plus the folder gives back the exact same outputs.
"""

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from loralab.adapters.config import AdapterConfig
from loralab.adapters.inject import adapter_modules, inject_adapters
from loralab.adapters.layer import AdapterLinear

FORMAT_VERSION = 1
CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter.safetensors"
PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every adapter tensor (not the frozen base) keyed by its full name in `model`."""
    return {
        f"{name}.{key}": tensor
        for name, layer in adapter_modules(model)
        for key, tensor in layer.state_dict().items()
        if not key.startswith("base.")
    }


def save_adapter(model: nn.Module, directory: str | Path, config: AdapterConfig) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in adapter_state_dict(model).items()}
    if not tensors:
        raise ValueError("model has no adapters to save")
    save_file(tensors, directory / WEIGHTS_FILE)
    meta = config.to_dict() | {"format_version": FORMAT_VERSION}
    (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def load_adapter(model: nn.Module, directory: str | Path) -> list[AdapterLinear]:
    """Inject the saved config into a fresh base `model` and load the saved weights (strict)."""
    directory = Path(directory)
    meta = json.loads((directory / CONFIG_FILE).read_text())
    version = meta.pop("format_version", None)
    if version != FORMAT_VERSION:
        raise ValueError(f"{directory / CONFIG_FILE}: format_version {version}, expected 1")
    layers = inject_adapters(model, AdapterConfig.from_mapping(meta))
    tensors = load_file(directory / WEIGHTS_FILE)
    expected = adapter_state_dict(model)
    missing, unexpected = sorted(expected.keys() - tensors), sorted(tensors.keys() - expected)
    if missing or unexpected:
        raise ValueError(
            f"adapter in {directory} does not fit this model: missing keys {missing}, "
            f"unexpected keys {unexpected}"
        )
    model.load_state_dict(tensors, strict=False)
    return layers


def export_peft(
    model: nn.Module,
    directory: str | Path,
    base_model_name_or_path: str | None = None,
    task_type: str = "CAUSAL_LM",
) -> None:
    """Write a PEFT LoRA (`PeftModel.from_pretrained(base, directory)` loads it).

    A MoSLoRA mixer is folded into B (B' = B M), which is exact. MoE-LoRA is refused.
    """
    layers = _fixed_low_rank_layers(model, "exported as a PEFT LoRA")
    first = layers[0][1]
    tensors = {}
    for name, layer in layers:
        a, b = _folded_pair(layer)
        tensors[f"base_model.model.{name}.lora_A.weight"] = a.detach().cpu().contiguous()
        tensors[f"base_model.model.{name}.lora_B.weight"] = b.detach().cpu().contiguous()
    config = {
        "peft_type": "LORA",
        "task_type": task_type,
        "base_model_name_or_path": base_model_name_or_path,
        "r": first.rank,
        "lora_alpha": first.scale * first.rank,
        "lora_dropout": first.drop.p if isinstance(first.drop, nn.Dropout) else 0.0,
        "target_modules": [name for name, _ in layers],
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "init_lora_weights": True,
        "modules_to_save": None,
        "inference_mode": True,
    }
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, directory / PEFT_WEIGHTS_FILE)
    (directory / PEFT_CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")


def merge_adapters(model: nn.Module) -> list[str]:
    """Fold each LoRA / MoSLoRA into its base weight (W0 + s B M A) and put the plain nn.Linear
    back in its place. Returns the merged module names. MoE-LoRA is refused."""
    layers = _fixed_low_rank_layers(model, "merged into the base weights")
    with torch.no_grad():
        for name, layer in layers:
            a, b = _folded_pair(layer)
            layer.base.weight += (layer.scale * b @ a).to(layer.base.weight.dtype)
            parent, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(parent), leaf, layer.base)
    return [name for name, _ in layers]


def _folded_pair(layer: AdapterLinear) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B M) of a single-expert layer: the mixer folded into B."""
    b = layer.lora_B[0] if layer.mixer is None else layer.lora_B[0] @ layer.mixer[0]
    return layer.lora_A[0], b


def _fixed_low_rank_layers(model: nn.Module, action: str) -> list[tuple[str, AdapterLinear]]:
    layers = adapter_modules(model)
    if not layers:
        raise ValueError(f"model has no adapters to be {action}")
    for name, layer in layers:
        if layer.num_experts > 1:
            raise ValueError(
                f"MoE-LoRA layer {name} (num_experts={layer.num_experts}) cannot be {action}: "
                "its gate depends on the input, so it is no fixed low-rank update. "
                "Keep it as an adapter and use save_adapter / load_adapter instead."
            )
    return layers
