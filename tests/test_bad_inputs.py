"""Inputs that must be refused up front with exit 2 and one message naming the key or file, the
value and what is allowed: config values (non-finite floats, booleans for integers, seeds out
of range, shapes the tiny model cannot build, a GPU or package that is not there, plugins that
fail to import, YAML tags), loralab-eval's adapter files and run folder, loralab-figures'
arguments."""

import copy
import json

import pytest
import torch
import yaml
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from loralab.adapters import AdapterConfig, inject_adapters, load_adapter, save_adapter
from loralab.adapters.io import AdapterFileError
from loralab.cli.settings import machine
from loralab.cli.validation import ConfigError, validate_config
from loralab.values import is_number
from tests.helpers import compose_config, run_cli, snapshot
from tests.test_config_fuzz import BASES, leaves


def refused(overrides, entry: str = "train") -> str:
    """The ConfigError message of validating `overrides` on the tiny model."""
    with pytest.raises(ConfigError) as error:
        validate_config(compose_config(["model=tiny_llama", *overrides], name=entry), entry)
    return str(error.value)


@pytest.fixture
def cpu_machine(monkeypatch):
    """No GPU and no optional package, whatever this machine has."""
    monkeypatch.setattr(machine, "gpu_count", lambda: 0)
    monkeypatch.setattr(machine, "installed", lambda package: False)


BAD = [
    (["optimizer.lr=inf"], "optimizer.lr=inf is invalid: must be a finite number > 0"),
    (["adapter.alpha=nan"], "adapter.alpha=nan is invalid: must be a finite number"),
    (["optimizer.weight_decay=inf"], "optimizer.weight_decay=inf is invalid: must be a finite"),
    (["optimizer.router_clip=inf"], "optimizer.router_clip=inf is invalid"),
    (["adapter.load_balance_coef=inf"], "adapter.load_balance_coef=inf is invalid"),
    (["trainer.max_steps=true"], "trainer.max_steps=True must be an integer >= 1"),
    (["data.batch_size=true"], "data.batch_size=True must be an integer >= 1"),
    (["checkpoint.every_n_steps=true"], "checkpoint.every_n_steps=True must be an integer"),
    (["seed=true"], "seed=True must be an integer in [0, 4294967295]"),
    (["seed=4294967296"], "seed=4294967296 must be an integer in [0, 4294967295]"),
    (["seed=-1"], "seed=-1 must be an integer in [0, 4294967295]"),
    (
        ["model.tiny.num_heads=3"],
        "model.tiny.num_heads=3 must split model.tiny.hidden_size=64 into heads of an even "
        "size: one of [1, 2, 4, 8, 16, 32]",
    ),
    (["model.tiny.num_heads=64"], "model.tiny.num_heads=64 must split"),  # head size 1: odd
    (["model.tiny.num_kv_heads=3"], "model.tiny.num_kv_heads=3 must divide model.tiny.num_heads"),
    (["model.tiny.num_layers=inf"], "model.num_layers=inf must be an integer >= 1"),
    (["trainer=ddp", "trainer.devices=nan"], "trainer.devices=nan must be"),
    (
        ["trainer.accelerator=gpu"],
        "trainer.accelerator=gpu but no GPU is visible here (torch finds no CUDA device): "
        "use trainer=cpu",
    ),
    (["trainer=gpu"], "no GPU is visible here"),
    (
        ["trainer.precision=transformer-engine"],
        "trainer.precision=transformer-engine needs the Python package transformer_engine, "
        "which is not installed here",
    ),
    (["trainer=deepspeed", "optimizer=adamw"], "trainer.strategy=deepspeed_stage_2 needs the"),
]


@pytest.mark.parametrize("overrides,fragment", BAD, ids=lambda v: str(v))
def test_a_bad_value_is_refused_naming_key_value_and_what_is_allowed(
    cpu_machine, overrides, fragment
):
    assert fragment in refused(overrides)


def test_more_gpus_than_visible_are_refused(monkeypatch):
    monkeypatch.setattr(machine, "gpu_count", lambda: 1)
    assert "trainer.devices=2 but 1 GPU(s) are visible here" in refused(
        ["trainer=ddp", "trainer.accelerator=gpu"]
    )


def test_loralab_eval_checks_the_tiny_models_shapes_too():
    assert "model.tiny.num_heads=3 must split" in refused(["model.tiny.num_heads=3"], "eval")


# tasks/registry.py still takes a bool for an integer cap (isinstance(True, int) holds)


def numeric_cases():
    """Every key whose default is a number, in loralab-train's and loralab-eval's configs, each
    given a bool and two non-finite floats."""
    bases = [("train", base, overrides) for base, overrides in BASES.items()]
    bases.append(("eval", "eval", ["model=tiny_llama"]))
    seen = set()
    for entry, base, overrides in bases:
        config = OmegaConf.to_container(compose_config(overrides, name=entry), resolve=False)
        for key, value in leaves(config):
            if (entry, key) in seen or not is_number(value):
                continue
            seen.add((entry, key))
            for bad in ("true", "nan", "inf"):
                yield pytest.param(entry, overrides, key, bad, id=f"{base}:{key}={bad}")


@pytest.mark.parametrize("entry,base,key,bad", list(numeric_cases()))
def test_no_number_setting_takes_a_bool_or_a_non_finite_value(entry, base, key, bad):
    try:
        cfg = compose_config([*base, f"{key}={bad}"], name=entry)
    except ConfigCompositionException:
        return  # a typed node: Hydra refused it already (exit 2)
    with pytest.raises(ConfigError) as error:
        validate_config(cfg, entry)
    assert key.rsplit(".", 1)[-1] in str(error.value)


PLUGINS = {
    "syntax_error_plugin": (
        "x = 1\ndef f(:\n    pass\n",
        "plugins: 'syntax_error_plugin' has a syntax error: invalid syntax ({file}, line 2)",
    ),
    "raising_plugin": (
        "import os\nraise RuntimeError('no licence server')\n",
        "plugins: importing 'raising_plugin' failed: RuntimeError: no licence server "
        "({file}, line 2)",
    ),
    "needs_a_package_plugin": (
        "import json\nimport no_such_package_here\n",
        "plugins: importing 'needs_a_package_plugin' failed: ModuleNotFoundError: No module "
        "named 'no_such_package_here' ({file}, line 2)",
    ),
}


@pytest.mark.parametrize("name", PLUGINS)
def test_a_plugin_that_fails_to_import_is_named_with_its_error_line(tmp_path, monkeypatch, name):
    source, message = PLUGINS[name]
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert message.format(file=tmp_path / f"{name}.py") in refused([f"plugins=[{name}]"])


def test_a_broken_plugin_exits_2_in_one_line(tmp_path):
    (tmp_path / "broken.py").write_text("def f(:\n")
    done = run_cli("loralab.cli.train", ["model=tiny_llama", "plugins=[broken]"], tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        "loralab-train: invalid config:",
        f"  - plugins: 'broken' has a syntax error: invalid syntax ({tmp_path}/broken.py, line 1)",
    ]


# -- YAML tags in config files --------------------------------------------------------------

TAGGED = "defaults:\n  - tiny_llama\n  - _self_\ndtype: !!python/object:os.system {}\n"


@pytest.fixture
def yaml_loader(monkeypatch):
    """refuse_yaml_tags changes PyYAML's safe loader for the process: undone after the test."""
    constructors = dict(yaml.SafeLoader.yaml_constructors)
    monkeypatch.setattr(yaml.SafeLoader, "yaml_constructors", constructors)


def test_a_yaml_tag_is_refused_in_one_line_naming_file_and_line(tmp_path, yaml_loader):
    from loralab.cli.yaml_tags import YamlTagError, refuse_yaml_tags

    file = tmp_path / "evil.yaml"
    file.write_text(TAGGED)
    refuse_yaml_tags()
    with pytest.raises(yaml.YAMLError) as error:  # still a YAML error for those catching them
        OmegaConf.load(file)
    assert isinstance(error.value, YamlTagError)
    assert str(error.value) == (
        f"{file}, line 4: the YAML tag !!python/object:os.system is not allowed in a config; "
        "write the value itself (a number, a string, a list or a mapping)"
    )
    file.write_text("lr: !!float 1e-3\nname: !!str 12\n")  # plain values' tags load as before
    assert OmegaConf.to_container(OmegaConf.load(file)) == {"lr": 1e-3, "name": "12"}


def eval_cli(args, cwd):
    return run_cli("loralab.cli.evaluate", args, cwd, LORALAB_CACHE=str(cwd / "cache"))


def test_loralab_eval_refuses_a_tagged_config_file_without_a_traceback(tmp_path):
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "evil.yaml").write_text(TAGGED)
    done = eval_cli(["--config-dir", str(tmp_path / "conf"), "model=evil"], tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert (
        f"{tmp_path}/conf/model/evil.yaml, line 4: the YAML tag !!python/object"
        in (done.stderr.splitlines()[0])
    )


def test_loralab_train_refuses_a_tagged_config_file_without_a_traceback(tmp_path):
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "evil.yaml").write_text(TAGGED)
    done = run_cli(
        "loralab.cli.train", ["--config-dir", str(tmp_path / "conf"), "model=evil"], tmp_path
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr


# -- loralab-eval: adapter files and the run folder ------------------------------------------

LORA = AdapterConfig(rank=4, alpha=8, dropout=0.0, target_modules="attention")


@pytest.fixture
def adapter_dir(tiny_llama, tmp_path):
    """A LoRA saved from the tiny Llama (the shapes of model=tiny_llama's attention)."""
    folder = tmp_path / "adapter"
    model = copy.deepcopy(tiny_llama)
    inject_adapters(model, LORA)
    save_adapter(model, folder, LORA)
    return folder


def edit_config(folder, change):
    file = folder / "adapter_config.json"
    file.write_text(json.dumps(change(json.loads(file.read_text()))))


@pytest.mark.parametrize(
    "change,fragment",
    [
        (lambda c: c | {"target_modules": ["nothing_here"]}, "entry 'nothing_here' matches no"),
        (lambda c: c | {"target_modules": "../.."}, "entry '../..' matches no linear module"),
        (lambda c: c | {"alpha": float("nan")}, "adapter.alpha=nan is invalid"),
        (lambda c: c | {"rank": True}, "adapter.rank=True is invalid: must be an integer"),
        (lambda c: [c], "holds a JSON list, expected an object of adapter settings"),
    ],
)
def test_a_bad_adapter_config_is_refused_naming_file_and_key(
    tiny_llama, adapter_dir, change, fragment
):
    edit_config(adapter_dir, change)
    with pytest.raises(AdapterFileError) as error:
        load_adapter(tiny_llama, adapter_dir)
    assert str(error.value).startswith(f"{adapter_dir / 'adapter_config.json'}: ")
    assert fragment in str(error.value)


def test_integer_adapter_tensors_are_refused_naming_the_tensor(tiny_llama, adapter_dir):
    file = adapter_dir / "adapter.safetensors"
    save_file({k: v.to(torch.int64) for k, v in load_file(file).items()}, file)
    with pytest.raises(AdapterFileError, match=r"lora_A holds torch.int64 values, not floats"):
        load_adapter(tiny_llama, adapter_dir)


def a_training_run(folder):
    """A finished training run's record: what loralab-eval must leave as it is."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("seed: 0\nrun_name: demo-lora-adamw-s0\n")
    (folder / ".hydra" / "overrides.yaml").write_text("- adapter=lora\n")
    (folder / "train.log").write_text("[INFO] training\n")
    (folder / "metrics.csv").write_text("step,train/loss\n0,1.0\n")
    return folder


def test_loralab_eval_never_rewrites_a_training_runs_record(adapter_dir, tmp_path):
    """Into a training run's folder: a refused command (a bad value; an adapter refused after
    a log line) leaves every file as it was and adds none (no .hydra/, no log); one that runs
    adds only its eval.json (with the command line), eval.md, predictions.jsonl and
    evaluate.log. A refused
    command's new run folder is removed again."""
    run = a_training_run(tmp_path / "run")
    before = snapshot(run)
    (tmp_path / "noisy.py").write_text(
        "import logging\nlogging.getLogger('loralab').warning('a plugin says hello')\n"
    )
    edit_config(adapter_dir, lambda c: c | {"alpha": float("nan")})
    common = ["model=tiny_llama", "plugins=[noisy]", "precision=32-true"]
    for args in (["mode=bogus"], [f"adapter_dir={adapter_dir}"]):
        done = eval_cli([*common, *args, f"hydra.run.dir={run}"], tmp_path)
        assert done.returncode == 2, done.stderr[-2000:]
        assert "a plugin says hello" in done.stdout  # logged, to the console only
        assert snapshot(run) == before, args
    done = eval_cli(["mode=bogus", f"hydra.run.dir={tmp_path / 'new' / 'eval'}"], tmp_path)
    assert done.returncode == 2 and not (tmp_path / "new").exists()  # Hydra made it: removed

    args = [*common, "task.max_examples.test=4"]
    done = eval_cli([*args, f"hydra.run.dir={run}"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    after = snapshot(run)
    assert {path: after[path] for path in before} == before
    new = sorted(after.keys() - before.keys())
    assert new == ["eval.json", "eval.md", "evaluate.log", "predictions.jsonl"]
    assert json.loads(after["eval.json"])["overrides"] == args  # hydra.* are Hydra's own
    assert b"a plugin says hello" in after["evaluate.log"]  # the held line, written at last


# -- loralab-figures -----------------------------------------------------------------------


def a_logged_run(folder):
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text("step,train/loss,test/acc\n0,2.0,0.25\n1,1.0,0.5\n")
    (folder / "summary.json").write_text(json.dumps({"run_name": "demo-lora-adamw-s0"}))
    return folder


def figures_refusal(args, capsys) -> str:
    from loralab.cli.figures import main

    with pytest.raises(SystemExit) as stopped:
        main([str(a) for a in args])
    assert stopped.value.code == 2
    return capsys.readouterr().err


def test_figures_refuse_a_metrics_file_of_other_columns(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("a,b\n1,2\n")
    err = figures_refusal([run, "--out", tmp_path / "fig"], capsys)
    assert f"{run / 'metrics.csv'}: not a loralab metrics file (it has the columns a, b" in err


def test_figures_refuse_an_out_that_is_a_file(tmp_path, capsys):
    run, out = a_logged_run(tmp_path / "run"), tmp_path / "figures.png"
    out.write_text("")
    err = figures_refusal([run, "--out", out], capsys)
    assert f"--out {out}: is a file; name a folder" in err


@pytest.mark.parametrize(
    "content,fragment",
    [
        ("[]", "eval.json: holds a JSON list, not a loralab-eval eval.json"),
        ("{not json", "eval.json: not readable as a loralab-eval eval.json"),
        ('{"config": []}', "eval.json has no config.mode"),
        ('{"config": {"mode": "score"}, "summary": {}}', "has no summary.overall.accuracy"),
    ],
)
def test_figures_refuse_a_malformed_baseline_naming_it(tmp_path, capsys, content, fragment):
    run, baseline = a_logged_run(tmp_path / "run"), tmp_path / "base"
    baseline.mkdir()
    (baseline / "eval.json").write_text(content)
    err = figures_refusal([run, "--baseline", baseline, "--out", tmp_path / "fig"], capsys)
    assert err.startswith(f"loralab-figures: --baseline {baseline}: ") and fragment in err
    assert not (tmp_path / "fig").exists()
