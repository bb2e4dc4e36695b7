"""Shared fixtures: tiny random-init models and an isolated, offline environment."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# One intra-op thread: tests use tiny models, and on a small shared CPU OpenMP threads spinning
# against other processes made suites about 20x slower.
torch.set_num_threads(1)

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


SHARED_DATA = (Path(__file__).parents[1] / ".." / "shared" / "data").resolve()


def compose_config(overrides, name: str = "train", hydra: bool = False):
    """The config `loralab-train` (or `loralab-eval`, name="eval") composes from `overrides`;
    with `hydra`, the `hydra` node (sweeper params etc.) is kept."""
    from hydra import compose, initialize_config_dir

    from loralab.train import CONF_DIR

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


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real ScienceQA / commonsense data beside the project; tests skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (see its README)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tokenizer():
    """The tiny in-memory BPE tokenizer of model=tiny_llama."""
    from loralab.models.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer()


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


@pytest.fixture
def tiny_llama():
    return make_tiny_llama()


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Keep W&B and caches inside the test's own folder; never go online."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
