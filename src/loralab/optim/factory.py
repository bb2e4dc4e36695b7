"""From an `optimizer` config (the Hydra group loralab/conf/optimizer/) to an optimizer and scheduler.

`validate_optimizer_config` checks a config without a model (call it before loading one) and
returns it as a plain dict with defaults filled in; `build_optimizer` then builds an
`AdapterOptimizer` over the model's adapters, the LR scheduler, and sets every adapter's
`gate_rescale` switch: one config decides all three switches of SPEC §3.
"""

from collections.abc import Mapping

import torch
from omegaconf import DictConfig, OmegaConf

from loralab.adapters import adapter_modules, set_gate_rescale
from loralab.optim.optimizer import BASES, AdapterOptimizer
from loralab.optim.schedulers import SCHEDULER_NAMES, build_scheduler

# name: (base, riemannian, gate_rescale); the paper's SGD, gSGD, RSGD, gRSGD, AdamW, ...
VARIANTS = {
    "sgd": ("sgd", False, False),
    "gsgd": ("sgd", False, True),
    "rsgd": ("sgd", True, False),
    "grsgd": ("sgd", True, True),
    "adamw": ("adamw", False, False),
    "gadamw": ("adamw", False, True),
    "radamw": ("adamw", True, False),
    "gradamw": ("adamw", True, True),
}
OPTIMIZER_NAMES = tuple(VARIANTS)

# Used for keys a config leaves out; `name` and `lr` are required, base / riemannian /
# gate_rescale follow from the name. router_lr None: same as lr; router_optimizer None: same
# as base; router_clip None or 0: no clipping; scheduler None: constant lr, no scheduler.
DEFAULTS = {
    "router_lr": None,
    "router_optimizer": None,
    "delta": 1e-6,
    "weight_decay": 0.0,
    "betas": (0.9, 0.999),
    "eps": 1e-8,
    "momentum": 0.0,
    "router_clip": 1.0,
    "bias_correction": True,
    "precondition_b_with_updated_a": False,
    "foreach": None,
    "scheduler": None,
}
KEYS = ("name", "base", "riemannian", "gate_rescale", "lr", *DEFAULTS)
# total_steps None: the run's max_steps. The paper's figure runs stop after 500 steps of a
# schedule laid out for 2222, so the schedule length can differ from the run length.
SCHEDULER_DEFAULTS = {"warmup_steps": 0, "final_lr_fraction": 0.0, "total_steps": None}
SCHEDULER_KEYS = ("name", *SCHEDULER_DEFAULTS)


def validate_optimizer_config(config: Mapping) -> dict:
    """Check an optimizer config; return it as a plain dict with every key of `KEYS` set.

    Raises ValueError naming the key, the value and what is allowed.
    """
    values = _plain(config, "optimizer")
    _reject_unknown(values, KEYS, "optimizer")
    name = values.get("name")
    if name not in OPTIMIZER_NAMES:
        _bad("name", name, f"one of {', '.join(OPTIMIZER_NAMES)}")
    if "lr" not in values:
        raise ValueError("optimizer.lr is required (the experts' learning rate, > 0)")
    base, riemannian, gate_rescale = VARIANTS[name]
    cfg = {"base": base, "riemannian": riemannian, "gate_rescale": gate_rescale}
    cfg |= DEFAULTS | values

    if cfg["base"] not in BASES:
        _bad("base", cfg["base"], f"one of {', '.join(BASES)}")
    if cfg["router_optimizer"] not in (None, *BASES):
        _bad("router_optimizer", cfg["router_optimizer"], f"null or one of {', '.join(BASES)}")
    for key in ("riemannian", "gate_rescale", "bias_correction", "precondition_b_with_updated_a"):
        if not isinstance(cfg[key], bool):
            _bad(key, cfg[key], "true or false")
    if cfg["foreach"] is not None and not isinstance(cfg["foreach"], bool):
        _bad("foreach", cfg["foreach"], "null (GPU: true, CPU: false), true or false")
    for key, ok, allowed in (
        ("lr", lambda v: v > 0, "a number > 0"),
        ("delta", lambda v: v > 0, "a number > 0"),
        ("weight_decay", lambda v: v >= 0, "a number >= 0"),
        ("eps", lambda v: v > 0, "a number > 0"),
        ("momentum", lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ):
        _check_number(key, cfg[key], ok, allowed)
    _check_number(
        "router_lr", cfg["router_lr"], lambda v: v >= 0, "null (same as lr) or >= 0", True
    )
    _check_number(
        "router_clip", cfg["router_clip"], lambda v: v >= 0, "null (no clipping) or >= 0", True
    )
    betas = cfg["betas"]
    if not (
        isinstance(betas, list | tuple)
        and len(betas) == 2
        and all(_is_number(b) and 0 <= b < 1 for b in betas)
    ):
        _bad("betas", betas, "two numbers in [0, 1), e.g. [0.9, 0.999]")
    cfg["betas"] = tuple(betas)

    switches = (cfg["base"], cfg["riemannian"], cfg["gate_rescale"])
    if switches != VARIANTS[name]:
        matching = next(n for n, s in VARIANTS.items() if s == switches)
        raise ValueError(
            f"optimizer.name={name!r} means base={base}, riemannian={riemannian}, "
            f"gate_rescale={gate_rescale}, but the config sets base={switches[0]}, "
            f"riemannian={switches[1]}, gate_rescale={switches[2]}: that is "
            f"optimizer={matching!r} (choose the optimizer by name, e.g. optimizer={matching})"
        )
    if cfg["scheduler"] is not None:
        cfg["scheduler"] = _validate_scheduler(cfg["scheduler"])
    return cfg


def build_optimizer(
    model: torch.nn.Module, optimizer_config: Mapping, total_steps: int | None = None
) -> tuple[AdapterOptimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """An `AdapterOptimizer` over the adapters of `model` and its scheduler (None if the config
    has none). `total_steps` (the run's max_steps) is needed by the linear and cosine schedules.
    Also sets `gate_rescale` on every adapter layer from the config."""
    cfg = validate_optimizer_config(optimizer_config)
    layers = adapter_modules(model)
    if not layers:
        raise ValueError("the model has no adapter layers: call loralab.adapters.inject_adapters")
    if cfg["riemannian"] and not any(
        layer.lora_A.requires_grad or layer.lora_B.requires_grad for _, layer in layers
    ):
        raise ValueError(
            f"optimizer {cfg['name']!r} is Riemannian but the model has no trainable adapter "
            "(lora_A, lora_B) pair to precondition"
        )
    optimizer = AdapterOptimizer(
        layers,
        lr=cfg["lr"],
        base=cfg["base"],
        riemannian=cfg["riemannian"],
        delta=cfg["delta"],
        weight_decay=cfg["weight_decay"],
        momentum=cfg["momentum"],
        betas=cfg["betas"],
        eps=cfg["eps"],
        bias_correction=cfg["bias_correction"],
        precondition_b_with_updated_a=cfg["precondition_b_with_updated_a"],
        router_lr=cfg["router_lr"],
        router_base=cfg["router_optimizer"],
        router_clip=cfg["router_clip"],
        foreach=cfg["foreach"],
    )
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    stray = [
        n for n, p in model.named_parameters() if p.requires_grad and id(p) not in in_optimizer
    ]
    if stray:
        raise ValueError(
            f"{len(stray)} trainable parameter(s) outside the adapters would never be updated "
            f"(e.g. {', '.join(stray[:3])}); freeze them (inject_adapters freezes the base model)"
        )
    set_gate_rescale(model, cfg["gate_rescale"])
    scheduler = None
    if cfg["scheduler"] is not None:
        sched = dict(cfg["scheduler"])
        length = sched.pop("total_steps") or total_steps
        scheduler = build_scheduler(optimizer, total_steps=length, **sched)
    return optimizer, scheduler


def _validate_scheduler(config) -> dict:
    values = _plain(config, "optimizer.scheduler")
    _reject_unknown(values, SCHEDULER_KEYS, "optimizer.scheduler")
    sched = SCHEDULER_DEFAULTS | values
    if sched.get("name") not in SCHEDULER_NAMES:
        _bad("scheduler.name", sched.get("name"), f"one of {', '.join(SCHEDULER_NAMES)}")
    warmup = sched["warmup_steps"]
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        _bad("scheduler.warmup_steps", warmup, "an integer >= 0")
    length = sched["total_steps"]
    if length is not None and (
        isinstance(length, bool) or not isinstance(length, int) or length < 1
    ):
        _bad("scheduler.total_steps", length, "null (= trainer.max_steps) or an integer >= 1")
    fraction = sched["final_lr_fraction"]
    _check_number("scheduler.final_lr_fraction", fraction, lambda v: 0 <= v <= 1, "in [0, 1]")
    return sched


def _plain(config, where: str) -> dict:
    if isinstance(config, DictConfig):
        return OmegaConf.to_container(config, resolve=True)
    if not isinstance(config, Mapping):
        raise ValueError(f"{where} must be a mapping of keys to values, got {config!r}")
    return dict(config)


def _reject_unknown(values: dict, allowed: tuple, where: str) -> None:
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {where} key(s) {unknown}; allowed keys: {', '.join(allowed)}")


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_number(key: str, value, ok, allowed: str, nullable: bool = False) -> None:
    if value is None and nullable:
        return
    if not _is_number(value) or not ok(value):
        _bad(key, value, allowed)


def _bad(key: str, value, allowed: str) -> None:
    raise ValueError(f"optimizer.{key}={value!r} is invalid: must be {allowed}")
