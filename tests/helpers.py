"""Helpers the tests import (`from tests.helpers import ...`): composing configs, running the
entry points as subprocesses, tiny random-init models. Fixtures live in conftest.py."""

import os
import subprocess
import sys
from pathlib import Path

import torch

SHARED_DATA = (Path(__file__).parents[1] / ".." / "shared" / "data").resolve()


def compose_config(overrides, name: str = "train", hydra: bool = False):
    """The config `loralab-train` (or `loralab-eval`, name="eval") composes from `overrides`;
    with `hydra`, the `hydra` node (sweeper params etc.) is kept."""
    from hydra import compose, initialize_config_dir

    from loralab import CONF_DIR
    from loralab.cli.resolvers import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides), return_hydra_config=hydra)


def run_cli(module: str, args, cwd, **env) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS...` in `cwd` with extra environment variables (5-minute limit)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(os.environ, **env),
        timeout=300,
    )


def run_train(args, cwd, **env) -> subprocess.CompletedProcess:
    """`loralab-train ARGS` in ``cwd``: W&B offline, the model cache in ``cwd`` (both
    overridable through ``env``)."""
    return run_cli(
        "loralab.cli.train",
        args,
        cwd,
        **{"WANDB_MODE": "offline", "LORALAB_CACHE": str(cwd), **env},
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes: what a refusal must leave as it was."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def make_tiny_llama(seed: int = 0, vocab_size: int = 128, hidden_size: int = 64, layers: int = 2):
    """A random-init Llama small enough for unit tests (float32, eval mode)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval()


def answer_loss(model, batch) -> torch.Tensor:
    """Mean cross-entropy over a batch's answer tokens: the reference loss the training tests
    compare logged losses with."""
    from loralab.evaluation.scoring import answer_logits

    logits, targets, _ = answer_logits(model, batch)
    return torch.nn.functional.cross_entropy(logits.float(), targets)


def adapted(model, config):
    """`model` with adapters injected whose B is random, so they change the output."""
    from loralab.adapters import inject_adapters

    torch.manual_seed(1)
    for layer in inject_adapters(model, config):
        with torch.no_grad():
            layer.lora_B.normal_(std=0.5)
    return model.eval()
