"""Shared fixtures: the public recordings in ../shared/data and a seeded RNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()


def shared_data(*parts: str) -> Path:
    """Path of a file in ../shared/data; fail (never skip) with a clear message if it is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.fail(
            f"test data missing: {path} (the public recordings are expected in ../shared/data "
            "beside the repository; see ../shared/data/README.md)",
            pytrace=False,
        )
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261125)
