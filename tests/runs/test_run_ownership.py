"""A run directory has one owner: outputs go only to hydra.run.dir, a second process is
refused, a refused command leaves every existing file as it was (and no new folder), W&B
without a key or a network falls back to offline, and a multirun runs every job."""

import json
import logging
import signal

import pytest

from loralab.runs import loggers
from loralab.runs.ownership import RunLock
from tests.helpers import run_train as train
from tests.helpers import snapshot

TINY = [
    "model=tiny_llama",
    "trainer.precision=32-true",
    "logger=csv",
    "adapter=lora",
    "optimizer=adamw",
    "trainer.max_steps=4",
    "trainer.val_check_interval=4",
    "checkpoint.every_n_steps=2",
    "evaluation.before_training=false",
    "task.max_examples.train=16",
    "task.max_examples.validation=8",
    "task.max_examples.test=8",
]


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """A run killed after its step-2 checkpoint, with a copy of that checkpoint kept aside."""
    cwd = tmp_path_factory.mktemp("owner")
    run_dir = cwd / "A"
    done = train([*TINY, "debug.kill_at_step=3", f"hydra.run.dir={run_dir}"], cwd)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    (run_dir / "backup").mkdir()
    (run_dir / "backup" / "x.ckpt").write_bytes(
        (run_dir / "checkpoints" / "step2.ckpt").read_bytes()
    )
    return cwd, run_dir


def test_a_checkpoint_kept_elsewhere_continues_the_run_in_hydra_run_dir(killed_run):
    cwd, run_a = killed_run
    before = snapshot(run_a)
    run_b = cwd / "B"
    done = train([*TINY, f"resume={run_a / 'backup' / 'x.ckpt'}", f"hydra.run.dir={run_b}"], cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    assert snapshot(run_a) == before  # the checkpoint's own run is left as it was
    assert (run_b / "adapter" / "adapter.safetensors").is_file()
    assert (run_b / "summary.json").is_file() and (run_b / "checkpoints" / "last.ckpt").is_file()
    steps = [line.split(",") for line in (run_b / "metrics.csv").read_text().splitlines()]
    column = steps[0].index("step")
    assert min(int(row[column]) for row in steps[1:]) == 2  # continued from step 2
    assert "test accuracy before  n/a" in done.stdout  # measured by the run in A, not here


def test_a_checkpoint_from_another_run_is_refused_into_a_run_directory(killed_run):
    cwd, run_a = killed_run
    other = cwd / "other"
    assert train([*TINY, f"hydra.run.dir={other}"], cwd).returncode == 0
    before_a, before_other = snapshot(run_a), snapshot(other)
    done = train([*TINY, f"resume={run_a / 'backup' / 'x.ckpt'}", f"hydra.run.dir={other}"], cwd)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "already holds a run" in done.stderr and "empty hydra.run.dir" in done.stderr
    assert snapshot(run_a) == before_a and snapshot(other) == before_other


def test_a_second_process_is_refused_and_writes_nothing(killed_run):
    cwd, run_a = killed_run
    before = snapshot(run_a)
    lock = RunLock(run_a)
    lock.acquire()  # a run in progress
    try:
        holder = (run_a / ".lock").read_bytes()
        done = train([*TINY, "resume=auto", f"hydra.run.dir={run_a}"], cwd)
        assert (run_a / ".lock").read_bytes() == holder
    finally:
        lock.release()
    assert done.returncode == 2, done.stderr[-3000:]
    assert "is in use by process" in done.stderr and "nothing was written" in done.stderr
    assert {k: v for k, v in snapshot(run_a).items() if k != ".lock"} == {
        k: v for k, v in before.items() if k != ".lock"
    }


@pytest.mark.parametrize(
    "extra",
    [
        ["adapter.rank=0"],  # refused by the config check
        ["task.max_examples.train=3"],  # refused by the data check, after the model loaded
    ],
    ids=["config", "data"],
)
def test_a_refused_command_leaves_no_run_folder(tmp_path, extra):
    (tmp_path / "runs").mkdir()
    done = train([*TINY, *extra, f"hydra.run.dir={tmp_path / 'runs' / 'new' / 'deep'}"], tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    assert list((tmp_path / "runs").iterdir()) == []  # the folder that existed stays


def test_a_multirun_runs_every_job_and_reports_the_failed_one(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, "optimizer.lr=1e-3,nan,2e-3", f"hydra.sweep.dir={sweep}"]
    args.append("hydra.sweep.subdir=job${hydra.job.num}")
    done = train(args, tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "1 job(s) of the multirun failed" in done.stderr
    assert "job #1 (" in done.stderr and "optimizer.lr=nan" in done.stderr
    finished = sorted(p.parent.name for p in sweep.glob("*/summary.json"))
    assert finished == ["job0", "job2"]  # the job after the failed one ran too


def test_online_wandb_without_a_key_or_a_network_logs_offline(monkeypatch, caplog):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", "/nonexistent")
    monkeypatch.setattr(loggers, "_logged_in", lambda: False)
    with caplog.at_level(logging.WARNING):
        assert loggers.wandb_mode("online") == "offline"
    assert "no API key" in caplog.text and "wandb sync" in caplog.text

    caplog.clear()
    monkeypatch.setattr(loggers, "_logged_in", lambda: True)  # a key, and a closed port
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    with caplog.at_level(logging.WARNING):
        assert loggers.wandb_mode("auto") == "offline"
    assert "http://127.0.0.1:9 cannot be reached" in caplog.text
    assert len(caplog.records) == 1


def test_a_run_with_a_key_and_no_network_trains_offline(tmp_path):
    run_dir = tmp_path / "run"
    env = {"WANDB_MODE": "", "WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"}
    done = train([*TINY, "logger=wandb", f"hydra.run.dir={run_dir}"], tmp_path, **env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cannot be reached" in done.stdout + done.stderr
    assert list((run_dir / "wandb").glob("offline-run-*"))


def test_a_resume_refused_for_its_data_leaves_the_finished_run_byte_identical(tmp_path):
    """The data is read and checked before the run takes its directory: a source damaged
    after the run is named (exit 2) and metrics.csv, train.log and the rest stay as they were
    (the metrics file was cut to the checkpoint's step before the data was read)."""
    folder = tmp_path / "data" / "boolq"
    folder.mkdir(parents=True)
    record = {
        "instruction": "Is it? \n\nAnswer format: true/false",
        "input": "",
        "output": "the correct answer is true",
        "answer": "true",
    }
    flipped = dict(record, output="the correct answer is false", answer="false")
    (folder / "train.json").write_text(json.dumps([record, flipped] * 12))
    (folder / "test.json").write_text(json.dumps([record, flipped] * 4))
    run_dir = tmp_path / "run"
    args = [*TINY, "task=boolq", f"task.source={tmp_path / 'data'}", f"hydra.run.dir={run_dir}"]
    done = train(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    before = snapshot(run_dir)
    (folder / "test.json").write_text(json.dumps([record, {"instruction": "?"}]))
    again = train([*args, "resume=auto"], tmp_path)
    assert again.returncode == 2, again.stderr[-3000:]
    assert str(folder / "test.json") in again.stderr and "Traceback" not in again.stderr
    assert snapshot(run_dir) == before


def test_resume_auto_takes_the_checkpoint_with_the_most_steps(tmp_path):
    """A kill between ModelCheckpoint's two saves leaves step40.ckpt newer than last.ckpt."""
    from loralab.runs.checkpoints import AtomicCheckpointIO, find_resume_checkpoint

    folder = tmp_path / "checkpoints"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 20}, folder / "last.ckpt")
    io.save_checkpoint({"global_step": 40}, folder / "step40.ckpt")
    path, state = find_resume_checkpoint("auto", tmp_path)
    assert path == folder / "step40.ckpt" and state["global_step"] == 40
    io.save_checkpoint({"global_step": 40}, folder / "last.ckpt")
    assert find_resume_checkpoint("auto", tmp_path)[0] == folder / "last.ckpt"  # a tie
