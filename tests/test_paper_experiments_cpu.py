"""Each paper experiment's CPU twin runs to completion (at a tiny step count) on the embedded
model, for every variant its sweep names."""

import pytest
from conftest import compose_config

from loralab.train import run

TWINS = {
    "paper_fig2_cpu": "optimizer=grsgd",
    "paper_fig3_cpu": "optimizer=sgd",
    "paper_scienceqa_cpu": "optimizer=radamw",
    "paper_adamw_cpu": "optimizer=gadamw",
    "moslora_commonsense_cpu": "adapter=lora",
}


@pytest.mark.integration
@pytest.mark.parametrize("name", list(TWINS))
def test_cpu_twin_runs(name, tmp_path):
    overrides = [
        f"experiment={name}",
        TWINS[name],
        "logger=csv",
        "trainer.max_steps=2",
        "optimizer.scheduler.warmup_steps=0",
        "trainer.val_check_interval=2",
        "task.max_examples.train=16",
        "task.max_examples.validation=4",
        "task.max_examples.test=4",
    ]
    cfg = compose_config(overrides)
    summary, _ = run(cfg, tmp_path)
    assert summary["steps"] == 2
    assert (tmp_path / "adapter" / "adapter.safetensors").is_file()
