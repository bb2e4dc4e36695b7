"""loralab: config-driven experiments with LoRA-family adapters and Riemannian optimizers."""

import hashlib
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


def _folder_name(name: str, limit: int = 200) -> str:
    """``name`` as a folder name: kept whole up to ``limit`` bytes, else cut and followed by a
    hash of the whole (file systems refuse names over 255 bytes, which a multirun's list of
    overrides passed: every job failed with "File name too long")."""
    if len(name.encode()) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return name.encode()[: limit - 11].decode(errors="ignore") + "-" + digest


# `${folder_name:${hydra.job.override_dirname}}`: a multirun job's folder (conf/train.yaml).
OmegaConf.register_new_resolver("folder_name", _folder_name, replace=True)
