"""What this machine has, for the settings that need it (a GPU, an optional package)."""

from __future__ import annotations

import importlib.util


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def mps_available() -> bool:
    import torch

    return torch.backends.mps.is_available()


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None
