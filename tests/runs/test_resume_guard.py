"""A resume that does not fit its checkpoint is refused before anything is written: the run
that wrote the checkpoint keeps every file byte for byte (exit 2, the differences named)."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.helpers import run_train as train
from tests.helpers import snapshot

TINY = [
    "model=tiny_llama",
    "trainer.precision=32-true",
    "logger=wandb",
    "adapter.num_experts=4",
    "adapter.top_k=2",
    "adapter.rank=4",
    "optimizer=grsgd",
    "optimizer.lr=1e-2",
    "trainer.max_steps=4",
    "optimizer.scheduler.total_steps=4",  # the schedule's length, kept when a run is extended
    "trainer.val_check_interval=4",
    "checkpoint.every_n_steps=2",
    "evaluation.before_training=false",
    "task.max_examples.train=32",
    "task.max_examples.validation=8",
    "task.max_examples.test=8",
]


def trained(cwd: Path, name: str = "run") -> Path:
    """A finished 4-step run in cwd/name (checkpoints every 2 steps; the newest, step4, kept)."""
    run_dir = cwd / name
    done = train([*TINY, f"hydra.run.dir={run_dir}"], cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("guard")
    return cwd, trained(cwd, "finished")


@pytest.mark.parametrize(
    "change,named",
    [
        ("adapter.rank=8", "adapter.rank=4 there -> 8 here"),
        ("optimizer.lr=0.05", "optimizer.lr=0.01 there -> 0.05 here"),
        ("optimizer=gradamw", "optimizer.name='grsgd' there -> 'gradamw' here"),
    ],
)
def test_mismatched_resume_is_refused_and_touches_nothing(finished, change, named):
    cwd, run_dir = finished
    before = snapshot(run_dir)
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    other = cwd / f"other-{change.split('=')[0]}"
    done = train([*TINY, change, f"resume={checkpoint}", f"hydra.run.dir={other}"], cwd)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "cannot resume from" in done.stderr and named in done.stderr
    assert "nothing was written" in done.stderr
    assert snapshot(run_dir) == before  # metrics.csv, W&B runs, checkpoints: all untouched


@pytest.mark.parametrize("extra", [[], ["adapter.rank=0"]], ids=["no_resume", "bad_value"])
def test_a_refused_command_leaves_the_finished_run_byte_identical(finished, extra):
    """Re-running into a finished run without resume=auto, or with a bad value: exit 2, and
    the run's own record (.hydra/config.yaml, overrides, train.log) is not rewritten."""
    cwd, run_dir = finished
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / ".hydra" / "overrides.yaml").is_file()
    before = snapshot(run_dir)
    done = train([*TINY, "adapter.rank=8", *extra, f"hydra.run.dir={run_dir}"], cwd)
    assert done.returncode == 2, done.stderr[-3000:]
    assert snapshot(run_dir) == before


def test_extending_a_run_is_allowed(finished):
    """The schedule keeps the 4 steps it was trained with (its length fixed); the added steps
    run at its final lr (tests/runs/test_exact_resume.py: it equals one longer run)."""
    cwd, run_dir = finished
    longer = ["trainer.max_steps=6", "resume=auto"]
    done = train([*TINY, *longer, f"hydra.run.dir={run_dir}"], cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "steps                 6" in done.stdout


def test_a_damaged_last_checkpoint_falls_back_to_the_newest_intact_one(tmp_path):
    run_dir = trained(tmp_path)
    last = run_dir / "checkpoints" / "last.ckpt"
    intact = run_dir / "checkpoints" / "step4.ckpt"
    assert intact.is_file()
    last.write_bytes(last.read_bytes()[:1000])  # a kill mid-copy, a full disk...

    explicit = train([*TINY, f"resume={last}", f"hydra.run.dir={tmp_path / 'x'}"], tmp_path)
    assert explicit.returncode == 2, explicit.stderr[-3000:]
    assert "the checkpoint cannot be read" in explicit.stderr and "step4.ckpt" in explicit.stderr

    auto = train(
        [*TINY, "trainer.max_steps=6", "resume=auto", f"hydra.run.dir={run_dir}"], tmp_path
    )
    assert auto.returncode == 0, auto.stderr[-3000:]
    printed = auto.stdout + auto.stderr
    assert f"skipping {last}" in printed and f"from step 4 ({intact})" in printed
    assert "steps                 6" in auto.stdout


def test_resuming_from_a_step_checkpoint_leaves_no_versioned_copies(tmp_path):
    """Lightning's version counter wrote last-v1.ckpt beside last.ckpt: one last.ckpt only."""
    run_dir = trained(tmp_path)
    step = run_dir / "checkpoints" / "step4.ckpt"
    again = train(
        [*TINY, "trainer.max_steps=6", f"resume={step}", f"hydra.run.dir={run_dir}"], tmp_path
    )
    assert again.returncode == 0, again.stderr[-3000:]
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert "last.ckpt" in names and "step6.ckpt" in names
    assert not [name for name in names if "-v" in name], names


def test_truncating_metrics_keeps_lines_byte_for_byte_and_names_a_junk_line(tmp_path):
    from loralab.runs.loggers import MetricsFileError, truncate_metrics

    metrics = tmp_path / "metrics.csv"
    rows = "step,train/loss,test/acc\n0,,0.25\n1,2.5,\n28,1.0,\n30,0.5,\n"
    metrics.write_text(rows + "31,0.4")  # the unterminated last line of a killed write
    truncate_metrics(metrics, 30)
    assert metrics.read_text() == "step,train/loss,test/acc\n0,,0.25\n1,2.5,\n28,1.0,\n"

    metrics.write_text(rows.replace("1,2.5,\n", "1,2.5,\ngarbage line\n"))
    before = metrics.read_bytes()
    with pytest.raises(MetricsFileError, match=r"metrics.csv: line 4 is not a row"):
        truncate_metrics(metrics, 30)
    assert metrics.read_bytes() == before


def test_a_garbled_metrics_file_stops_the_resume_with_exit_2(finished, tmp_path):
    import shutil

    cwd, run_dir = finished
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    metrics = copy / "metrics.csv"
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text("".join([*lines[:2], "1,2,junk,,\n", *lines[2:]]))
    before = snapshot(copy)
    done = train([*TINY, "trainer.max_steps=6", "resume=auto", f"hydra.run.dir={copy}"], cwd)
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"{metrics}: line 3 is not a row" in done.stderr
    after = snapshot(copy)
    # the run's own log records the attempt (resume=auto in its own folder); nothing else moves
    assert after.pop("train.log").startswith(before.pop("train.log"))
    assert after == before


def test_runs_that_recorded_the_optimizer_switches_still_resume():
    """Earlier runs recorded optimizer.base / riemannian / gate_rescale and adapter.gate_rescale
    in their checkpoints; the name fixes them, so they are no difference. Other keys still are."""
    from loralab.runs.checkpoints import resume_mismatches, run_identity
    from tests.helpers import compose_config

    resolved = OmegaConf.to_container(compose_config(["experiment=smoke"]), resolve=True)
    old = run_identity(resolved)
    old["optimizer"] = dict(old["optimizer"], base="adamw", riemannian=True, gate_rescale=True)
    old["adapter"] = dict(old["adapter"], gate_rescale=False)
    assert resume_mismatches({"loralab_run": old}, resolved, {}) == []
    old["optimizer"]["lr"] = 1.0
    assert resume_mismatches({"loralab_run": old}, resolved, {}) == [
        "optimizer.lr=1.0 there -> 0.005 here"
    ]
