"""OptimizerConfig (checked before any model exists), the shipped configs, and build-time errors."""

from pathlib import Path

import pytest
import yaml

from loralab import CONF_DIR
from loralab.adapters import adapter_modules
from loralab.optim import BUILT_IN_NAMES, VARIANTS, OptimizerConfig, build_optimizer
from loralab.optim.config import SCHEDULER_KEYS
from tests.helpers import compose_config

from .helpers import adapted_llama

GOOD = {"name": "rsgd", "lr": 0.1}


@pytest.mark.parametrize("name", BUILT_IN_NAMES)
def test_shipped_configs_name_the_variant_and_inherit_the_rest(name):
    raw = yaml.safe_load((Path(CONF_DIR) / "optimizer" / f"{name}.yaml").read_text())
    assert set(raw) == {"defaults", "name"}  # the name alone; settings come from the blocks
    composed = compose_config([f"optimizer={name}"]).optimizer
    fields = {f for f in OptimizerConfig.__dataclass_fields__}
    assert set(composed) == fields | {"family_lr"}  # every setting explicit in `--cfg job`
    assert set(composed.scheduler) == set(SCHEDULER_KEYS)
    cfg = OptimizerConfig.from_mapping(composed)
    assert cfg.name == name and VARIANTS[name][:3] == (cfg.base, cfg.riemannian, cfg.gate_rescale)
    assert cfg.router_lr == 3e-8 and cfg.delta == 1e-6 and cfg.router_clip == 1.0
    assert cfg.eps == OptimizerConfig.eps == 1e-6  # the YAML and the Python default agree
    assert cfg.lr == (1.6e-2 if cfg.base == "sgd" else 5e-3)
    assert cfg.scheduler == {
        "name": "linear",
        "warmup_steps": 0,
        "final_lr_fraction": 0.1,
        "total_steps": None,
    }


def test_the_family_and_its_lr_come_from_the_variant_table_alone():
    """No optimizer YAML states a family: the lr follows the name's base in VARIANTS, so a
    variant registered on AdamW gets the AdamW rate even composed from sgd.yaml."""
    from loralab.optim import register_variant

    register_variant("probe_adamw_family", base="adamw", riemannian=True, gate_rescale=False)
    try:
        composed = compose_config(["optimizer=sgd", "optimizer.name=probe_adamw_family"])
        assert composed.optimizer.lr == composed.optimizer.family_lr.adamw == 5e-3
        twin = compose_config(["experiment=paper_fig3_cpu", "optimizer.name=probe_adamw_family"])
        assert twin.optimizer.lr == 3.8e-4  # the twin's AdamW-family rate
    finally:
        VARIANTS.pop("probe_adamw_family")
    assert compose_config(["optimizer=radamw", "optimizer.lr=0.5"]).optimizer.lr == 0.5


@pytest.mark.parametrize(
    "table, match",
    [
        ({"sgd": 0.1, "adam": 0.1}, r"optimizer.family_lr=.* must be a mapping of sgd and adamw"),
        ({"sgd": -1.0}, r"optimizer.family_lr.sgd=-1.0 is invalid: must be a finite number > 0"),
    ],
)
def test_a_bad_family_lr_table_names_the_entry(table, match):
    with pytest.raises(ValueError, match=match):
        OptimizerConfig.from_mapping(dict(GOOD, family_lr=table))


def test_schedule_length_can_differ_from_the_run():
    """The paper's figure runs stop at step 500 of a schedule laid out for 2222 steps."""
    model = adapted_llama("lora")
    config = {
        "name": "rsgd",
        "lr": 1.0,
        "scheduler": {"name": "linear", "final_lr_fraction": 0.0, "total_steps": 2222},
    }
    optimizer, scheduler = build_optimizer(model, config, total_steps=500)
    for _ in range(500):
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1 - 500 / 2222)
    with pytest.raises(ValueError, match="scheduler.total_steps"):
        OptimizerConfig.from_mapping(config | {"scheduler": {"name": "linear", "total_steps": 0}})


def test_switches_follow_the_name():
    cfg = OptimizerConfig.from_mapping({"name": "gradamw", "lr": 1e-5})
    assert (cfg.base, cfg.riemannian, cfg.gate_rescale) == ("adamw", True, True)
    assert cfg.router_lr is None and cfg.scheduler is None and cfg.betas == (0.9, 0.999)
    agreeing = {"name": "gradamw", "lr": 1e-5, "base": "adamw", "gate_rescale": True}
    assert OptimizerConfig.from_mapping(agreeing) == cfg  # stating them is allowed, not needed


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"name": "adam"}, "name='adam'.*sgd, gsgd, rsgd, grsgd, adamw, gadamw, radamw, gradamw"),
        ({"name": None}, "optimizer.name=None"),
        ({"lr": 0}, r"optimizer.lr=0 is invalid: must be a finite number > 0"),
        ({"lr": -1e-3}, "optimizer.lr=-0.001"),
        ({"lr": "fast"}, "optimizer.lr='fast'"),
        ({"lr": True}, "optimizer.lr=True"),
        ({"delta": 0.0}, r"optimizer.delta=0.0 is invalid: must be a finite number > 0"),
        ({"router_lr": -1.0}, "optimizer.router_lr=-1.0 is invalid"),
        ({"betas": [0.9]}, r"optimizer.betas=\[0.9\] is invalid: must be two numbers in \[0, 1\)"),
        ({"betas": [0.9, 1.0]}, "optimizer.betas"),
        ({"betas": "0.9,0.99"}, "optimizer.betas"),
        ({"eps": 0}, "optimizer.eps=0"),
        ({"momentum": 1.0}, r"optimizer.momentum=1.0 is invalid: must be a number in \[0, 1\)"),
        ({"weight_decay": -0.1}, "optimizer.weight_decay=-0.1"),
        ({"router_clip": -1}, "optimizer.router_clip=-1"),
        ({"base": "adamw"}, "name='rsgd' means base=sgd.*sets base=adamw.*optimizer=radamw"),
        ({"router_base": "lion"}, "optimizer.router_base='lion'"),
        ({"bias_correction": "yes"}, "optimizer.bias_correction='yes' is invalid: must be true"),
        ({"riemannian": False}, "name='rsgd' means .*riemannian=True.*choose optimizer=sgd"),
        ({"gate_rescale": True}, "choose optimizer=grsgd"),
        ({"learning_rate": 0.1}, r"unknown optimizer key\(s\) \['learning_rate'\]; allowed keys"),
        ({"scheduler": {"name": "step"}}, "scheduler.name='step'.*linear, cosine, constant"),
        ({"scheduler": {"warmup_steps": 2}}, "scheduler.name=None"),
        ({"scheduler": {"name": "linear", "warmup": 2}}, r"unknown optimizer.scheduler key\(s\)"),
        ({"scheduler": {"name": "linear", "warmup_steps": -1}}, "scheduler.warmup_steps=-1"),
        ({"scheduler": {"name": "linear", "warmup_steps": 1.5}}, "scheduler.warmup_steps=1.5"),
        ({"scheduler": {"name": "cosine", "final_lr_fraction": 2}}, "final_lr_fraction=2"),
        ({"scheduler": "linear"}, "optimizer.scheduler must be a mapping"),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(override, match):
    with pytest.raises(ValueError, match=match):
        OptimizerConfig.from_mapping(GOOD | override)


def test_lr_is_required():
    with pytest.raises(ValueError, match="optimizer.lr is required"):
        OptimizerConfig.from_mapping({"name": "sgd"})


@pytest.mark.parametrize(("name", "on"), [("gsgd", True), ("sgd", False)])
def test_builder_checks_gate_rescaling_and_never_changes_the_adapters(name, on):
    model = adapted_llama("moe_lora")
    for _, layer in adapter_modules(model):
        layer.gate_rescale = not on
    with pytest.raises(ValueError, match=f"'{name}' .*gate_rescale={not on}: build the adapters"):
        build_optimizer(model, {"name": name, "lr": 0.1})
    assert all(layer.gate_rescale is (not on) for _, layer in adapter_modules(model))
    for _, layer in adapter_modules(model):
        layer.gate_rescale = on
    build_optimizer(model, {"name": name, "lr": 0.1})
    lora = adapted_llama("lora")  # no router: nothing to rescale, any variant builds
    build_optimizer(lora, {"name": "gsgd", "lr": 0.1})


def test_groups_and_no_scheduler_without_config():
    model = adapted_llama("moe_moslora")
    optimizer, scheduler = build_optimizer(model, {"name": "radamw", "lr": 1e-5, "router_lr": 3e-8})
    assert scheduler is None
    experts, router = optimizer.param_groups
    assert (experts["name"], experts["riemannian"], experts["lr"]) == ("experts", True, 1e-5)
    assert (router["name"], router["riemannian"], router["lr"]) == ("router", False, 3e-8)
    assert len(experts["params"]) == 3 * 8 and len(router["params"]) == 8


def test_model_without_adapters_is_an_error(tiny_llama):
    with pytest.raises(ValueError, match="no adapter layers"):
        build_optimizer(tiny_llama, GOOD)


def test_riemannian_without_trainable_pairs_is_an_error():
    model = adapted_llama("moe_lora")
    for _, layer in adapter_modules(model):
        layer.lora_A.requires_grad_(False)
        layer.lora_B.requires_grad_(False)
    with pytest.raises(ValueError, match="'rsgd' is Riemannian but .* no trainable adapter"):
        build_optimizer(model, GOOD)
    build_optimizer(model, {"name": "sgd", "lr": 0.1})  # the router alone trains plainly


def test_trainable_parameters_outside_adapters_are_an_error():
    model = adapted_llama("lora")
    model.lm_head.weight.requires_grad_(True)
    with pytest.raises(ValueError, match="lm_head.weight"):
        build_optimizer(model, GOOD)


def test_every_setting_reaches_the_optimizer_under_its_own_name():
    """OptimizerConfig's settings pass to AdapterOptimizer as they are: a setting added to one
    and not the other (or falling back to a default) fails here."""
    import inspect

    from loralab.optim.optimizer import AdapterOptimizer

    cfg = OptimizerConfig.from_mapping(compose_config(["optimizer=gradamw"]).optimizer)
    accepted = set(inspect.signature(AdapterOptimizer).parameters) - {"layers"}
    assert set(cfg.optimizer_arguments()) == accepted
