"""Save / load our adapters, export LoRA and MoSLoRA to PEFT, merge them into the base weights.

Only safetensors and JSON are written; nothing is pickled. Our own format keeps every adapter
tensor under `<module name>.<lora_A|lora_B|mixer|router.weight>` next to the AdapterConfig, so a
fresh base model plus the folder gives back the exact same outputs.
"""

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from loralab.adapters.config import AdapterConfig
from loralab.adapters.inject import adapter_modules, inject_adapters, resolve_targets
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


class AdapterFileError(ValueError):
    """An adapter folder that cannot be loaded as it is: the message names the file and why."""


def load_adapter(model: nn.Module, directory: str | Path) -> list[AdapterLinear]:
    """Inject the saved config into a fresh base `model` and load the saved weights (strict).

    Checked before anything is allocated: the config (its target modules against this model),
    and every tensor's shape in the file's header against the shape the config gives that layer
    (a config claiming rank 1e12 is refused, not allocated). Checked after reading: every weight
    is a finite float (a NaN adapter would score every question with its first option,
    silently)."""
    directory = Path(directory)
    config_file, weights_file = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    try:
        meta = json.loads(config_file.read_text())
        if not isinstance(meta, dict):
            raise ValueError(
                f"holds a JSON {type(meta).__name__}, expected an object of adapter settings "
                "(as save_adapter writes it)"
            )
        version = meta.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise ValueError(f"format_version {version!r}, expected {FORMAT_VERSION}")
        config = AdapterConfig.from_mapping(meta)
        linear_names = [name for name, mod in model.named_modules() if isinstance(mod, nn.Linear)]
        resolve_targets(config.target_modules, linear_names)
    except (OSError, ValueError, TypeError, AttributeError) as err:
        raise AdapterFileError(f"{config_file}: {err}") from None
    shapes = _header_shapes(weights_file)
    for key, shape in shapes.items():
        expected = _expected_shape(model, config, key)
        if expected is not None and shape != expected:
            raise AdapterFileError(
                f"{weights_file}: {key} has shape {list(shape)}, but {config_file.name} and "
                f"this model give {list(expected)}: the files do not belong together, or the "
                "adapter was trained on another model"
            )
    layers = inject_adapters(model, config)
    tensors = load_file(weights_file)
    expected = adapter_state_dict(model)
    missing, unexpected = sorted(expected.keys() - tensors), sorted(tensors.keys() - expected)
    if missing or unexpected:
        raise AdapterFileError(
            f"adapter in {directory} does not fit this model: missing keys {missing}, "
            f"unexpected keys {unexpected}"
        )
    integral = [key for key, tensor in tensors.items() if not tensor.is_floating_point()]
    if integral:
        raise AdapterFileError(
            f"{weights_file}: {integral[0]} holds {tensors[integral[0]].dtype} values, not "
            "floats: adapter weights are float32, bfloat16 or float16"
        )
    broken = [key for key, tensor in tensors.items() if not torch.isfinite(tensor).all()]
    if broken:
        raise AdapterFileError(
            f"{weights_file}: non-finite weights (NaN or inf) in {len(broken)} tensor(s), e.g. "
            f"{', '.join(broken[:3])}: the run that saved it diverged; use an earlier checkpoint"
        )
    model.load_state_dict(tensors, strict=False)
    return layers


def _header_shapes(weights_file: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes from the safetensors header alone (nothing is read or allocated)."""
    try:
        with safe_open(weights_file, framework="pt") as handle:
            keys = handle.keys()  # a safe_open handle is not iterable
            return {key: tuple(handle.get_slice(key).get_shape()) for key in keys}
    except Exception as err:  # safetensors raises its own types for a damaged header
        raise AdapterFileError(f"{weights_file}: not a readable safetensors file ({err})") from None


def _expected_shape(model: nn.Module, config: AdapterConfig, key: str) -> tuple[int, ...] | None:
    """The shape `config` gives tensor `key` on its layer of `model` (None: not ours to judge;
    the strict key check after injection reports it)."""
    module_name, _, tensor = key.rpartition(".")
    if tensor == "weight" and module_name.endswith(".router"):
        module_name, tensor = module_name.removesuffix(".router"), "router.weight"
    try:
        linear = model.get_submodule(module_name)
    except AttributeError:
        return None
    if not isinstance(linear, nn.Linear):
        return None
    experts, rank = config.num_experts, config.rank
    return {
        "lora_A": (experts, rank, linear.in_features),
        "lora_B": (experts, linear.out_features, rank),
        "mixer": (experts, rank, rank),
        "router.weight": (experts, linear.in_features),
    }.get(tensor)


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
