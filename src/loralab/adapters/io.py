"""Save / load our adapters, export LoRA and MoSLoRA to PEFT, merge them into the base weights.

Only safetensors and JSON are written; nothing is pickled. Two folder formats (docs/extending.md,
"Exporting adapters"):

- ``peft`` (format_version 2; LoRA and MoSLoRA, what a run's ``adapter/`` holds): a PEFT LoRA
  folder as it stands (``adapter_config.json`` with ``peft_type``, ``adapter_model.safetensors``
  with the MoSLoRA mixer folded into B, B' = B M) that also carries loralab's own files:
  loralab's AdapterConfig keys in the same ``adapter_config.json`` and the exact tensors in
  ``adapter.safetensors`` (the mixer kept), so loralab reads it back exactly.
- ``loralab`` (format_version 1; MoE-LoRA, which PEFT cannot express, and any kind on request):
  ``adapter_config.json`` with loralab's keys only and ``adapter.safetensors``.

Our tensors are keyed `<module name>.<lora_A|lora_B|mixer|router.weight>`, so a fresh base
model plus the folder gives back the exact same outputs. `load_adapter` reads both formats, and
a PEFT LoRA folder without loralab's files (its weights loaded as a LoRA; a folded MoSLoRA gives
the same outputs without a separate mixer).
"""

import dataclasses
import json
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from loralab.adapters.config import AdapterConfig
from loralab.adapters.inject import adapter_modules, inject_adapters, resolve_targets
from loralab.adapters.layer import AdapterLinear

FORMAT_VERSION = 1  # loralab's own folder: loralab's keys and adapter.safetensors only
PEFT_FORMAT_VERSION = 2  # a PEFT folder that also carries loralab's keys and tensors
CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter.safetensors"
PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"
FORMATS = ("peft", "loralab")
PEFT_KINDS = ("lora", "moslora")  # the kinds that are a fixed low-rank update per layer
PEFT_PREFIX = "base_model.model."


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every adapter tensor (not the frozen base) keyed by its full name in `model`."""
    return {
        f"{name}.{key}": tensor
        for name, layer in adapter_modules(model)
        for key, tensor in layer.state_dict().items()
        if not key.startswith("base.")
    }


def default_format(kind: str) -> str:
    """``peft`` for LoRA and MoSLoRA, ``loralab`` for every other kind."""
    return "peft" if kind in PEFT_KINDS else "loralab"


def check_peft_kind(kind: str) -> None:
    """Refuse, naming the kind, an adapter that PEFT cannot express."""
    if kind == "moe_lora":
        raise ValueError(
            "MoE-LoRA has no PEFT equivalent: its router picks experts per token, so it is no "
            "fixed low-rank update; keep loralab's own format (format='loralab')"
        )
    if kind not in PEFT_KINDS:
        raise ValueError(
            f"adapter kind {kind!r} has no PEFT equivalent (only lora and moslora do); keep "
            "loralab's own format (format='loralab')"
        )


def save_adapter(
    model: nn.Module,
    directory: str | Path,
    config: AdapterConfig,
    base_model_name_or_path: str | None = None,
    format: str | None = None,
) -> None:
    """Write the adapters of `model` into `directory` in `format` (default: ``peft`` for LoRA
    and MoSLoRA, ``loralab`` otherwise; see the module docstring).

    `base_model_name_or_path` (PEFT's key): the Hub id or folder the base model was loaded
    from; default: the one the model records (`model.name_or_path`), None if it has none."""
    fmt = default_format(config.kind) if format is None else format
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r} is unknown: use one of {', '.join(FORMATS)}")
    if fmt == "peft":
        check_peft_kind(config.kind)
    directory = Path(directory)
    tensors = {k: v.detach().cpu().contiguous() for k, v in adapter_state_dict(model).items()}
    if not tensors:
        raise ValueError("model has no adapters to save")
    meta = {"format_version": FORMAT_VERSION} | config.to_dict()
    if fmt == "peft":
        if base_model_name_or_path is None:
            base_model_name_or_path = getattr(model, "name_or_path", None) or None
        peft_tensors, peft_config = _peft_files(model, config.alpha, base_model_name_or_path)
        # one target list both read: the full names of the wrapped modules
        meta = meta | {"format_version": PEFT_FORMAT_VERSION} | peft_config
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, directory / WEIGHTS_FILE)
    if fmt == "peft":
        save_file(peft_tensors, directory / PEFT_WEIGHTS_FILE)
    else:  # a PEFT file left from an earlier save would contradict the new config
        (directory / PEFT_WEIGHTS_FILE).unlink(missing_ok=True)
    (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")


class AdapterFileError(ValueError):
    """An adapter folder that cannot be loaded as it is: the message names the file and why."""


def load_adapter(model: nn.Module, directory: str | Path) -> list[AdapterLinear]:
    """Inject the saved config into a fresh base `model` and load the saved weights (strict).

    Reads a ``loralab`` folder (format_version 1), a ``peft`` folder (format_version 2: the
    exact tensors of adapter.safetensors), and a PEFT LoRA folder without loralab's tensors
    (adapter_model.safetensors as a LoRA; a MoSLoRA's folded B M stands for B and M, which
    gives the same outputs).

    Checked before anything is allocated: the config (its target modules against this model),
    and every tensor's shape in the file's header against the shape the config gives that layer
    (a config claiming rank 1e12 is refused, not allocated). Checked after reading: every weight
    is a finite float (a NaN adapter would score every question with its first option,
    silently)."""
    directory = Path(directory)
    config_file = directory / CONFIG_FILE
    try:
        meta = json.loads(config_file.read_text())
        if not isinstance(meta, dict):
            raise ValueError(
                f"holds a JSON {type(meta).__name__}, expected an object of adapter settings "
                "(as save_adapter writes it)"
            )
        config, from_peft = _read_config(meta, directory)
        linear_names = [name for name, mod in model.named_modules() if isinstance(mod, nn.Linear)]
        resolve_targets(config.target_modules, linear_names)
    except (OSError, ValueError, TypeError, AttributeError) as err:
        raise AdapterFileError(f"{config_file}: {err}") from None
    weights_file = directory / (PEFT_WEIGHTS_FILE if from_peft else WEIGHTS_FILE)
    shapes = _header_shapes(weights_file)
    if from_peft:
        shapes = {_from_peft_key(key): (1, *shape) for key, shape in shapes.items()}
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
    if from_peft:
        tensors = {_from_peft_key(key): tensor[None] for key, tensor in tensors.items()}
    load_adapter_tensors(model, tensors, weights_file)
    return layers


def load_adapter_tensors(model: nn.Module, tensors: dict[str, torch.Tensor], source) -> None:
    """Load adapter `tensors` (our keys) into the adapters of `model`: the keys must be exactly
    the model's adapter keys, every value a finite float. `source` names them in errors."""
    expected = adapter_state_dict(model)
    missing, unexpected = sorted(expected.keys() - tensors), sorted(tensors.keys() - expected)
    if missing or unexpected:
        where = source.parent if isinstance(source, Path) else source
        raise AdapterFileError(
            f"adapter in {where} does not fit this model: missing keys {missing}, "
            f"unexpected keys {unexpected}"
        )
    integral = [key for key, tensor in tensors.items() if not tensor.is_floating_point()]
    if integral:
        raise AdapterFileError(
            f"{source}: {integral[0]} holds {tensors[integral[0]].dtype} values, not "
            "floats: adapter weights are float32, bfloat16 or float16"
        )
    wrong = [key for key, tensor in tensors.items() if tensor.shape != expected[key].shape]
    if wrong:
        key = wrong[0]
        raise AdapterFileError(
            f"{source}: {key} has shape {list(tensors[key].shape)}, but the adapter config and "
            f"this model give {list(expected[key].shape)}"
        )
    broken = [key for key, tensor in tensors.items() if not torch.isfinite(tensor).all()]
    if broken:
        raise AdapterFileError(
            f"{source}: non-finite weights (NaN or inf) in {len(broken)} tensor(s), e.g. "
            f"{', '.join(broken[:3])}: the run that saved it diverged; use an earlier checkpoint"
        )
    model.load_state_dict(tensors, strict=False)


def _read_config(meta: dict, directory: Path) -> tuple[AdapterConfig, bool]:
    """The AdapterConfig an adapter_config.json gives, and whether the weights to read are
    PEFT's (adapter_model.safetensors) rather than loralab's (adapter.safetensors)."""
    meta = dict(meta)
    version = meta.pop("format_version", None)
    if "peft_type" not in meta:
        if version != FORMAT_VERSION:
            raise ValueError(
                f"format_version {version!r}, expected {FORMAT_VERSION} (loralab's own format) "
                f"or a PEFT adapter_config.json (with peft_type)"
            )
        return AdapterConfig.from_mapping(meta), False
    if version is None:  # a PEFT folder that loralab did not write
        return _config_from_peft(meta), True
    if version != PEFT_FORMAT_VERSION:
        raise ValueError(
            f"format_version {version!r} beside peft_type, expected {PEFT_FORMAT_VERSION}"
        )
    names = {field.name for field in dataclasses.fields(AdapterConfig)}
    config = AdapterConfig.from_mapping({k: v for k, v in meta.items() if k in names})
    for ours, theirs, value in (
        ("rank", "r", config.rank),
        ("alpha", "lora_alpha", config.alpha),
    ):
        if meta.get(theirs) != value:
            raise ValueError(
                f"{ours}={value!r} (loralab's) and {theirs}={meta.get(theirs)!r} (PEFT's) "
                "disagree: the file was edited; set both to the value the adapter was trained with"
            )
    if (directory / WEIGHTS_FILE).is_file():
        return config, False
    # PEFT's tensors alone: a MoSLoRA's mixer is folded into B there
    return dataclasses.replace(config, mixer=False), True


def _config_from_peft(meta: dict) -> AdapterConfig:
    """A LoRA AdapterConfig for a PEFT LoRA config; PEFT options loralab's layer does not
    compute are refused by name."""
    if meta.get("peft_type") != "LORA":
        raise ValueError(
            f"peft_type {meta.get('peft_type')!r}: loralab reads PEFT LoRA adapters only (LORA)"
        )
    for key, plain in (
        ("use_dora", False),
        ("use_rslora", False),
        ("fan_in_fan_out", False),
        ("bias", "none"),
        ("rank_pattern", {}),
        ("alpha_pattern", {}),
        ("modules_to_save", None),
        ("layers_to_transform", None),
    ):
        if meta.get(key) and meta[key] != plain:  # absent, empty or PEFT's default: fine
            raise ValueError(
                f"{key}={meta[key]!r}: loralab's adapter layer computes plain LoRA only "
                f"({key}={plain!r})"
            )
    targets = meta.get("target_modules")
    if isinstance(targets, list):  # PEFT: a name or a suffix of one; ours: a name or a leaf
        targets = [t if "." not in t else rf"(?:.*\.)?{re.escape(t)}" for t in targets]
    for key in ("r", "lora_alpha"):
        if key not in meta:
            raise ValueError(f"a PEFT LoRA config without {key}")
    return AdapterConfig(
        kind="lora",
        rank=meta["r"],
        alpha=meta["lora_alpha"],
        dropout=meta.get("lora_dropout") or 0.0,
        target_modules=targets,
    )


def _from_peft_key(key: str) -> str:
    """``base_model.model.<module>.lora_A.weight`` -> ``<module>.lora_A`` (other keys as they
    are: the strict key check names them)."""
    if key.startswith(PEFT_PREFIX) and key.endswith((".lora_A.weight", ".lora_B.weight")):
        return key.removeprefix(PEFT_PREFIX).removesuffix(".weight")
    return key


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
    """Write a PEFT LoRA (`PeftModel.from_pretrained(base, directory)` loads it), PEFT's files
    only (`save_adapter` writes them together with loralab's).

    A MoSLoRA mixer is folded into B (B' = B M), which is exact. MoE-LoRA is refused.
    """
    tensors, config = _peft_files(model, None, base_model_name_or_path, task_type)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, directory / PEFT_WEIGHTS_FILE)
    (directory / PEFT_CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")


def _peft_files(
    model: nn.Module,
    alpha: float | None,
    base_model_name_or_path: str | None,
    task_type: str = "CAUSAL_LM",
) -> tuple[dict[str, torch.Tensor], dict]:
    """PEFT's tensors (mixer folded) and adapter_config.json for the adapters of `model`."""
    layers = _fixed_low_rank_layers(model, "exported as a PEFT LoRA")
    first = layers[0][1]
    tensors = {}
    for name, layer in layers:
        a, b = _folded_pair(layer)
        tensors[f"{PEFT_PREFIX}{name}.lora_A.weight"] = a.detach().cpu().contiguous()
        tensors[f"{PEFT_PREFIX}{name}.lora_B.weight"] = b.detach().cpu().contiguous()
    config = {
        "peft_type": "LORA",
        "task_type": task_type,
        "base_model_name_or_path": base_model_name_or_path,
        "r": first.rank,
        "lora_alpha": first.scale * first.rank if alpha is None else alpha,
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
    return tensors, config


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
