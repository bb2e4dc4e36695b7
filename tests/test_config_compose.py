"""Every option of every config group composes with the real Hydra, and validates."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from loralab.train import CONF_DIR
from loralab.validation import validate_config

GROUPS = ["model", "adapter", "optimizer", "task", "trainer", "logger", "experiment"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=False)


@pytest.mark.parametrize(
    "group,option", [(g, o) for g in GROUPS for o in options(g)], ids=lambda v: str(v)
)
def test_every_option_composes_and_validates(group, option):
    extra = ["optimizer=adamw"] if option in ("fsdp", "deepspeed") else []  # see test below
    cfg = compose_train([f"{group}={option}", *extra])
    OmegaConf.resolve(cfg)
    validate_config(cfg)
    if group != "experiment":
        assert cfg[group]["name" if "name" in cfg[group] else next(iter(cfg[group]))] is not None


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), f"config group {group} is empty"


def test_default_is_the_papers_method():
    cfg = compose_train([])
    assert cfg.adapter.kind == "moe_lora"
    assert cfg.optimizer.riemannian and cfg.optimizer.gate_rescale
    assert cfg.model.name == "smollm2_135m"
    assert cfg.task.name == "demo"


def test_sharded_trainers_refuse_riemannian_optimizers():
    from loralab.validation import ConfigError

    for trainer in ("fsdp", "deepspeed"):
        with pytest.raises(ConfigError, match="preconditions whole"):
            validate_config(compose_train([f"trainer={trainer}", "optimizer=grsgd"]))
