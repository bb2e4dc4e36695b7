"""Every option of every config group composes with the real Hydra, and validates."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from loralab import CONF_DIR
from loralab.validation import validate_config
from tests.helpers import compose_config

GROUPS = ["model", "adapter", "optimizer", "task", "trainer", "logger", "experiment"]


# Building blocks of the CPU twins: experiment files that only make sense inside a twin.
BLOCKS = {"cpu_twin", "cpu_twin_scienceqa"}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml") if p.stem not in BLOCKS)


@pytest.mark.parametrize(
    "group,option", [(g, o) for g in GROUPS for o in options(g)], ids=lambda v: str(v)
)
def test_every_option_composes_and_validates(group, option):
    extra = ["optimizer=adamw"] if option in ("fsdp", "deepspeed") else []  # see test below
    cfg = compose_config([f"{group}={option}", *extra])
    OmegaConf.resolve(cfg)
    validate_config(cfg)
    if group != "experiment":
        assert cfg[group]["name" if "name" in cfg[group] else next(iter(cfg[group]))] is not None


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), f"config group {group} is empty"


def test_default_is_the_papers_method():
    cfg = compose_config([])
    assert cfg.adapter.kind == "moe_lora"
    assert cfg.optimizer.riemannian and cfg.optimizer.gate_rescale
    assert cfg.model.name == "smollm2_135m"
    assert cfg.task.name == "demo"


def test_sharded_trainers_refuse_riemannian_optimizers():
    from loralab.validation import ConfigError

    for trainer in ("fsdp", "deepspeed"):
        with pytest.raises(ConfigError, match="preconditions whole"):
            validate_config(compose_config([f"trainer={trainer}", "optimizer=grsgd"]))


PAPER = ["paper_fig2", "paper_fig3", "paper_scienceqa", "paper_adamw", "moslora_commonsense"]


@pytest.mark.parametrize("name", PAPER)
def test_paper_experiments_state_the_papers_settings(name):
    cfg = compose_config([f"experiment={name}"])
    OmegaConf.resolve(cfg)
    assert cfg.model.name == "llama3_2_3b"
    if name == "moslora_commonsense":
        assert (cfg.adapter.rank, cfg.adapter.alpha, cfg.optimizer.lr) == (16, 32, 3e-4)
        assert cfg.optimizer.scheduler.warmup_steps == 100
        return
    assert (cfg.adapter.num_experts, cfg.adapter.top_k, cfg.adapter.rank) == (20, 10, 4)
    assert cfg.optimizer.lr == (3e-5 if cfg.optimizer.base == "sgd" else 1e-5)
    assert cfg.optimizer.router_lr == 3e-8
    assert cfg.data.batch_size * cfg.trainer.accumulate_grad_batches == 80
    assert cfg.optimizer.scheduler.total_steps == 2222
    assert cfg.task.max_examples.validation is None  # the whole split, as the reference
    assert cfg.data.target_layout == "reference"
    assert cfg.evaluation.generate_every == 100 and cfg.evaluation.max_new_tokens == 10
    assert not cfg.optimizer.bias_correction and cfg.optimizer.eps == 1e-6
    assert cfg.optimizer.precondition_b_with_updated_a == (cfg.optimizer.base == "adamw")


def test_paper_sweeps_name_the_papers_variants():
    sweeps = {name: compose_sweep(name) for name in PAPER}
    assert sweeps["paper_fig2"]["optimizer"] == "rsgd,grsgd"
    assert sweeps["paper_fig3"]["optimizer"] == "sgd,gsgd,rsgd,grsgd"
    assert len(sweeps["paper_scienceqa"]["optimizer"].split(",")) == 8
    assert sweeps["moslora_commonsense"]["adapter"] == "lora,moslora"


def compose_sweep(name: str) -> dict:
    return dict(compose_config([f"experiment={name}"], hydra=True).hydra.sweeper.params)


def test_obqa_experiment_runs_the_papers_optimizer_grid_on_openbookqa():
    cfg = compose_config(["experiment=paper_obqa", "optimizer=radamw"])
    OmegaConf.resolve(cfg)
    assert cfg.task.name == "obqa" and cfg.model.name == "llama3_2_3b"
    assert (cfg.adapter.num_experts, cfg.adapter.top_k, cfg.adapter.rank) == (20, 10, 4)
    assert cfg.optimizer.lr == 1e-5 and not cfg.optimizer.bias_correction
    assert cfg.data.batch_size * cfg.trainer.accumulate_grad_batches == 80
    assert cfg.task.max_examples.validation == 120
    assert len(compose_sweep("paper_obqa")["optimizer"].split(",")) == 8


@pytest.mark.parametrize(
    "twin", ["paper_fig2_cpu", "paper_fig3_cpu", "paper_scienceqa_cpu", "paper_adamw_cpu"]
)
def test_scienceqa_twins_keep_the_papers_method_and_grid_on_real_data(twin):
    """A twin changes the model, scale and rates, never the method or the variants."""
    paper = twin.removesuffix("_cpu")
    cfg = compose_config([f"experiment={twin}", "data_root=/data"])
    OmegaConf.resolve(cfg)
    assert cfg.model.name == "smollm2_135m" and cfg.task.name == "scienceqa"
    assert cfg.task.source.test == "/data/scienceqa/hf_sample"
    assert list(cfg.task.source.train) == [
        "/data/scienceqa/original_partial",
        "/data/scienceqa/hf_sample",
    ]
    assert (cfg.adapter.num_experts, cfg.adapter.top_k, cfg.adapter.rank) == (20, 10, 4)
    assert cfg.data.target_layout == "reference" and not cfg.optimizer.bias_correction
    assert cfg.optimizer.router_lr == 3e-8
    assert compose_sweep(twin)["optimizer"] == compose_sweep(paper)["optimizer"]
