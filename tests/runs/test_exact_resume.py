"""A resumed run is the same run: killed at any step (mid-epoch, at an epoch's last batch,
one step after a checkpoint, by SIGKILL, SIGTERM or Ctrl+C) and resumed with resume=auto, it
ends with the adapter bytes and every metrics.csv byte of the uninterrupted run, and reports
the wall time its checkpoint recorded plus its own; extending max_steps equals one longer run."""

import json
import signal
from pathlib import Path

import torch
from safetensors.torch import load_file

from loralab.runs.checkpoints import safe_load
from tests.helpers import run_train as train
from tests.helpers import snapshot

# 48 examples in batches of 8, two batches an optimizer step: 3 steps an epoch, 9 steps = 3
# epochs; dropout on (0.05), validation every 4 steps, so kills fall mid-epoch, on an epoch's
# last batch, between the accumulated batches of a step and at a validation step.
THREE_EPOCHS = [
    "model=tiny_llama",
    "trainer.precision=32-true",
    "logger=csv",
    "adapter.num_experts=4",
    "adapter.top_k=2",
    "optimizer=gradamw",
    "optimizer.lr=1e-2",
    "trainer.max_steps=9",
    "trainer.accumulate_grad_batches=2",
    "trainer.val_check_interval=4",
    "trainer.deterministic=true",
    "evaluation.before_training=false",
    "task.max_examples.train=48",
    "task.max_examples.validation=8",
    "task.max_examples.test=8",
]


def last_step(run_dir: Path) -> int:
    return safe_load(run_dir / "checkpoints" / "last.ckpt")["global_step"]


def assert_same_run(expected: Path, actual: Path) -> None:
    reference = load_file(expected / "adapter" / "adapter.safetensors")
    resumed = load_file(actual / "adapter" / "adapter.safetensors")
    assert reference.keys() == resumed.keys()
    for key in reference:
        assert reference[key].dtype == resumed[key].dtype
        assert reference[key].numpy().tobytes() == resumed[key].numpy().tobytes(), key
    assert (actual / "metrics.csv").read_bytes() == (expected / "metrics.csv").read_bytes()


def test_killed_at_any_step_and_resumed_equals_the_uninterrupted_run(tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    done = train([*THREE_EPOCHS, "checkpoint.every_n_steps=1", f"hydra.run.dir={whole}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    # (checkpoint cadence, signal, sent at step, exit code, steps in the checkpoint kept)
    kills = [
        (1, "SIGKILL", 4, -signal.SIGKILL, 4),  # mid-epoch 2 (after its first step)
        (1, "SIGKILL", 6, -signal.SIGKILL, 6),  # resumed from epoch 2's last batch
        (2, "SIGKILL", 7, -signal.SIGKILL, 6),  # one step after a checkpoint, step 7 lost
        (4, "SIGINT", 7, 128 + signal.SIGINT, 8),  # Ctrl+C: the step ends, then a save
        (4, "SIGTERM", 8, 128 + signal.SIGTERM, 9),  # at the last step
    ]
    resume = []
    for every, name, step, code, kept in kills:
        args = [f"checkpoint.every_n_steps={every}", f"debug.kill_at_step={step}"]
        args += [f"debug.kill_signal={name}", f"hydra.run.dir={parts}", *resume]
        killed = train([*THREE_EPOCHS, *args], tmp_path)
        assert killed.returncode == code, (name, step, killed.stderr[-3000:])
        assert last_step(parts) == kept, (name, step)
        if name != "SIGKILL":  # a stop says where the checkpoint is and how to continue
            assert f"stopped by {name} after step {kept}" in killed.stderr
            assert f"resume=auto hydra.run.dir={parts}" in killed.stderr
            assert not (parts / "adapter").exists()  # a stopped run writes no final outputs
        resume = ["resume=auto"]

    # the wall time of the processes before: what the checkpoint records, here marked large
    last = parts / "checkpoints" / "last.ckpt"
    state = safe_load(last)
    assert state["loralab_wall_time_s"] > 0
    torch.save(state | {"loralab_wall_time_s": 1e6}, last)

    resumed = train([*THREE_EPOCHS, "resume=auto", f"hydra.run.dir={parts}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "steps                 9" in resumed.stdout
    assert_same_run(whole, parts)
    wall_time = json.loads((parts / "summary.json").read_text())["wall_time_s"]
    assert 1e6 < wall_time < 1e6 + 3600  # the earlier processes' time, plus this one's


def test_extending_max_steps_equals_one_longer_run_and_a_stretched_schedule_is_refused(
    tmp_path,
):
    """With the schedule's length fixed (here 12 steps), a 6-step run extended to 12 is the
    12-step run: the adapter and every metrics row (the 6-step run's final test row goes).
    Where the length follows max_steps (total_steps null), extending would change the lr of
    the steps already taken: refused, naming the fix, the run keeping every byte."""
    common = [*THREE_EPOCHS, "optimizer.scheduler.total_steps=12", "checkpoint.every_n_steps=4"]
    longer, extended = tmp_path / "longer", tmp_path / "extended"
    done = train([*common, "trainer.max_steps=12", f"hydra.run.dir={longer}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    done = train([*common, "trainer.max_steps=6", f"hydra.run.dir={extended}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    before = snapshot(extended)
    stretched = [*common, "optimizer.scheduler.total_steps=null", "trainer.max_steps=13"]
    done = train([*stretched, "resume=auto", f"hydra.run.dir={extended}"], tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "optimizer.scheduler.total_steps=12 there -> 13 here" in done.stderr
    assert "add optimizer.scheduler.total_steps=12" in done.stderr
    assert snapshot(extended) == before

    again = [*common, "trainer.max_steps=12", "resume=auto", f"hydra.run.dir={extended}"]
    done = train(again, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_run(longer, extended)
