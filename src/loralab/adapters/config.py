"""What an adapter is, as one validated dataclass (the Hydra `adapter` group maps onto it).

Validation happens here, once, so a bad value fails before any model is loaded and the error
names the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

from loralab.values import is_integer, is_number

KINDS = ("lora", "moslora", "moe_lora")
# kind -> layer class for kinds a user registers (an `AdapterLinear` subclass that keeps its
# parameter contract, so that the optimizers, saving and loading work unchanged)
CUSTOM_KINDS: dict[str, type] = {}


def register_adapter_kind(name: str, layer_class: type) -> None:
    """Make `adapter.kind=<name>` wrap each target with `layer_class(base_linear, config)`."""
    from loralab.adapters.layer import AdapterLinear

    if not (isinstance(layer_class, type) and issubclass(layer_class, AdapterLinear)):
        raise TypeError(
            f"adapter kind {name!r}: {layer_class!r} must subclass loralab.adapters.AdapterLinear"
        )
    if name in KINDS:
        raise ValueError(f"adapter kind {name!r} is built in; register under another name")
    CUSTOM_KINDS[name] = layer_class


def _about(default, help: str):
    """A field with its ``--help`` text (`loralab.cli.help` lists it)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass
class AdapterConfig:
    """One adapter family member: LoRA, MoSLoRA (LoRA + r x r mixer) or MoE-LoRA.

    `mixer=None` means the kind's default (True for moslora, False otherwise) and is resolved to a
    bool on construction. `target_modules` is a preset (`attention`, `mlp`, `all`), a leaf name
    (`q_proj`) or a regex over full module names, or a list of those (see `resolve_targets`).
    """

    kind: str = _about(
        "lora", "lora | moslora (LoRA + an r x r mixer) | moe_lora (a routed mixture)"
    )
    rank: int = _about(8, "r: the rank of each (A, B) pair (of each expert for moe_lora)")
    alpha: float = _about(16.0, "the update is scaled by alpha / rank")
    dropout: float = _about(0.05, "dropout on the adapter's input x (one mask shared by experts)")
    num_experts: int = _about(1, "moe_lora: experts per adapted layer")
    top_k: int = _about(1, "moe_lora: experts each token's router keeps (<= num_experts)")
    mixer: bool | None = _about(
        None, "an r x r mixer between A and B (null: true for moslora, false otherwise)"
    )
    gate_rescale: bool = _about(
        False, "set by the optimizer's name (gsgd, grsgd, gadamw, gradamw), not in a config"
    )
    target_modules: str | list[str] = _about(
        "attention",
        "a preset (attention, mlp, all), a leaf name (q_proj), a regex over full module names, "
        "or a list of those",
    )
    load_balance_coef: float = _about(
        0.0, "moe_lora: weight of the router's load-balancing loss (0 = none)"
    )

    def __post_init__(self) -> None:
        if self.kind not in KINDS and self.kind not in CUSTOM_KINDS:
            _bad(
                "kind",
                self.kind,
                f"one of {', '.join([*KINDS, *CUSTOM_KINDS])} (a kind of your own: register it "
                "in a module listed in `plugins`, see docs/extending.md)",
            )
        for key in ("rank", "num_experts", "top_k"):  # before any comparison with a number
            value = getattr(self, key)
            if not is_integer(value):
                _bad(key, value, "an integer")
        for key in ("alpha", "dropout", "load_balance_coef"):
            value = getattr(self, key)
            if not is_number(value):
                _bad(key, value, "a finite number")
        for key in ("mixer", "gate_rescale"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, bool):
                _bad(key, value, "true or false" + (" (or null)" if key == "mixer" else ""))
        if self.mixer is None:
            self.mixer = self.kind == "moslora"
        if self.mixer and self.kind == "lora":
            _bad("mixer", self.mixer, "False for kind=lora (mixer on a kind that has none)")
        if self.rank < 1:
            _bad("rank", self.rank, ">= 1")
        if self.alpha <= 0:
            _bad("alpha", self.alpha, "> 0")
        if not 0 <= self.dropout < 1:
            _bad("dropout", self.dropout, "in [0, 1)")
        if self.num_experts < 1:
            _bad("num_experts", self.num_experts, ">= 1")
        if self.kind in ("lora", "moslora") and self.num_experts != 1:
            _bad("num_experts", self.num_experts, f"1 for kind={self.kind} (use kind=moe_lora)")
        if self.top_k < 1:
            _bad("top_k", self.top_k, ">= 1")
        if self.top_k > self.num_experts:
            raise ValueError(
                f"adapter.top_k={self.top_k} must be <= adapter.num_experts={self.num_experts}"
            )
        if self.load_balance_coef < 0:
            _bad("load_balance_coef", self.load_balance_coef, ">= 0")
        if isinstance(self.target_modules, str):
            self.target_modules = [self.target_modules]
        self.target_modules = [str(t) for t in self.target_modules]
        if not self.target_modules:
            _bad("target_modules", self.target_modules, "a non-empty preset, name or regex list")
        if self.num_experts == 1:
            for key in ("gate_rescale", "load_balance_coef"):
                if getattr(self, key):
                    warnings.warn(
                        f"adapter.{key}={getattr(self, key)} has no effect with "
                        "adapter.num_experts=1 (there is no router)",
                        stacklevel=3,
                    )

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    @classmethod
    def from_mapping(cls, values: Mapping) -> AdapterConfig:
        """Build from a dict or DictConfig; unknown keys are an error, not silently dropped."""
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise ValueError(
                f"unknown adapter key(s) {unknown}; allowed keys: {', '.join(allowed)}"
            )
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _bad(key: str, value, allowed: str) -> None:
    raise ValueError(f"adapter.{key}={value!r} is invalid: must be {allowed}")
