"""loralab: config-driven experiments with LoRA-family adapters and Riemannian optimizers."""

from pathlib import Path

from omegaconf import OmegaConf

__version__ = "0.1.0"

# The Hydra config tree ships inside the package, so every install (editable, wheel, plain
# `pip install .`) has it; users add their own groups with Hydra's --config-dir.
CONF_DIR = str(Path(__file__).resolve().parent / "conf")


def _optimizer_family(name: str) -> str:
    from loralab.optim.config import variant

    return variant(name).base


# `${optimizer_family:${optimizer.name}}` in configs: sgd or adamw, from the name's variant
# (per-family settings such as the paper's learning rates key on it).
OmegaConf.register_new_resolver("optimizer_family", _optimizer_family, replace=True)
