"""The progress bar of evaluation loops (generation, scoring): questions per second and the
time left on stderr, or silent."""

from __future__ import annotations


def progress_bar(total: int, description: str, enabled: bool, unit: str = "q"):
    """A tqdm bar over ``total`` questions (or other ``unit``s) on stderr (rate and time left),
    or a silent one."""
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit=unit, disable=not enabled, mininterval=1.0)
