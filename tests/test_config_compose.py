"""Every option of every config group composes with the real Hydra, and validates."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from loralab import CONF_DIR
from loralab.cli.settings import machine
from loralab.cli.validation import validate_config
from loralab.optim import variant
from tests.helpers import compose_config

GROUPS = ["model", "adapter", "optimizer", "task", "trainer", "logger", "experiment"]


@pytest.fixture(autouse=True)
def a_gpu_machine(monkeypatch):
    """Check the configs as on the machines the GPU ones are for: GPUs and DeepSpeed there."""
    monkeypatch.setattr(machine, "gpu_count", lambda: 8)
    monkeypatch.setattr(machine, "installed", lambda package: True)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "group,option", [(g, o) for g in GROUPS for o in options(g)], ids=lambda v: str(v)
)
def test_every_option_composes_and_validates(group, option):
    extra = ["optimizer=adamw"] if option in ("fsdp", "deepspeed") else []  # see test below
    cfg = compose_config([f"{group}={option}", *extra])
    OmegaConf.resolve(cfg)
    validate_config(cfg)
    if group in ("model", "adapter", "optimizer", "task"):
        assert cfg[group].get("name", cfg[group].get("kind")) == option
    elif group == "trainer":
        assert cfg.trainer.accelerator and cfg.trainer.max_steps >= 1


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), f"config group {group} is empty"


def test_default_is_the_papers_method_on_the_demo_with_nothing_hidden():
    cfg = compose_config([], hydra=True)
    assert cfg.adapter.kind == "moe_lora" and cfg.optimizer.name == "gradamw"
    assert cfg.model.name == "smollm2_135m" and cfg.task.name == "demo"
    assert cfg.hydra.runtime.choices.experiment is None  # no experiment applied behind the user
    assert cfg.optimizer.lr == 5e-3 and cfg.trainer.max_steps == 96
    assert (cfg.task.max_examples.validation, cfg.task.max_examples.test) == (32, 100)


def test_choosing_an_optimizer_or_trainer_gives_its_own_settings():
    """`optimizer=sgd trainer=gpu` runs SGD's lr and the GPU trainer's steps, nothing of the demo."""
    cfg = compose_config(["optimizer=sgd", "trainer=gpu"])
    assert cfg.optimizer.lr == 1.6e-2 and cfg.trainer.max_steps == 2000
    sgd = compose_config(["optimizer=sgd"]).optimizer
    gradamw = compose_config([]).optimizer
    assert {k for k in sgd if sgd[k] != gradamw[k]} == {"name", "lr"}
    ddp, gpu = compose_config(["trainer=ddp"]).trainer, compose_config(["trainer=gpu"]).trainer
    assert ddp.max_steps == gpu.max_steps and ddp.strategy == "ddp"


def test_adapter_gate_rescale_is_chosen_by_the_optimizer_name_only():
    from loralab.cli.validation import ConfigError

    with pytest.raises(ConfigError, match="adapter.gate_rescale is chosen by the optimizer"):
        validate_config(compose_config(["+adapter.gate_rescale=true"]))


def test_sharded_trainers_refuse_pairwise_optimizers():
    """Riemannian variants and LoRA-RITE need whole (A, B) pairs; LoRA+ is elementwise."""
    from loralab.cli.validation import ConfigError

    for trainer in ("fsdp", "deepspeed"):
        for optimizer in ("grsgd", "lorarite"):
            with pytest.raises(ConfigError, match="preconditions whole"):
                validate_config(compose_config([f"trainer={trainer}", f"optimizer={optimizer}"]))
        validate_config(compose_config([f"trainer={trainer}", "optimizer=loraplus"]))


@pytest.mark.parametrize("adapter", [["adapter=moslora"], ["adapter.mixer=true"]])
def test_lorarite_with_a_mixer_is_refused_before_the_model_loads(adapter):
    from loralab.cli.validation import ConfigError

    with pytest.raises(ConfigError, match="optimizer=lorarite .LoRA-RITE. with adapter.kind="):
        validate_config(compose_config(["model=tiny_llama", "optimizer=lorarite", *adapter]))


PAPER = [
    "paper_fig2",
    "paper_fig3",
    "paper_scienceqa",
    "paper_adamw",
    "paper_csqa",
    "moslora_commonsense",
]


@pytest.mark.parametrize("name", PAPER)
def test_paper_experiments_state_the_papers_settings(name):
    cfg = compose_config([f"experiment={name}"])
    OmegaConf.resolve(cfg)
    assert cfg.model.name == ("llama3_8b" if name == "moslora_commonsense" else "llama3_2_3b")
    if name == "moslora_commonsense":
        assert (cfg.adapter.rank, cfg.adapter.alpha, cfg.optimizer.lr) == (16, 32, 3e-4)
        assert cfg.optimizer.scheduler.warmup_steps == 100
        return
    assert (cfg.adapter.num_experts, cfg.adapter.top_k, cfg.adapter.rank) == (20, 10, 4)
    base = variant(cfg.optimizer.name).base
    assert cfg.optimizer.lr == (3e-5 if base == "sgd" else 1e-5)
    assert cfg.optimizer.router_lr == 3e-8
    assert cfg.data.batch_size * cfg.trainer.accumulate_grad_batches == 80
    assert cfg.optimizer.scheduler.total_steps == 2222
    assert cfg.task.max_examples.validation is None  # the whole split, as the reference
    assert cfg.data.target_layout == "reference"
    assert cfg.evaluation.generate_every == 100 and cfg.evaluation.max_new_tokens == 10
    assert not cfg.optimizer.bias_correction and cfg.optimizer.eps == 1e-6
    assert cfg.optimizer.precondition_b_with_updated_a == (base == "adamw")


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


@pytest.mark.parametrize(
    "name, sweep", [("paper_arc_e_text_cpu", "optimizer"), ("moslora_arc_e_text_cpu", "adapter")]
)
def test_text_form_experiments_keep_their_papers_method_on_arc_easy(name, sweep):
    """The text-form experiments change the task and answer form, never the method or grid."""
    paper = {"optimizer": "paper_obqa", "adapter": "moslora_commonsense"}[sweep]
    cfg = compose_config([f"experiment={name}", "data_root=/data"])
    OmegaConf.resolve(cfg)
    assert cfg.model.name == "smollm2_135m" and cfg.task.name == "arc_e"
    assert cfg.task.answer_form == "text" and cfg.task.source == "/data/commonsense"
    assert (cfg.task.max_examples.validation, cfg.task.max_examples.test) == (120, None)
    assert compose_sweep(name)[sweep] == compose_sweep(paper)[sweep]
    if sweep == "optimizer":
        assert (cfg.adapter.num_experts, cfg.adapter.top_k, cfg.adapter.rank) == (20, 10, 4)
        assert cfg.optimizer.router_lr == 3e-8 and not cfg.optimizer.bias_correction
    else:
        assert (cfg.adapter.rank, cfg.adapter.alpha, cfg.optimizer.lr) == (16, 32, 3e-4)


LORA_OPTIMIZER_GRIDS = {  # each LoRA-optimizer grid and the paper grid it extends
    "lora_optimizers_arc_e_text_cpu": "paper_arc_e_text_cpu",
    "lora_optimizers_scienceqa_text_cpu": "paper_scienceqa_text_cpu",
}


@pytest.mark.parametrize("name", LORA_OPTIMIZER_GRIDS)
@pytest.mark.parametrize("adapter,shape", [("moe_lora", (20, 10, 4, 16)), ("lora", (1, 1, 16, 32))])
def test_a_lora_optimizer_grid_is_its_paper_grid_with_loraplus_and_lorarite(name, adapter, shape):
    """Only the optimizers and the adapters compared differ from the paper grid it extends."""
    grid = compose_config([f"experiment={name}", f"adapter={adapter}", "data_root=/data"])
    paper = compose_config([f"experiment={LORA_OPTIMIZER_GRIDS[name]}", "data_root=/data"])
    for cfg in (grid, paper):
        OmegaConf.resolve(cfg)
    a = grid.adapter
    assert (a.kind, a.num_experts, a.top_k, a.rank, a.alpha) == (adapter, *shape)
    assert grid.task == paper.task and grid.trainer == paper.trainer and grid.data == paper.data
    assert grid.optimizer == paper.optimizer  # the same rates and rule (gradamw by default)
    searched_rates = {  # (on MoE-LoRA, on LoRA r16), searched on ARC-Easy
        "loraplus": (5.9e-5, 5.9e-5),
        "lorarite": (3.1e-5, 5.9e-5),
    }
    for optimizer, (moe_rate, lora_rate) in searched_rates.items():
        rate = moe_rate if adapter == "moe_lora" else lora_rate
        searched = compose_config(
            [f"experiment={name}", f"optimizer={optimizer}", f"adapter={adapter}"]
        ).optimizer.lr  # the variant's own searched rate, not its family's
        assert searched == rate
    unsearched = compose_config([f"experiment={name}", "optimizer=radamw", f"adapter={adapter}"])
    assert unsearched.optimizer.lr == paper.optimizer.family_lr.adamw  # no entry: the family's
    sweep = compose_sweep(name)
    assert sweep["optimizer"] == "adamw,gadamw,radamw,gradamw,loraplus,lorarite"
    assert sweep["adapter"] == "moe_lora,lora" and sweep["seed"] == "0,1,2"


@pytest.mark.parametrize("name", LORA_OPTIMIZER_GRIDS)
@pytest.mark.parametrize("optimizer", ["adamw", "gadamw", "radamw", "gradamw"])
def test_a_lora_optimizer_grids_moe_adamw_runs_are_its_paper_grids_runs(name, optimizer):
    """So a LoRA-optimizer grid takes its MoE-LoRA AdamW-family runs from the paper grid it
    extends (docs/results.md): the whole composed config is the same but the grid's rate tables."""
    common = [f"optimizer={optimizer}", "adapter=moe_lora", "seed=1", "data_root=/data"]
    grid = compose_config([f"experiment={name}", *common])
    paper = compose_config([f"experiment={LORA_OPTIMIZER_GRIDS[name]}", *common])
    grid, paper = (OmegaConf.to_container(c, resolve=True) for c in (grid, paper))
    assert {key: grid.pop(key) for key in ("adapter_shape", "variant_lr")}
    assert grid == paper


def test_scienceqa_text_form_twin_is_the_scienceqa_grid_on_the_same_problems():
    """Only the answer form, its target layout and the per-family rates differ from
    paper_scienceqa_cpu: the same problems, method and grid."""
    text = compose_config(["experiment=paper_scienceqa_text_cpu", "data_root=/data"])
    label = compose_config(["experiment=paper_scienceqa_cpu", "data_root=/data"])
    for cfg in (text, label):
        OmegaConf.resolve(cfg)
    assert text.task.answer_form == "text" and label.task.answer_form == "label"
    assert text.data.target_layout == "loralab" and text.optimizer.family_lr == {
        "sgd": 1.6e-2,
        "adamw": 6.4e-4,
    }
    assert text.task.source == label.task.source and text.adapter == label.adapter
    assert text.optimizer.router_lr == label.optimizer.router_lr == 3e-8
    assert not text.optimizer.bias_correction
    sweep = compose_sweep("paper_scienceqa_text_cpu")
    assert sweep["optimizer"] == compose_sweep("paper_scienceqa_cpu")["optimizer"]


def test_an_unresolvable_per_family_setting_is_a_config_error():
    """The CPU twins key their lr on the optimizer's family: an unknown name must be a clear
    config error (exit 2), not an interpolation traceback."""
    from loralab.cli.validation import ConfigError

    cfg = compose_config(["experiment=paper_fig3_cpu", "optimizer.name=bogus"])
    with pytest.raises(
        ConfigError, match=r"config:\n  - optimizer.name=.bogus. is invalid: must be one of sgd"
    ):
        validate_config(cfg)
