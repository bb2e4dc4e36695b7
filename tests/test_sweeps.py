"""W&B sweep files are valid sweep configs whose commands compose and validate with Hydra."""

import math
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from loralab.train import CONF_DIR
from loralab.validation import validate_config

SWEEPS = sorted((Path(__file__).parents[1] / "sweeps").glob("*.yaml"))


def first_value(spec: dict):
    if "value" in spec:
        return spec["value"]
    if "values" in spec:
        return spec["values"][0]
    return math.sqrt(spec["min"] * spec["max"])  # a distribution: its geometric middle


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweep_resolves_against_the_hydra_config(path):
    sweep = yaml.safe_load(path.read_text())
    assert sweep["method"] in {"grid", "random", "bayes"}
    assert sweep["metric"]["goal"] in {"minimize", "maximize"}
    assert sweep["command"][-1] == "${args_no_hyphens}"  # key=value, as Hydra expects
    assert sweep["command"][2:4] == ["-m", "loralab.train"]
    grid = [v for v in sweep["parameters"].values() if "values" in v]
    for index in range(max(len(v["values"]) for v in grid) if grid else 1):
        overrides = []
        for key, spec in sweep["parameters"].items():
            value = spec["values"][index % len(spec["values"])] if "values" in spec else None
            overrides.append(f"{key}={first_value(spec) if value is None else value}")
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(config_name="train", overrides=overrides)
        validate_config(cfg)
