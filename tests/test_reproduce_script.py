"""scripts/reproduce.sh end to end at a tiny size: the grid split over two parallel multiruns
(JOBS=2) lands in one folder, one run per optimizer, and is drawn."""

import os
import subprocess
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def test_reproduce_splits_the_grid_over_jobs_and_draws_it(tmp_path):
    runs, figures = tmp_path / "runs", tmp_path / "figures"
    overrides = [
        "model=tiny_llama",
        "task=demo",  # the twin reads real ScienceQA; the script's mechanics need no data
        "task.source=bundled",
        "~task.drop_repeats",  # the twin's setting for its ScienceQA sources
        "seed=0",
        "logger=csv",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "evaluation.before_training=false",
        "task.max_examples.train=16",
        "task.max_examples.validation=8",
        "task.max_examples.test=8",
    ]
    environ = dict(
        os.environ, JOBS="2", RUNS_DIR=str(runs), FIGURES_DIR=str(figures), WANDB_MODE="offline"
    )
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "reproduce_fig3.sh"), "cpu", *overrides],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "job 0: optimizer=sgd,rsgd" in done.stdout
    assert "job 1: optimizer=gsgd,grsgd" in done.stdout
    names = [p.name for p in runs.iterdir() if p.is_dir()]  # named by their overrides
    chosen = sorted(part for name in names for part in name.split(",") if "optimizer=" in part)
    assert chosen == [f"optimizer={o}" for o in ("grsgd", "gsgd", "rsgd", "sgd")]
    for run in runs.iterdir():
        if run.is_dir():
            assert len(pd.read_csv(run / "metrics.csv")["train/loss"].dropna()) == 2
    table = (figures / "accuracy.md").read_text()
    for optimizer in ("sgd", "gsgd", "rsgd", "grsgd"):
        assert f"| demo-moe_lora-{optimizer} | 1 |" in table
    assert (figures / "train_loss.png").stat().st_size > 10_000


def test_reproduce_refuses_an_optimizer_override_when_splitting(tmp_path):
    """JOBS=N assigns the optimizers itself; a user's optimizer= would make jobs collide."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "reproduce_fig3.sh"), "cpu", "optimizer=grsgd"],
        capture_output=True,
        text=True,
        env=dict(os.environ, JOBS="2", RUNS_DIR=str(tmp_path / "runs")),
        timeout=60,
    )
    assert done.returncode == 2 and "optimizer=grsgd" in done.stderr
    assert not (tmp_path / "runs").exists()
