"""The logger group (conf/logger/): metrics.csv always, and a W&B run when enabled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loralab.cli.settings.fields import FLAG, names_list, one_of, setting, text

WANDB_MODES = ("auto", "offline", "online", "disabled")


@dataclass(frozen=True)
class WandbSettings:
    """logger.wandb: the W&B run beside metrics.csv."""

    enabled: bool = setting(FLAG, "log a W&B run too")
    mode: str = setting(
        one_of(WANDB_MODES),
        "auto: online only when logged in (WANDB_API_KEY or `wandb login`), else offline in "
        "the run directory (`wandb sync` later)",
    )
    project: str = setting(None, "the W&B project")
    entity: str | None = setting(
        text(nullable=True, what="a W&B entity name"), "the W&B team or user"
    )
    group: str | None = setting(
        text(nullable=True, what="a name"), "runs of one variant (all seeds) share it"
    )
    job_type: str | None = setting(
        text(nullable=True, what="a name"), "null: the experiment config's name"
    )
    tags: list = setting(names_list("[ablation, cpu]"), "the run's W&B tags")


@dataclass(frozen=True)
class LoggerSettings:
    """logger: where the metrics go."""

    wandb: Any = setting(None, "the W&B run", group=WandbSettings)
