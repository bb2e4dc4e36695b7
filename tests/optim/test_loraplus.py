"""`optimizer=loraplus` against its definition (Hayou, Ghosh & Yu, ICML 2024; docs/methods.md,
"LoRA+ and LoRA-RITE"): torch.optim.AdamW with every lora_B at loraplus_ratio x the lr of
lora_A (and of the mixer), the router in its own group; nothing else differs."""

import copy

import pytest
import torch

from loralab.adapters import adapter_modules
from loralab.optim import OptimizerConfig, build_scheduler
from tests.helpers import compose_config

from .helpers import adapted_llama, backward, build_for, snapshot

STEPS = 4


@pytest.mark.parametrize(
    "kind, ratio", [("lora", 16.0), ("moslora", 16.0), ("moe_lora", 16.0), ("moe_moslora", 2.5)]
)
def test_loraplus_is_adamw_with_b_at_ratio_times_the_lr(kind, ratio):
    # float64: the comparison is of the rule, not of float32 rounding (tolerance: a few ulps
    # of float64 times the steps)
    model = adapted_llama(kind).double()
    twin, initial = copy.deepcopy(model), snapshot(model)
    lr, router_lr = 1e-3, 2e-3
    config = {
        "name": "loraplus",
        "lr": lr,
        "router_lr": router_lr,
        "router_clip": None,
        "weight_decay": 0.1,
        "loraplus_ratio": ratio,
        "scheduler": {"name": "linear", "final_lr_fraction": 0.5},
    }
    optimizer, scheduler = build_for(model, config, total_steps=STEPS)
    layers = [layer for _, layer in adapter_modules(twin)]
    groups = [
        {"params": [p for m in layers for p in (m.lora_A, m.mixer) if p is not None], "lr": lr},
        {"params": [m.lora_B for m in layers], "lr": ratio * lr},
    ]
    routers = [m.router.weight for m in layers if m.router is not None]
    if routers:
        groups.append({"params": routers, "lr": router_lr})
    reference = torch.optim.AdamW(groups, weight_decay=0.1, eps=1e-6, foreach=False)
    reference_schedule = build_scheduler(
        reference, "linear", total_steps=STEPS, final_lr_fraction=0.5
    )
    names = [g["name"] for g in optimizer.param_groups]
    assert names == ["experts", "lora_B", *(["router"] if routers else [])]
    assert optimizer.param_groups[1]["lr"] == pytest.approx(ratio * optimizer.param_groups[0]["lr"])
    for step in range(STEPS):
        for net in (model, twin):
            net.zero_grad()
            backward(net, seed=step)
        optimizer.step()
        reference.step()
        scheduler.step()
        reference_schedule.step()
    ours, theirs = snapshot(model), snapshot(twin)
    tolerance = 64 * STEPS * torch.finfo(torch.float64).eps
    moved = 0
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=tolerance, atol=tolerance)
        moved += not torch.equal(ours[name], initial[name])
    assert moved == len(ours)  # every adapter tensor took part


def test_loraplus_differs_from_adamw_only_in_b():
    """With ratio 1, LoRA+ is AdamW exactly; with the default 16, only B's step is larger."""
    model, twin = adapted_llama("lora"), adapted_llama("lora")
    plus, _ = build_for(model, {"name": "loraplus", "lr": 1e-3, "loraplus_ratio": 1.0})
    adamw, _ = build_for(twin, {"name": "adamw", "lr": 1e-3})
    for net, optimizer in ((model, plus), (twin, adamw)):
        backward(net)
        optimizer.step()
    for (name, ours), theirs in zip(snapshot(model).items(), snapshot(twin).values(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0, msg=name)


def test_loraplus_config_ships_the_papers_ratio_and_the_adamw_family_lr():
    """(The shipped YAML's form and keys: tests/optim/test_build.py, for every built-in name.)"""
    composed = compose_config(["optimizer=loraplus"]).optimizer
    cfg = OptimizerConfig.from_mapping(composed)
    assert cfg.loraplus_ratio == OptimizerConfig.loraplus_ratio == 16.0
    assert cfg.lr == composed.family_lr.adamw and cfg.base == "adamw" and cfg.rule == "loraplus"
    assert not cfg.riemannian and not cfg.gate_rescale


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), "16", True])
def test_a_bad_ratio_is_refused_naming_key_value_and_range(bad):
    with pytest.raises(ValueError, match=r"optimizer.loraplus_ratio=.* is invalid: must be a"):
        OptimizerConfig.from_mapping({"name": "loraplus", "lr": 1e-3, "loraplus_ratio": bad})


def test_a_gate_rescaled_loraplus_is_one_registration_away():
    from loralab.optim import VARIANTS, register_variant

    register_variant(
        "gloraplus", base="adamw", riemannian=False, gate_rescale=True, rule="loraplus"
    )
    try:
        cfg = OptimizerConfig.from_mapping({"name": "gloraplus", "lr": 1e-3})
        assert cfg.rule == "loraplus" and cfg.gate_rescale and cfg.lr == 1e-3
        optimizer, _ = build_for(adapted_llama("moe_lora"), cfg)
        assert [g["name"] for g in optimizer.param_groups] == ["experts", "lora_B", "router"]
    finally:
        VARIANTS.pop("gloraplus")
    with pytest.raises(ValueError, match="rule='loraplus' is invalid: .* base='adamw'"):
        register_variant(
            "sloraplus", base="sgd", riemannian=False, gate_rescale=False, rule="loraplus"
        )
    with pytest.raises(ValueError, match="'loraplus' is built in"):
        register_variant("loraplus", base="adamw", riemannian=False, gate_rescale=False)
