"""The config resolvers loralab's YAML uses, registered by each command before Hydra composes.

- ``${optimizer_family:<name>}``: ``sgd`` or ``adamw``, the base of the name's variant in
  ``loralab.optim.config.VARIANTS`` (per-family settings such as each family's learning rate
  key on it, so the family is stated once, in that table).
- ``${folder_name:<text>}``: a multirun job's folder name (conf/train.yaml), cut to fit.

Registering is explicit (``register_resolvers()``), not a side effect of importing loralab;
code that composes loralab's configs itself (``hydra.compose``) calls it first.
"""

from __future__ import annotations

import hashlib

from omegaconf import OmegaConf


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("optimizer_family", optimizer_family, replace=True)
    OmegaConf.register_new_resolver("folder_name", folder_name, replace=True)


def optimizer_family(name: str) -> str:
    from loralab.optim.config import variant

    return variant(name).base


def folder_name(name: str, limit: int = 200) -> str:
    """``name`` as a folder name: kept whole up to ``limit`` bytes, else cut and followed by a
    hash of the whole (file systems refuse names over 255 bytes, which a multirun's list of
    overrides passed: every job failed with "File name too long")."""
    if len(name.encode()) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return name.encode()[: limit - 11].decode(errors="ignore") + "-" + digest
