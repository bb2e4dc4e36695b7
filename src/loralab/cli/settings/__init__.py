"""Typed settings of every config group that is not an adapter, optimizer or task (those have
`AdapterConfig`, `OptimizerConfig` and each task's own checks): a frozen dataclass per group,
each key declared once with its default, its rule and its help (`fields.setting`). The up-front
config check (`loralab.cli.validation`) and ``loralab-train --help`` read them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loralab.cli.settings.data import DataSettings
from loralab.cli.settings.evaluate import EvalSettings
from loralab.cli.settings.evaluation import EvaluationSettings
from loralab.cli.settings.fields import describe_group, group_errors, read
from loralab.cli.settings.logger import LoggerSettings
from loralab.cli.settings.model import ModelSettings
from loralab.cli.settings.run import CheckpointSettings, DebugSettings, RunSettings
from loralab.cli.settings.trainer import TrainerSettings

# config key -> its settings class; "" is the command's own top-level keys
TRAIN_GROUPS = {
    "": RunSettings,
    "model": ModelSettings,
    "data": DataSettings,
    "evaluation": EvaluationSettings,
    "checkpoint": CheckpointSettings,
    "trainer": TrainerSettings,
    "logger": LoggerSettings,
    "debug": DebugSettings,
}
EVAL_GROUPS = {"": EvalSettings, "model": ModelSettings, "data": DataSettings}


def settings_errors(config: Mapping[str, Any], groups: Mapping[str, type]) -> list[str]:
    """Every invalid value of a resolved config's typed groups, each naming its key."""
    errors = []
    for key, cls in groups.items():
        values = config if not key else config.get(key)
        if isinstance(values, Mapping):
            errors += group_errors(cls, values, f"{key}." if key else "")
    return errors


def settings_help(config: Mapping[str, Any], groups: Mapping[str, type]) -> str:
    """``--help``'s list of the typed keys: each with its value in `config`, what it accepts
    and what it does."""
    blocks = []
    for key, cls in groups.items():
        values = config if not key else config.get(key)
        if isinstance(values, Mapping):
            title = " ".join((cls.__doc__ or key).split("\n\n")[0].split())
            if key and not title.startswith(f"{key}:"):
                title = f"{key}: {title}"
            lines = describe_group(cls, values, f"{key}." if key else "")
            blocks.append("\n".join([title, *lines]))
    return "\n\n".join(blocks)


__all__ = [
    "EVAL_GROUPS",
    "TRAIN_GROUPS",
    "CheckpointSettings",
    "DataSettings",
    "DebugSettings",
    "EvalSettings",
    "EvaluationSettings",
    "LoggerSettings",
    "ModelSettings",
    "RunSettings",
    "TrainerSettings",
    "read",
    "settings_errors",
    "settings_help",
]
