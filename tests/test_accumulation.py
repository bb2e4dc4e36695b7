"""Under gradient accumulation every interval counts optimizer steps, and the logged training
loss of a step is the mean over its micro-batches (the reference's loss over the effective
batch), checked against the micro-batches replayed by hand."""

import pandas as pd
import pytest
import torch

from loralab.cli.train import lightning_trainer_args, run
from loralab.data.datamodule import TaskDataModule
from loralab.data.sampler import ResumableSampler
from loralab.models import load_model
from loralab.tasks import build_task
from tests.helpers import answer_loss, compose_config

ACCUMULATE, STEPS, BATCH = 3, 8, 4
OVERRIDES = [
    "model=tiny_llama",
    "trainer.precision=32-true",
    "logger=csv",
    "adapter.dropout=0.0",
    "optimizer=sgd",
    "optimizer.lr=1e-12",  # weights stay put: every micro-batch loss is the untrained one
    "optimizer.router_lr=1e-12",
    f"data.batch_size={BATCH}",
    f"trainer.accumulate_grad_batches={ACCUMULATE}",
    f"trainer.max_steps={STEPS}",
    "trainer.val_check_interval=4",
    "evaluation.router_stats_every=2",
    "evaluation.before_training=false",
    "checkpoint.every_n_steps=4",
    "task.max_examples.train=40",  # 10 batches: 3 whole optimizer steps per pass, 1 left out
    "task.max_examples.validation=8",
    "task.max_examples.test=8",
]


@pytest.fixture(scope="module")
def accumulated_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("accumulate")
    cfg = compose_config(OVERRIDES)
    summary, _ = run(cfg, run_dir)
    return cfg, summary, pd.read_csv(run_dir / "metrics.csv")


def test_intervals_count_optimizer_steps(accumulated_run):
    _, summary, metrics = accumulated_run
    assert summary["steps"] == STEPS
    # validation at step 0 and after optimizer steps 4 and 8, logged at the step it evaluated
    assert metrics.dropna(subset=["val/acc"])["step"].tolist() == [0, 4, 8]
    assert metrics.dropna(subset=["train/loss"])["step"].tolist() == list(range(STEPS))
    assert metrics.dropna(subset=["router/entropy"])["step"].tolist() == [0, 2, 4, 6]
    assert metrics.dropna(subset=["lr/experts"])["step"].tolist() == list(range(STEPS))


def test_checkpoints_at_optimizer_steps(accumulated_run):
    _, summary, _ = accumulated_run
    from pathlib import Path

    from loralab.runs.checkpoints import CHECKPOINT_DIR, safe_load

    saved = sorted(Path(summary["run_dir"], CHECKPOINT_DIR).glob("step*.ckpt"))
    assert [p.name for p in saved] == [f"step{STEPS}.ckpt"]  # the latest of steps 4 and 8
    assert safe_load(saved[0])["global_step"] == STEPS


def test_logged_loss_is_the_mean_over_the_micro_batches(accumulated_run):
    cfg, _, metrics = accumulated_run
    model, tokenizer = load_model(cfg.model)  # B = 0: the adapted model equals the base
    data = TaskDataModule(build_task(cfg.task), tokenizer, dict(cfg.data, seed=cfg.seed))
    data.setup()
    items = data.encoded["train"]
    sampler = ResumableSampler(len(items), BATCH, cfg.seed, accumulate=ACCUMULATE)
    order = [i for _ in range(3) for i in sampler]  # three passes cover 8 steps x 3 batches
    with torch.no_grad():
        micro = [
            answer_loss(model.eval(), data.collate([items[i] for i in order[b : b + BATCH]]))
            for b in range(0, ACCUMULATE * STEPS * BATCH, BATCH)
        ]
    logged = metrics.dropna(subset=["train/loss"])["train/loss"].tolist()
    for step in range(STEPS):
        losses = torch.stack(micro[step * ACCUMULATE : (step + 1) * ACCUMULATE])
        assert logged[step] == pytest.approx(losses.mean().item(), rel=1e-5), step
    last = [micro[(s + 1) * ACCUMULATE - 1].item() for s in range(STEPS)]
    assert any(abs(a - b) > 1e-3 for a, b in zip(logged, last, strict=True))  # not the last one


def test_a_pass_holds_whole_optimizer_steps():
    sampler = ResumableSampler(40, 4, seed=0, accumulate=3)
    assert sampler.batches_per_epoch == 9 and len(list(sampler)) == 36
    with pytest.raises(ValueError, match="fewer than one optimizer step"):
        ResumableSampler(8, 4, seed=0, accumulate=3)


def test_lightning_gets_the_interval_in_batches():
    args = lightning_trainer_args({"val_check_interval": 100, "accumulate_grad_batches": 10}, "32")
    assert args["val_check_interval"] == 1000 and args["precision"] == "32"
    assert lightning_trainer_args({"val_check_interval": 0.5}, "32")["val_check_interval"] == 0.5
