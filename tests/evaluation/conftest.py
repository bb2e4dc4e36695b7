"""Fixtures for the evaluation tests: the shared real data (skip if absent)."""

from pathlib import Path

import pytest

SHARED_DATA = (Path(__file__).parents[2] / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (see its README)")
    return SHARED_DATA
