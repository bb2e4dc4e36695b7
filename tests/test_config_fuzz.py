"""Every key of the training config, given a value of the wrong type or out of range, is
refused by the up-front check naming that key (exit 2 at the command line, before anything
loads); a typo'd key name is refused by Hydra. Free-text keys are listed as such."""

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from loralab.cli.validation import ConfigError, validate_config
from tests.helpers import compose_config

BASES = {
    "default": ["model=tiny_llama"],
    "scienceqa": ["model=tiny_llama", "task=scienceqa"],
    "commonsense": ["model=tiny_llama", "task=commonsense"],
    "ddp": ["model=tiny_llama", "trainer=ddp"],
}
FREE_TEXT = {  # any string is a valid value
    "run_name",
    "model.name",
    "task.source",
    "task.train_source",
    "logger.wandb.project",
    "trainer.strategy",
}


def leaves(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def bad_values(value):
    if isinstance(value, bool):
        return ["zzz", "3"]
    if isinstance(value, int | float):
        return ["zzz", "-5"]
    if value is None:
        return ["[1,2]"]
    return ["zzz"]


def cases():
    seen = set()
    for base, overrides in BASES.items():
        config = OmegaConf.to_container(compose_config(overrides), resolve=False)
        for key, value in leaves(config):
            if key in seen or key in FREE_TEXT or (isinstance(value, str) and "${" in value):
                continue
            seen.add(key)
            for bad in bad_values(value):
                yield pytest.param(base, key, bad, id=f"{key}={bad}")


@pytest.mark.parametrize("base,key,bad", list(cases()))
def test_a_wrong_value_is_refused_naming_its_key(base, key, bad):
    try:
        cfg = compose_config([*BASES[base], f"{key}={bad}"])
    except ConfigCompositionException:
        return  # Hydra refused it already (a typed node): exit 2 at the command line
    with pytest.raises(ConfigError) as error:
        validate_config(cfg)
    assert key.rsplit(".", 1)[-1] in str(error.value)


@pytest.mark.parametrize("group", ["model", "adapter", "optimizer", "task", "trainer", "data"])
def test_a_typod_key_is_refused_by_name(group):
    config = OmegaConf.to_container(compose_config(["model=tiny_llama"]), resolve=False)
    typo = f"{group}.{next(iter(config[group]))}x"
    with pytest.raises(ConfigCompositionException, match=typo.split(".")[-1]):
        compose_config(["model=tiny_llama", f"{typo}=1"])
