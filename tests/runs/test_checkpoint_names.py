"""A step checkpoint's file name is the optimizer step it holds, also where evaluations log the
step they evaluated (Lightning names files by a logged ``step`` first)."""

import torch

from loralab.cli.train import run
from tests.helpers import compose_config


def test_step_checkpoint_is_named_by_the_step_it_holds(tmp_path):
    cfg = compose_config(
        [
            "experiment=smoke",
            "logger=csv",
            "trainer.max_steps=8",
            "trainer.val_check_interval=2",  # a validation logs its step before every save
            "checkpoint.every_n_steps=4",
            "task.max_examples.test=8",
            "task.max_examples.validation=8",
        ]
    )
    run(cfg, tmp_path)
    files = sorted((tmp_path / "checkpoints").glob("step*.ckpt"))
    assert [f.name for f in files] == ["step8.ckpt"]
    saved = torch.load(files[0], map_location="cpu", weights_only=True)
    assert saved["global_step"] == 8
