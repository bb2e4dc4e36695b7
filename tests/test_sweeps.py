"""W&B sweep files are valid sweep configs whose commands compose and validate with Hydra."""

import math
from pathlib import Path

import pytest
import yaml

from loralab.cli.validation import validate_config
from tests.helpers import compose_config, run_cli

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
    assert sweep["command"][2:4] == ["-m", "loralab.cli.train"]
    grid = [v for v in sweep["parameters"].values() if "values" in v]
    for index in range(max(len(v["values"]) for v in grid) if grid else 1):
        overrides = []
        for key, spec in sweep["parameters"].items():
            value = spec["values"][index % len(spec["values"])] if "values" in spec else None
            overrides.append(f"{key}={first_value(spec) if value is None else value}")
        validate_config(compose_config(overrides))


def test_optuna_lr_search_returns_the_best_trial(tmp_path):
    """hparams_search=lr_optuna: real Optuna trials, each a full run; the reported best lr and
    value are the trial whose last val/acc is highest, and every lr lies in the search box."""
    import pandas as pd

    sweep_dir = tmp_path / "search"
    args = [
        "-m",
        "experiment=smoke",
        "hparams_search=lr_optuna",
        "optimizer=gsgd",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.sampler.n_startup_trials=2",
        "optimizer.lr=tag(log, interval(1e-3, 1))",
        "logger=csv",
        "trainer.max_steps=4",
        "trainer.val_check_interval=2",
        "evaluation.before_training=false",
        "task.max_examples.train=32",
        "task.max_examples.validation=16",
        "task.max_examples.test=8",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    done = run_cli("loralab.cli.train", args, tmp_path, LORALAB_CACHE=str(tmp_path / "cache"))
    assert done.returncode == 0, done.stderr[-3000:]

    trials = {}
    for metrics in sweep_dir.glob("*/metrics.csv"):
        config = yaml.safe_load((metrics.parent / ".hydra" / "config.yaml").read_text())
        frame = pd.read_csv(metrics)
        trials[config["optimizer"]["lr"]] = frame["val/acc"].dropna().iloc[-1]
        assert config["optimizer"]["name"] == "gsgd"
    assert len(trials) == 3
    assert all(1e-3 <= lr <= 1 for lr in trials)
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(max(trials.values()))
    assert trials[results["best_params"]["optimizer.lr"]] == pytest.approx(results["best_value"])


def test_optuna_search_survives_diverged_trials(tmp_path):
    """A trial whose loss turns non-finite scores -inf instead of ending the whole study."""

    sweep_dir = tmp_path / "search"
    args = [
        "-m",
        "experiment=smoke",
        "hparams_search=lr_optuna",
        "hydra.sweeper.n_trials=2",
        "debug.nan_at_step=1",
        "logger=csv",
        "trainer.max_steps=3",
        "evaluation.before_training=false",
        "task.max_examples.train=16",
        "task.max_examples.validation=8",
        "task.max_examples.test=8",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    done = run_cli("loralab.cli.train", args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("loss is nan") == 2
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["best_value"] == -math.inf


def test_a_long_override_list_still_makes_a_valid_job_folder():
    """Hydra names a multirun job's folder after its overrides; past 255 bytes the file system
    refused it and every job failed. Names over 200 bytes are cut and hashed, still distinct."""
    from loralab.cli.resolvers import folder_name as _folder_name

    short = "optimizer=sgd,seed=0"
    assert _folder_name(short) == short
    long_a, long_b = "x=1," * 80 + "seed=0", "x=1," * 80 + "seed=1"
    folders = _folder_name(long_a), _folder_name(long_b)
    assert all(len(f.encode()) <= 200 for f in folders) and folders[0] != folders[1]
    assert folders[0].startswith("x=1,x=1,")


def test_an_override_with_a_slash_makes_one_job_folder_not_a_nest():
    from loralab.cli.resolvers import folder_name as _folder_name

    name = "optimized_metric=val/decision_loss,task.source=../data/arc"
    assert _folder_name(name) == "optimized_metric=val_decision_loss,task.source=.._data_arc"
