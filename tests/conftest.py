"""Shared fixtures: tiny random-init models and an isolated, offline environment."""

import os
from pathlib import Path

import pytest
import torch

from tests.helpers import SHARED_DATA, make_tiny_llama

# One intra-op thread: tests use tiny models, and on a small shared CPU OpenMP threads spinning
# against other processes made suites about 20x slower.
torch.set_num_threads(1)

os.environ.setdefault(
    "OMP_NUM_THREADS", "1"
)  # the runs tests start: two test processes share 2 cores
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


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


@pytest.fixture
def tiny_llama():
    return make_tiny_llama()


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Keep W&B and caches inside the test's own folder; never go online."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
