"""Put adapters into any torch model (HF or not) by module name, and find them again.

`resolve_targets` works on names alone so a config can be checked before any model is loaded.
"""

import re

from torch import nn

from loralab.adapters.config import CUSTOM_KINDS, AdapterConfig
from loralab.adapters.layer import AdapterLinear

PRESETS = {
    "attention": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "mlp": ("gate_proj", "up_proj", "down_proj"),
    "all": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
}
OUTPUT_HEAD = "lm_head"


def resolve_targets(target_modules: str | list[str], module_names: list[str]) -> list[str]:
    """The names in `module_names` (full dotted names of linear layers) that the entries select.

    An entry is a preset (`attention`, `mlp`, `all`), a leaf name (`q_proj` selects every
    `*.q_proj`) or a regex matched with re.fullmatch against the full dotted name. `lm_head` is
    selected only when an entry is literally `lm_head`. An entry that selects nothing is an error.
    """
    entries = [target_modules] if isinstance(target_modules, str) else list(target_modules)
    selected = set()
    for entry in entries:
        matched = {name for name in module_names if _matches(entry, name)}
        if not matched:
            leaves = sorted({name.rsplit(".", 1)[-1] for name in module_names})
            raise ValueError(
                f"adapter.target_modules entry {entry!r} matches no linear module; "
                f"presets: {', '.join(PRESETS)}; linear modules of this model: {', '.join(leaves)}"
            )
        selected |= matched
    return [name for name in module_names if name in selected]


def _matches(entry: str, name: str) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    if entry in (name, leaf):
        return True
    if leaf == OUTPUT_HEAD:
        return False
    if entry in PRESETS:
        return leaf in PRESETS[entry]
    try:
        return re.fullmatch(entry, name) is not None
    except re.error as err:
        raise ValueError(
            f"adapter.target_modules entry {entry!r} is not a valid regex: {err}"
        ) from err


def inject_adapters(model: nn.Module, config: AdapterConfig) -> list[AdapterLinear]:
    """Freeze every parameter of `model`, then replace the targeted nn.Linear layers in place."""
    if adapter_modules(model):
        raise ValueError("model already has adapters; load a fresh base model to inject again")
    model.requires_grad_(False)
    linear_names = [name for name, mod in model.named_modules() if isinstance(mod, nn.Linear)]
    wrapped = []
    for name in resolve_targets(config.target_modules, linear_names):
        parent_name, _, leaf = name.rpartition(".")
        layer_class = CUSTOM_KINDS.get(config.kind, AdapterLinear)
        layer = layer_class(model.get_submodule(name), config)
        setattr(model.get_submodule(parent_name), leaf, layer)
        wrapped.append(layer)
    return wrapped


def adapter_modules(model: nn.Module) -> list[tuple[str, AdapterLinear]]:
    return [(name, mod) for name, mod in model.named_modules() if isinstance(mod, AdapterLinear)]


def set_gate_rescale(model: nn.Module, on: bool) -> None:
    for _, layer in adapter_modules(model):
        layer.gate_rescale = on
