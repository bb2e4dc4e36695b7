"""Extension points: a user's own optimizer variant, task and adapter kind, registered from the
user's own module and configs, without editing loralab."""

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from loralab.adapters import AdapterConfig, AdapterLinear, inject_adapters, register_adapter_kind
from loralab.adapters.config import CUSTOM_KINDS
from loralab.optim import VARIANTS, build_optimizer, register_variant
from loralab.tasks import TASKS, build_task, register_task
from loralab.tasks.scienceqa import ScienceQATask
from tests.helpers import make_tiny_llama, run_cli
from tests.optim.helpers import adapted_llama, backward

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_optimizer"
RUN = ["experiment=smoke", "trainer.max_steps=6", "trainer.val_check_interval=3", "logger=csv"]


def train(tmp_path, name, *args):
    args = [*RUN, *args, f"hydra.run.dir={tmp_path / name}"]
    done = run_cli("loralab.cli.train", args, tmp_path, LORALAB_CACHE=str(tmp_path / "cache"))
    assert done.returncode == 0, done.stderr[-3000:]
    return load_file(tmp_path / name / "adapter" / "adapter.safetensors")


def test_the_worked_example_runs_a_users_optimizer_through_loralab_train(tmp_path):
    """README's example, as written: the user's folder holds a module and a config directory."""
    user = tmp_path / "user"
    shutil.copytree(EXAMPLE, user)
    args = [
        "--config-dir",
        str(user / "conf"),
        "optimizer=drsgd",
        "plugins=[diagonal_preconditioner]",
    ]
    done = run_cli(
        "loralab.cli.train",
        [*args, *RUN, f"hydra.run.dir={tmp_path / 'drsgd'}"],
        user,  # the working directory is on the plugin path
        LORALAB_CACHE=str(tmp_path / "cache"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "drsgd" / "summary.json").read_text())
    assert summary["run_name"].endswith("-drsgd-s0") and summary["steps"] == 6
    ours = load_file(tmp_path / "drsgd" / "adapter" / "adapter.safetensors")
    rsgd = train(tmp_path, "rsgd", "optimizer=rsgd")  # same lr (the SGD family's), full Gram
    moved = [k for k in ours if "lora_B" in k and not torch.equal(ours[k], rsgd[k])]
    assert moved, "the diagonal preconditioner changed nothing against RSGD"


def test_a_plugin_that_cannot_be_imported_is_a_config_error(tmp_path):
    done = run_cli("loralab.cli.train", [*RUN, "plugins=[no_such_module]"], tmp_path)
    assert done.returncode == 2
    assert "plugins: cannot import 'no_such_module'" in done.stderr


def test_registered_variant_uses_its_preconditioner():
    sys.path.insert(0, str(EXAMPLE))
    try:
        from diagonal_preconditioner import diagonal_precondition  # registers drsgd
    finally:
        sys.path.remove(str(EXAMPLE))
    assert VARIANTS["drsgd"].preconditioner is diagonal_precondition
    model, reference = adapted_llama("moe_lora"), adapted_llama("moe_lora")
    optimizer, _ = build_optimizer(model, {"name": "drsgd", "lr": 0.1, "router_lr": 0.0})
    for m in (model, reference):
        backward(m)
    optimizer.step()
    layers = [m for m in reference.modules() if isinstance(m, AdapterLinear)]
    got = [m for m in model.modules() if isinstance(m, AdapterLinear)]
    for before, after in zip(layers, got, strict=True):
        diagonal = (before.lora_B.detach() ** 2).sum(dim=1) + 1e-6  # diag(B_i^T B_i + delta)
        want = before.lora_A.detach() - 0.1 * before.lora_A.grad / diagonal.unsqueeze(-1)
        torch.testing.assert_close(after.lora_A.detach(), want)


def test_register_variant_refuses_a_preconditioner_without_riemannian():
    with pytest.raises(ValueError, match="needs riemannian=True"):
        register_variant(
            "bad", base="sgd", riemannian=False, gate_rescale=False, preconditioner=len
        )


def test_registered_task_builds_from_its_config():
    def build(task_cfg, splits):
        record = {"question": "2 + 2?", "choices": ["3", "4"], "answer": 1, "hint": ""}
        return ScienceQATask(task_cfg["name"], {split: [record] for split in splits})

    register_task("arithmetic", build)
    try:
        cfg = {
            "name": "arithmetic",
            "source": "none",
            "seed": 0,
            "max_examples": dict.fromkeys(("train", "validation", "test")),
        }
        task = build_task(cfg)
        assert task.gold_index(task.splits["test"][0]) == 1
        assert "Options: (A) 3 (B) 4" in task.prompt(task.splits["train"][0])
    finally:
        TASKS.pop("arithmetic")


class ScaledLoRA(AdapterLinear):
    """A user's adapter kind: LoRA whose output is halved (keeps the parameter contract)."""

    def forward(self, x):
        base = self.base(x)
        return base + 0.5 * (super().forward(x) - base)


def test_registered_adapter_kind_wraps_targets_with_its_layer():
    register_adapter_kind("scaled_lora", ScaledLoRA)
    try:
        model = make_tiny_llama()
        layers = inject_adapters(model, AdapterConfig(kind="scaled_lora", rank=2, dropout=0.0))
        assert layers and all(type(layer) is ScaledLoRA for layer in layers)
        layer = layers[0]
        torch.nn.init.normal_(layer.lora_B)
        x = torch.randn(3, layer.in_features)
        plain = AdapterLinear(layer.base, AdapterConfig(kind="lora", rank=2, dropout=0.0))
        plain.load_state_dict(layer.state_dict())
        base = layer.base(x)
        torch.testing.assert_close(layer(x) - base, 0.5 * (plain(x) - base))
        build_optimizer(model, {"name": "rsgd", "lr": 0.1})  # the optimizers take it as is
    finally:
        CUSTOM_KINDS.pop("scaled_lora")
    with pytest.raises(ValueError, match="adapter.kind='scaled_lora'"):
        AdapterConfig(kind="scaled_lora")


def test_built_in_names_cannot_be_registered_over():
    with pytest.raises(ValueError, match="'rsgd' is built in"):
        register_variant("rsgd", base="sgd", riemannian=True, gate_rescale=False)
    with pytest.raises(ValueError, match="'scienceqa' is built in"):
        register_task("scienceqa", lambda cfg, splits: None)
    with pytest.raises(ValueError, match="'lora' is built in"):
        register_adapter_kind("lora", ScaledLoRA)
