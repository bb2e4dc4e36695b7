"""Save mid-run, restore into fresh objects, take one step: identical to never stopping."""

import pytest
import torch

from .helpers import adapted_llama, backward, build_for, snapshot

CONFIGS = {
    "radamw": {"name": "gradamw", "lr": 1e-3, "router_lr": 1e-3, "weight_decay": 0.01},
    "rsgd_momentum": {"name": "rsgd", "lr": 1e-2, "router_lr": 1e-2, "momentum": 0.9},
}
SCHEDULE = {"name": "cosine", "warmup_steps": 2, "final_lr_fraction": 0.1}


def _train(model, optimizer, scheduler, steps):
    for step in steps:
        backward(model, seed=step)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()


@pytest.mark.parametrize("variant", list(CONFIGS))
def test_restored_run_takes_the_identical_next_step(variant, tmp_path):
    config = CONFIGS[variant] | {"scheduler": SCHEDULE}
    model = adapted_llama("moe_moslora")
    optimizer, scheduler = build_for(model, config, total_steps=10)
    _train(model, optimizer, scheduler, range(3))
    checkpoint = {
        "adapters": snapshot(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
    }
    torch.save(checkpoint, tmp_path / "ckpt.pt")
    _train(model, optimizer, scheduler, [3])

    fresh = adapted_llama("moe_moslora", seed=1)  # other adapter init: the load must matter
    restored = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    fresh.load_state_dict(restored["adapters"], strict=False)
    fresh_optimizer, fresh_scheduler = build_for(fresh, config, total_steps=10)
    fresh_optimizer.load_state_dict(restored["optimizer"])
    fresh_scheduler.load_state_dict(restored["scheduler"])
    assert [g["step"] for g in fresh_optimizer.param_groups] == [3, 3]
    _train(fresh, fresh_optimizer, fresh_scheduler, [3])

    expected = snapshot(model)
    for name, value in snapshot(fresh).items():
        assert torch.equal(value, expected[name]), name
    assert fresh_scheduler.get_last_lr() == scheduler.get_last_lr()
