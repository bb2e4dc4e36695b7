"""An optimizer config (the Hydra group conf/optimizer/) as a checked `OptimizerConfig`.

The variant name is the single source of the three switches of docs/methods.md, "Optimizer
variants": `VARIANTS` maps each of the paper's eight names to (base, riemannian, gate_rescale).
The optimizer uses base and riemannian; gate_rescale is an adapter switch, set once when the
adapters are built (`loralab.cli.train` passes `OptimizerConfig.gate_rescale` into the
`AdapterConfig`). The configs therefore carry only the name; an explicit base / riemannian /
gate_rescale must agree with it.

Two more built-in names compare other LoRA optimizers on the same adapters (docs/methods.md,
"LoRA+ and LoRA-RITE"): `loraplus` and `lorarite`, base adamw (their family's lr, and the
router's rule), each with its own `rule` for the experts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from omegaconf import DictConfig, ListConfig, OmegaConf

from loralab.values import is_integer, is_number

BASES = ("sgd", "adamw")
# the experts' update rule where it is not the base rule applied tensor by tensor
# (docs/methods.md, "LoRA+ and LoRA-RITE"): LoRA+ (B at loraplus_ratio x lr), LoRA-RITE
RULES = ("loraplus", "lorarite")
SCHEDULER_NAMES = ("linear", "cosine", "constant")


class Variant(NamedTuple):
    base: str  # update rule of the expert group: sgd | adamw
    riemannian: bool  # precondition lora_A / lora_B gradients by the r x r Gram inverses
    gate_rescale: bool  # gradients into experts scaled by sqrt(gate), not gate (adapter forward)
    # a user's own preconditioner in place of the Gram inverses (riemannian variants only),
    # with the signature and contract of `loralab.optim.precondition`; None: the paper's
    preconditioner: Callable | None = None
    # the experts' rule, one of RULES (base adamw, not riemannian); None: the base rule
    rule: str | None = None


SWITCHES = ("base", "riemannian", "gate_rescale")  # what a config may state, if it agrees
# conf/blocks/optimizer.yaml's per-family lr table: `lr` picks the entry of the name's family
# (${optimizer_family:...}), so a variant's YAML never states its family
FAMILY_LR = "family_lr"


# the paper's SGD, gSGD, RSGD, gRSGD, AdamW, gAdamW, RAdamW, gRAdamW
VARIANTS = {
    "sgd": Variant("sgd", False, False),
    "gsgd": Variant("sgd", False, True),
    "rsgd": Variant("sgd", True, False),
    "grsgd": Variant("sgd", True, True),
    "adamw": Variant("adamw", False, False),
    "gadamw": Variant("adamw", False, True),
    "radamw": Variant("adamw", True, False),
    "gradamw": Variant("adamw", True, True),
}
OPTIMIZER_NAMES = tuple(VARIANTS)  # the paper's eight; VARIANTS also holds the rest
# the LoRA optimizers a comparison needs beside them (Hayou et al.'s LoRA+, Yen et al.'s LoRA-RITE)
VARIANTS |= {
    "loraplus": Variant("adamw", False, False, rule="loraplus"),
    "lorarite": Variant("adamw", False, False, rule="lorarite"),
}
BUILT_IN_NAMES = tuple(VARIANTS)  # registered variants come after these

# total_steps None: the run's max_steps. The paper's figure runs stop after 500 steps of a
# schedule laid out for 2222, so the schedule length can differ from the run length.
SCHEDULER_DEFAULTS = {"warmup_steps": 0, "final_lr_fraction": 0.0, "total_steps": None}
SCHEDULER_KEYS = ("name", *SCHEDULER_DEFAULTS)


def variant(name: str) -> Variant:
    """The switches an optimizer name stands for; ValueError naming the allowed names."""
    if name not in VARIANTS:
        raise ValueError(
            f"optimizer.name={name!r} is invalid: must be one of {', '.join(VARIANTS)} (a "
            "variant of your own: register it in a module listed in `plugins`, see "
            "docs/extending.md)"
        )
    return VARIANTS[name]


def register_variant(
    name: str,
    *,
    base: str,
    riemannian: bool,
    gate_rescale: bool,
    preconditioner: Callable | None = None,
    rule: str | None = None,
) -> Variant:
    """Make `optimizer.name=<name>` a variant of its own, e.g. a Riemannian one with another
    `preconditioner(layers, factor, delta, step) -> [gradient per layer]`, or LoRA+ / LoRA-RITE
    with gate rescaling (`rule="loraplus"`, base adamw, gate_rescale=True)."""
    if name in BUILT_IN_NAMES:
        raise ValueError(f"optimizer {name!r} is built in; register under another name")
    if base not in BASES:
        raise ValueError(f"base={base!r} is invalid: must be one of {', '.join(BASES)}")
    if preconditioner is not None and not riemannian:
        raise ValueError(f"variant {name!r}: a preconditioner needs riemannian=True")
    if rule is not None and (rule not in RULES or base != "adamw" or riemannian):
        raise ValueError(
            f"variant {name!r}: rule={rule!r} is invalid: must be null or one of "
            f"{', '.join(RULES)}, with base='adamw' and riemannian=False"
        )
    VARIANTS[name] = Variant(base, bool(riemannian), bool(gate_rescale), preconditioner, rule)
    return VARIANTS[name]


REQUIRED = dataclasses.MISSING


def _about(default, help: str):
    """A field with its ``--help`` text (`loralab.cli.help` lists it); REQUIRED: no default."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """optimizer: the update rule of the adapters' factors and of the MoE router.

    Every optimizer setting, checked. `name` and `lr` are required; the rest default to
    the values of conf/blocks/optimizer.yaml. router_lr None: same as lr; router_base
    None: same as base; router_clip None or 0: no clipping; scheduler None: constant lr.
    loraplus_ratio acts on `loraplus` only, escaped_mass and unmagnified_clip on `lorarite`
    only (docs/methods.md, "LoRA+ and LoRA-RITE")."""

    name: str = _about(REQUIRED, "the variant (conf/optimizer/): its update rule and switches")
    lr: float = _about(
        REQUIRED,
        "the experts' (lora_A, lora_B, mixer) lr; default: family_lr's entry for the family",
    )
    router_lr: float | None = _about(None, "the router weights' lr (paper: 3e-8); null = lr")
    router_base: str | None = _about(None, "sgd | adamw for the router group; null = base")
    router_clip: float | None = _about(
        1.0, "max total gradient norm of the router weights only; null or 0 = off"
    )
    delta: float = _about(1e-6, "Riemannian variants: added to the r x r Gram matrices")
    weight_decay: float = _about(0.0, "SGD: an L2 term in the gradient; AdamW: decoupled")
    momentum: float = _about(0.0, "SGD heavy-ball momentum (no effect on AdamW)")
    betas: tuple[float, float] = _about((0.9, 0.999), "AdamW's moment decay rates")
    eps: float = _about(1e-6, "AdamW's epsilon (the reference's value; transformers': 1e-8)")
    bias_correction: bool = _about(True, "AdamW's bias correction; false = the reference's rule")
    precondition_b_with_updated_a: bool = _about(
        False, "the reference's quirk: B's preconditioner from the already-updated A"
    )
    foreach: bool | None = _about(
        None, "multi-tensor updates; null = on GPUs only (the per-tensor loop is faster on CPU)"
    )
    loraplus_ratio: float = _about(16.0, "loraplus only: lora_B's lr / lora_A's (LoRA+'s lambda)")
    escaped_mass: bool = _about(
        True, "lorarite only: keep the second-moment mass lost to basis changes (rho)"
    )
    unmagnified_clip: float | None = _about(
        None, "lorarite only: clip the unmagnified gradients' total norm; null = off"
    )
    scheduler: Mapping[str, Any] | None = _about(
        None,
        "name (linear | cosine | constant), warmup_steps, final_lr_fraction (lr at the end / "
        "lr), total_steps (null = trainer.max_steps); null = constant lr",
    )

    @property
    def base(self) -> str:
        return VARIANTS[self.name].base

    @property
    def riemannian(self) -> bool:
        return VARIANTS[self.name].riemannian

    @property
    def gate_rescale(self) -> bool:
        return VARIANTS[self.name].gate_rescale

    @property
    def preconditioner(self) -> Callable | None:
        return VARIANTS[self.name].preconditioner

    @property
    def rule(self) -> str | None:
        return VARIANTS[self.name].rule

    @property
    def pairwise(self) -> bool:
        """Whether the experts' update needs each whole (A, B) pair at once (the Riemannian
        variants, LoRA-RITE): what a strategy that shards parameters cannot give."""
        return self.riemannian or self.rule == "lorarite"

    def optimizer_arguments(self) -> dict[str, Any]:
        """`AdapterOptimizer`'s keyword arguments: every setting but the name and the schedule
        (each passes under its own name), and the switches the name stands for."""
        settings = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name not in ("name", "scheduler")
        }
        switches = {"base": self.base, "riemannian": self.riemannian}
        return settings | switches | {"preconditioner": self.preconditioner, "rule": self.rule}

    @classmethod
    def from_mapping(cls, config: Mapping | OptimizerConfig) -> OptimizerConfig:
        """Check a config (a dict or an OmegaConf node). Raises ValueError naming the key, the
        value and what is allowed."""
        if isinstance(config, OptimizerConfig):
            return config
        values = _plain(config, "optimizer")
        fields = [f.name for f in dataclasses.fields(cls)]
        _check_family_lr(values.pop(FAMILY_LR, None))
        unknown = sorted(set(values) - set(fields) - set(SWITCHES))
        if unknown:
            raise ValueError(
                f"unknown optimizer key(s) {unknown}; allowed keys: {', '.join(fields)}"
            )
        name = values.get("name")
        switches = variant(name)
        if "lr" not in values:
            raise ValueError("optimizer.lr is required (the experts' learning rate, > 0)")
        stated = {key: values.pop(key) for key in SWITCHES if key in values}
        if any(stated[key] != getattr(switches, key) for key in stated):
            meant = {key: getattr(switches, key) for key in SWITCHES}
            said = meant | stated
            matching = [
                n
                for n, v in VARIANTS.items()
                if v[:3] == tuple(said.values()) and v.rule == switches.rule
            ]
            choose = f"optimizer={matching[0]}" if matching else "a variant by name"
            raise ValueError(
                f"optimizer.name={name!r} means {_switches(meant)}, but the config "
                f"sets {_switches(stated)}: the name alone chooses these (choose {choose})"
            )
        config = cls(**values)
        config._check()
        return config

    def _check(self) -> None:
        if self.router_base not in (None, *BASES):
            _bad("router_base", self.router_base, f"null or one of {', '.join(BASES)}")
        for key in ("bias_correction", "precondition_b_with_updated_a", "escaped_mass"):
            if not isinstance(getattr(self, key), bool):
                _bad(key, getattr(self, key), "true or false")
        if self.foreach is not None and not isinstance(self.foreach, bool):
            _bad("foreach", self.foreach, "null (GPU: true, CPU: false), true or false")
        for key, ok, allowed in (
            ("lr", lambda v: v > 0, "a finite number > 0"),
            ("delta", lambda v: v > 0, "a finite number > 0"),
            ("weight_decay", lambda v: v >= 0, "a finite number >= 0"),
            ("eps", lambda v: v > 0, "a finite number > 0"),
            ("momentum", lambda v: 0 <= v < 1, "a number in [0, 1)"),
            ("loraplus_ratio", lambda v: v > 0, "a finite number > 0 (LoRA+'s lambda, e.g. 16)"),
        ):
            _check_number(key, getattr(self, key), ok, allowed)
        _check_number(
            "router_lr",
            self.router_lr,
            lambda v: v >= 0,
            "null (= lr) or a finite number >= 0",
            True,
        )
        _check_number(
            "router_clip",
            self.router_clip,
            lambda v: v >= 0,
            "null (no clipping) or a finite number >= 0",
            True,
        )
        _check_number(
            "unmagnified_clip",
            self.unmagnified_clip,
            lambda v: v > 0,
            "null (no clipping) or a finite number > 0",
            True,
        )
        betas = self.betas
        if not (
            isinstance(betas, list | tuple)
            and len(betas) == 2
            and all(is_number(b) and 0 <= b < 1 for b in betas)
        ):
            _bad("betas", betas, "two numbers in [0, 1), e.g. [0.9, 0.999]")
        object.__setattr__(self, "betas", tuple(betas))
        if self.scheduler is not None:
            object.__setattr__(self, "scheduler", _checked_scheduler(self.scheduler))


def _checked_scheduler(config) -> dict:
    values = _plain(config, "optimizer.scheduler")
    unknown = sorted(set(values) - set(SCHEDULER_KEYS))
    if unknown:
        raise ValueError(
            f"unknown optimizer.scheduler key(s) {unknown}; allowed keys: "
            f"{', '.join(SCHEDULER_KEYS)}"
        )
    sched = SCHEDULER_DEFAULTS | values
    if sched.get("name") not in SCHEDULER_NAMES:
        _bad("scheduler.name", sched.get("name"), f"one of {', '.join(SCHEDULER_NAMES)}")
    warmup = sched["warmup_steps"]
    if not is_integer(warmup) or warmup < 0:
        _bad("scheduler.warmup_steps", warmup, "an integer >= 0")
    length = sched["total_steps"]
    if length is not None and (not is_integer(length) or length < 1):
        _bad("scheduler.total_steps", length, "null (= trainer.max_steps) or an integer >= 1")
    fraction = sched["final_lr_fraction"]
    _check_number("scheduler.final_lr_fraction", fraction, lambda v: 0 <= v <= 1, "in [0, 1]")
    return sched


def _check_family_lr(table) -> None:
    """``family_lr``, where given: a learning rate > 0 for each family (a typo'd family would
    otherwise surface only as an unresolvable ``lr``)."""
    if table is None:
        return
    if not isinstance(table, Mapping) or set(table) - set(BASES):
        _bad(FAMILY_LR, table, f"a mapping of {' and '.join(BASES)} to learning rates")
    for family, lr in table.items():
        _check_number(f"{FAMILY_LR}.{family}", lr, lambda v: v > 0, "a finite number > 0")


def _switches(values: Mapping) -> str:
    return ", ".join(f"{key}={values[key]}" for key in SWITCHES if key in values)


def _plain(config, where: str) -> dict:
    if isinstance(config, DictConfig):
        return OmegaConf.to_container(config, resolve=True)
    if not isinstance(config, Mapping):
        raise ValueError(f"{where} must be a mapping of keys to values, got {config!r}")
    return {  # a dict may still hold OmegaConf nodes (e.g. dict(cfg.optimizer))
        key: OmegaConf.to_container(value, resolve=True)
        if isinstance(value, DictConfig | ListConfig)
        else value
        for key, value in config.items()
    }


def _check_number(key: str, value, ok, allowed: str, nullable: bool = False) -> None:
    if value is None and nullable:
        return
    if not is_number(value) or not ok(value):
        _bad(key, value, allowed)


def _bad(key: str, value, allowed: str) -> None:
    raise ValueError(f"optimizer.{key}={value!r} is invalid: must be {allowed}")
