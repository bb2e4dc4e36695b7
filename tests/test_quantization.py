"""model.quantization=nf4: the reference's 4-bit base. Refused with exit 2 where it cannot run
(no bitsandbytes or no CUDA GPU, or a model built from a config), asked for by the Sun et al.
GPU configs and not by their CPU twins, and (on a GPU with bitsandbytes) a short run trains."""

import importlib.util
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from loralab import CONF_DIR
from loralab.models.loading import _quantization_config
from tests.helpers import compose_config, run_train


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a CPU-only machine")
def test_nf4_on_a_cpu_only_machine_exits_2_naming_the_key_and_bitsandbytes(tmp_path):
    done = run_train(["model.quantization=nf4"], tmp_path, LORALAB_CACHE=str(tmp_path / "cache"))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "model.quantization=nf4 needs the bitsandbytes package and a CUDA GPU" in done.stderr
    assert "model.quantization=none" in done.stderr  # the way out
    assert not (tmp_path / "cache").exists()  # refused before the model loaded


def test_nf4_needs_a_pretrained_checkpoint(tmp_path):
    done = run_train(["model=tiny_llama", "model.quantization=nf4"], tmp_path)
    assert done.returncode == 2
    assert "quantises a pretrained checkpoint" in done.stderr


def test_an_unknown_quantization_is_a_config_error(tmp_path):
    done = run_train(["model=tiny_llama", "model.quantization=int3"], tmp_path)
    assert done.returncode == 2 and "model.quantization='int3' must be one of" in done.stderr


def test_the_reference_quantization_settings():
    config = _quantization_config({"quantization": "nf4", "compute_dtype": "float16"})
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_use_double_quant and config.bnb_4bit_compute_dtype == torch.float16
    assert _quantization_config({"quantization": "none"}) is None


SUN = ["paper_fig2", "paper_fig3", "paper_scienceqa", "paper_adamw", "paper_obqa", "paper_boolq"]
SUN += ["paper_csqa"]


@pytest.mark.parametrize("name", SUN)
def test_sun_et_al_gpu_configs_use_nf4_and_their_cpu_twins_do_not(name):
    paper = compose_config([f"experiment={name}"]).model
    assert (paper.quantization, paper.compute_dtype) == ("nf4", "float16")
    twin = f"experiment={name}_cpu"
    if (Path(CONF_DIR) / "experiment" / f"{name}_cpu.yaml").is_file():
        cfg = compose_config([twin, "data_root=/data"])
        OmegaConf.resolve(cfg)
        assert cfg.model.quantization == "none"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes")
def test_a_short_nf4_run_trains_on_the_gpu(tmp_path):
    done = run_train(
        [
            "model=smollm2_135m",
            "model.quantization=nf4",
            "trainer=gpu",
            "trainer.max_steps=4",
            "trainer.val_check_interval=2",
            "task.max_examples.test=16",
            "task.max_examples.validation=8",
            "logger=csv",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    import pandas as pd

    losses = pd.read_csv(tmp_path / "run" / "metrics.csv")["train/loss"].dropna()
    assert len(losses) == 4 and losses.notna().all() and (losses < 20).all()
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()
    assert "in 4-bit NF4" in (tmp_path / "run" / "train.log").read_text()
