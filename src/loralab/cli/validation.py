"""Fail fast: check the whole composed config before any model or data loads, for both entry
points (`loralab-train` and `loralab-eval`).

Each group's own keys are checked by its settings class (`loralab.cli.settings`: model, data,
evaluation, checkpoint, trainer, logger, debug and the commands' top-level keys), the adapter and
optimizer by `AdapterConfig` / `OptimizerConfig`, a task by its own checks; this module adds the
checks across groups. Every problem is reported at once, each naming the key, the bad value and
what is allowed; the entry points turn a ``ConfigError`` into exit code 2.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from loralab.cli.settings import EVAL_GROUPS, TRAIN_GROUPS, settings_errors
from loralab.values import is_integer

SHARDING_STRATEGIES = ("fsdp", "deepspeed")


class ConfigError(ValueError):
    """One or more invalid config values (the message lists them all)."""


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def validate_config(cfg: Mapping[str, Any], entry: str = "train") -> None:
    """Raise ``ConfigError`` listing every invalid value of a composed config: `entry` "train"
    (loralab-train's) or "eval" (loralab-eval's). First imports the config's `plugins`, which
    may register the tasks, optimizer variants or adapter kinds the config names."""
    from loralab.cli.plugins import PluginError, import_plugins
    from loralab.tasks import task_config_errors

    errors: list[str] = []
    plugins = cfg.get("plugins")
    try:
        import_plugins(_plain(plugins))
    except PluginError as err:
        errors.append(str(err))
    plain, unresolvable = _resolved(cfg)
    if unresolvable:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join([*errors, unresolvable]))
    groups = TRAIN_GROUPS if entry == "train" else EVAL_GROUPS
    errors += settings_errors(plain, groups)
    errors += task_config_errors(plain["task"])
    if entry == "train":
        errors += _train_errors(plain, model_ok=not any(e.startswith("model.") for e in errors))
    if errors:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(errors))


def _resolved(cfg) -> tuple[Any, str | None]:
    """(the config as plain containers, None), or (None, why its interpolations cannot be
    resolved, e.g. a per-family setting keyed by an optimizer name nobody registered)."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        return _plain(cfg), None
    except OmegaConfBaseException as err:
        message = str(err).split("\n")[0]
        return None, message.split("while resolving interpolation: ")[-1].strip("'\"")


def _checker(errors: list[str]):
    """`check(fn)`: fn's result, or None with its ValueError / KeyError / TypeError recorded."""

    def check(fn):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return fn()
        except (ValueError, KeyError, TypeError) as err:
            errors.append(str(err).strip("'\""))
            return None

    return check


def _train_errors(cfg: Mapping[str, Any], model_ok: bool) -> list[str]:
    """loralab-train's checks across groups: the adapter and optimizer (each checked whole by
    its config class), their targets in the model, the schedule within the run, the optimizer
    with the trainer's strategy, the non-finite policy with the process count."""
    from loralab.adapters import AdapterConfig, resolve_targets
    from loralab.models.loading import linear_module_names
    from loralab.optim import OptimizerConfig

    errors: list[str] = []
    check = _checker(errors)
    adapter_values = cfg["adapter"]
    if "gate_rescale" in adapter_values:
        errors.append(
            "adapter.gate_rescale is chosen by the optimizer's name: pick a gate-rescaled "
            "variant (optimizer=gsgd, grsgd, gadamw or gradamw) instead of setting it"
        )
        adapter_values = {k: v for k, v in adapter_values.items() if k != "gate_rescale"}
    adapter = check(lambda: AdapterConfig.from_mapping(adapter_values))
    optimizer = check(lambda: OptimizerConfig.from_mapping(cfg["optimizer"]))
    if adapter is not None and model_ok:
        names = check(lambda: linear_module_names(cfg["model"]))
        if names is not None:
            check(lambda: resolve_targets(adapter.target_modules, names))

    trainer = cfg["trainer"]
    max_steps = trainer["max_steps"]
    scheduler = cfg["optimizer"].get("scheduler")
    if scheduler and is_integer(max_steps) and is_integer(scheduler.get("warmup_steps")):
        length = scheduler.get("total_steps") or max_steps
        if not is_integer(length):
            length = max_steps  # a bad total_steps is reported by OptimizerConfig
        if scheduler["name"] != "constant" and scheduler["warmup_steps"] >= length:
            errors.append(
                f"optimizer.scheduler.warmup_steps={scheduler['warmup_steps']} must be below the "
                f"schedule length {length} (optimizer.scheduler.total_steps or trainer.max_steps)"
            )
    strategy = str(trainer.get("strategy", "auto"))
    if optimizer is not None and optimizer.pairwise and strategy.startswith(SHARDING_STRATEGIES):
        errors.append(
            f"trainer.strategy={strategy} shards parameters, but optimizer={optimizer.name}"
            " preconditions whole (A, B) pairs; use trainer=ddp, or an optimizer without a "
            "pairwise preconditioner (sgd, gsgd, adamw, gadamw, loraplus)"
        )
    if optimizer is not None and optimizer.rule == "lorarite" and adapter and adapter.mixer:
        errors.append(
            f"optimizer=lorarite (LoRA-RITE) with adapter.kind={adapter.kind} and "
            "adapter.mixer=true: its update is defined for a two-factor product B A, and the "
            "mixer between them has no rule in it; train MoSLoRA with loraplus, adamw or radamw "
            '(docs/methods.md, "LoRA+ and LoRA-RITE")'
        )
    caps = cfg["task"].get("max_examples") or {}
    if caps.get("train") == 0:
        errors.append("task.max_examples.train=0 leaves nothing to train on: null = all, or >= 1")
    processes = trainer.get("devices", 1)  # -1 / "auto": all, maybe several
    single = processes == 1 or (isinstance(processes, list) and len(processes) == 1)
    nodes = trainer.get("num_nodes", 1)
    many = not single or (is_integer(nodes) and nodes > 1)
    if cfg["nonfinite"] == "skip" and many:
        errors.append(
            f"nonfinite=skip with trainer.devices={processes!r}: one process skipping an update "
            "alone would leave the others waiting in the gradient all-reduce; use nonfinite=stop "
            "(exit 3, resume=auto continues from the last good checkpoint)"
        )
    return errors
