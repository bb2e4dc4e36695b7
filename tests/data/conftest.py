"""Fixtures for the data tests: the tiny tokenizer and the shared real data (skip if absent)."""

from pathlib import Path

import pytest

from loralab.models.tiny import build_tiny_tokenizer

SHARED_DATA = (Path(__file__).parents[2] / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (see its README)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tokenizer():
    return build_tiny_tokenizer()
