"""Each config group's keys are declared once, in its settings class (loralab.cli.settings), and
``--help`` is generated from those declarations with the composed values."""

import dataclasses

import pytest
from omegaconf import OmegaConf

from loralab.adapters import AdapterConfig
from loralab.cli.settings import EVAL_GROUPS, TRAIN_GROUPS
from loralab.cli.settings.trainer import TrainerSettings
from loralab.optim import OptimizerConfig
from tests.helpers import compose_config, run_cli


def declared(cls, values, prefix=""):
    """The keys of `values` that `cls` (and its nested groups) declare, and those it does not."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    known, unknown = [], []
    for key, value in values.items():
        field = fields.get(key)
        if field is None:
            unknown.append(prefix + key)
        elif field.metadata["group"] is not None and isinstance(value, dict):
            more_known, more_unknown = declared(field.metadata["group"], value, f"{prefix}{key}.")
            known += more_known
            unknown += more_unknown
        else:
            known.append(prefix + key)
    return known, unknown


@pytest.mark.parametrize(
    "entry,overrides",
    [
        ("train", []),
        ("train", ["model=tiny_llama", "trainer=ddp"]),
        ("train", ["logger=csv", "trainer=gpu"]),
        ("eval", ["model=tiny_llama"]),
    ],
)
def test_every_key_of_a_typed_group_is_declared_with_a_rule_or_as_free_text(entry, overrides):
    config = OmegaConf.to_container(compose_config(overrides, name=entry), resolve=False)
    groups = TRAIN_GROUPS if entry == "train" else EVAL_GROUPS
    untyped = {"adapter", "optimizer", "task", "hydra"}  # checked by their own classes
    for key, cls in groups.items():
        if key:
            _, unknown = declared(cls, config[key], f"{key}.")
        else:
            top = {k: v for k, v in config.items() if k not in {*groups, *untyped}}
            _, unknown = declared(cls, top)
        assert unknown == [], f"{entry}: keys without a declaration in {cls.__name__}"


def test_help_lists_each_setting_with_its_composed_value_and_declared_help(tmp_path):
    args = ["experiment=paper_fig3_cpu", "trainer.max_steps=7", "--help"]
    done = run_cli("loralab.cli.train", args, tmp_path)
    assert done.returncode == 0, done.stderr
    help_text = {f.name: f.metadata["help"] for f in dataclasses.fields(TrainerSettings)}
    lines = done.stdout.splitlines()
    at = lines.index("  trainer.max_steps=7")  # the override, not the config's 100
    assert lines[at + 1].strip().startswith(help_text["max_steps"])
    assert "  data.target_layout=reference" in lines  # the experiment's own value
    adapter_help = {f.name: f.metadata["help"] for f in dataclasses.fields(AdapterConfig)}
    at = lines.index("  adapter.kind=moe_lora")  # AdapterConfig's own help
    assert lines[at + 1].strip() == adapter_help["kind"]
    optimizer_help = {f.name: f.metadata["help"] for f in dataclasses.fields(OptimizerConfig)}
    at = lines.index("  optimizer.loraplus_ratio=16.0")  # OptimizerConfig's own help
    assert lines[at + 1].strip() == optimizer_help["loraplus_ratio"]
    for key in ("seed", "model.dtype", "evaluation.num_beams", "debug.kill_signal"):
        assert any(line.startswith(f"  {key}=") for line in lines), key
