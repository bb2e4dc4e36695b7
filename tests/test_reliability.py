"""Runs survive kills, refuse bad input early, stop on non-finite values, load safely, and
give the same curves under DDP as in one process."""

import json
import os

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from loralab.runs.checkpoints import AtomicCheckpointIO, UnsafeCheckpointError, safe_load
from tests.helpers import compose_config, run_cli

TINY = [
    "model=tiny_llama",
    "trainer.precision=32-true",
    "logger=csv",
    "adapter.num_experts=4",
    "adapter.top_k=2",
    "optimizer=gradamw",
    "optimizer.lr=1e-2",
    "trainer.max_steps=12",
    "trainer.val_check_interval=6",
    "trainer.deterministic=true",
    "checkpoint.every_n_steps=4",
    "evaluation.before_training=false",
    "task.max_examples.train=40",  # 5 batches an epoch: the run crosses epoch boundaries
    "task.max_examples.validation=8",
    "task.max_examples.test=8",
]


def train(args, cwd, **env):
    return run_cli("loralab.cli.train", args, cwd, WANDB_MODE="offline", **env)


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    done = train([*TINY, f"hydra.run.dir={whole}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    killed = train(
        [*TINY, "debug.kill_at_step=10", "logger=wandb", f"hydra.run.dir={parts}"], tmp_path
    )
    assert killed.returncode == -9  # SIGKILL, mid-run, after the step-8 checkpoint
    assert safe_load(parts / "checkpoints" / "last.ckpt")["global_step"] == 8
    run_id = (parts / "wandb_run_id").read_text()

    resumed = train([*TINY, "resume=auto", "logger=wandb", f"hydra.run.dir={parts}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    expected = load_file(whole / "adapter" / "adapter.safetensors")
    actual = load_file(parts / "adapter" / "adapter.safetensors")
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key

    curve = pd.read_csv(parts / "metrics.csv").dropna(subset=["train/loss"])
    assert curve["step"].tolist() == list(range(12)), "every step exactly once"
    reference = pd.read_csv(whole / "metrics.csv").dropna(subset=["train/loss"])
    # Same seed, separate processes: identical loss curves (determinism), resumed or not.
    assert curve["train/loss"].tolist() == reference["train/loss"].tolist()

    # The W&B run was continued, not duplicated.
    assert (parts / "wandb_run_id").read_text() == run_id
    runs = list((parts / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(r.name.endswith(run_id) for r in runs)


def test_a_kill_during_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 4, "w": torch.ones(3)}, target)

    def dies_halfway(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise KeyboardInterrupt  # the process is killed mid-write

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"global_step": 8, "w": torch.zeros(3)}, target)
    assert io.load_checkpoint(target)["global_step"] == 4


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_checkpoint_carrying_code_is_refused(tmp_path):
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Payload()}, evil)
    with pytest.raises(UnsafeCheckpointError, match="refusing to load"):
        safe_load(evil)
    done = train(["model=tiny_llama", "logger=csv", f"resume={evil}"], tmp_path)
    assert done.returncode == 2
    assert "refusing to load" in done.stderr and "pwned" not in done.stdout
    assert "weights_only" not in done.stderr  # never advise loading it unsafely


def test_planted_nan_stops_with_step_and_keeps_last_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    done = train([*TINY, "debug.nan_at_step=6", f"hydra.run.dir={run_dir}"], tmp_path)
    assert done.returncode == 3
    assert "non-finite training at step 6" in done.stderr
    assert safe_load(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 4


def test_planted_nan_can_be_skipped_and_counted(tmp_path):
    run_dir = tmp_path / "run"
    args = [*TINY, "debug.nan_at_step=6", "nonfinite=skip", f"hydra.run.dir={run_dir}"]
    done = train(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = pd.read_csv(run_dir / "metrics.csv")
    skipped = metrics["train/skipped"].dropna()
    assert skipped.iloc[0] == 0 and skipped.iloc[-1] == 1  # counted once, then carried along
    assert metrics["train/loss"].dropna().notna().all()


BAD = [
    (["adapter=nope"], "moe_lora"),
    (["adapter.rnak=4"], "rnak"),
    (["adapter.rank=0"], "adapter.rank=0"),
    (["adapter.num_experts=0"], "adapter.num_experts=0"),
    (["adapter.top_k=21"], "adapter.top_k=21"),
    (["adapter.top_k=0"], "adapter.top_k=0"),
    (["adapter.dropout=1.5"], "adapter.dropout=1.5"),
    (["adapter=lora", "adapter.mixer=true"], "adapter.mixer=True"),
    (["adapter.kind=dora"], "adapter.kind='dora'"),
    (["adapter.target_modules=[nothing_matches]"], "nothing_matches"),
    (["optimizer=adam"], "gradamw"),
    (["optimizer.lr=-1"], "optimizer.lr"),
    (["optimizer.delta=0"], "optimizer.delta"),
    (["optimizer.router_lr=-1e-3"], "optimizer.router_lr"),
    (["optimizer.scheduler.name=step"], "optimizer.scheduler.name"),
    (["optimizer.scheduler.warmup_steps=500"], "optimizer.scheduler.warmup_steps=500"),
    (["optimizer.lr=fast"], "optimizer.lr"),
    (["data.batch_size=0"], "data.batch_size=0"),
    (["data.overflow=wrap"], "data.overflow='wrap'"),
    (["trainer.max_steps=0"], "trainer.max_steps=0"),
    (["model.source=ftp"], "model.source='ftp'"),
    (["nonfinite=ignore"], "nonfinite='ignore'"),
    (["resume=weights.bin"], "resume='weights.bin'"),
    (["trainer=fsdp", "optimizer=grsgd"], "preconditions whole"),
    (["adapter.rank=abc"], "adapter.rank='abc' is invalid: must be an integer"),
    (["adapter.mixer=maybe"], "adapter.mixer='maybe' is invalid: must be true or false"),
    (["evaluation.router_stats_every=-1"], "evaluation.router_stats_every=-1"),
    (["logger.wandb.mode=bogus"], "logger.wandb.mode='bogus'"),
    (["trainer.precision=bf17"], "trainer.precision='bf17'"),
]


@pytest.mark.parametrize("overrides,fragment", BAD, ids=lambda v: str(v))
def test_bad_configs_exit_2_before_loading_a_model(tmp_path, overrides, fragment):
    """The default (embedded) model: had it started loading, its cache would exist."""
    done = train(overrides, tmp_path, LORALAB_CACHE=str(tmp_path / "cache"))
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert fragment in done.stderr
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("optimizer", ["rsgd", "radamw"])
def test_ddp_on_two_processes_matches_one_process(tmp_path, optimizer):
    common = [
        "model=tiny_llama",
        "trainer.precision=32-true",
        "logger=csv",
        f"optimizer={optimizer}",
        "optimizer.lr=1e-2",
        "adapter.dropout=0.0",
        "trainer.max_steps=6",
        "trainer.val_check_interval=6",
        "evaluation.before_training=false",
        "task.max_examples.train=48",
        "task.max_examples.validation=8",
        "task.max_examples.test=8",
    ]
    single = train([*common, "data.batch_size=8", f"hydra.run.dir={tmp_path / 'one'}"], tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]
    ddp_args = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "data.batch_size=4"]
    double = train([*common, *ddp_args, f"hydra.run.dir={tmp_path / 'two'}"], tmp_path)
    assert double.returncode == 0, double.stderr[-3000:]
    one = pd.read_csv(tmp_path / "one" / "metrics.csv")["train/loss"].dropna().tolist()
    two = pd.read_csv(tmp_path / "two" / "metrics.csv")["train/loss"].dropna().tolist()
    assert len(one) == len(two) == 6
    assert two == pytest.approx(one, abs=1e-5)
    # the per-question record: written once, by the first process, every question once
    records = [
        [json.loads(line) for line in (tmp_path / run / "predictions" / "test_step6.jsonl").open()]
        for run in ("one", "two")
    ]
    assert [(r["id"], r["gold"]) for r in records[1]] == [(r["id"], r["gold"]) for r in records[0]]
    assert len({r["id"] for r in records[1]}) == 8


def test_skipping_non_finite_updates_is_refused_with_several_processes():
    from loralab.cli.validation import ConfigError, validate_config

    def check(*overrides):
        validate_config(compose_config(["model=tiny_llama", *overrides]))

    check("nonfinite=skip")  # one process: fine
    check("trainer=ddp", "nonfinite=stop")
    with pytest.raises(ConfigError, match="nonfinite=skip with trainer.devices=2"):
        check("trainer=ddp", "nonfinite=skip")
