"""bp_xp's own suite runs on the matrix the library ships as a pytest plugin."""

import numpy as np
import pytest

pytest_plugins = ["bp_xp.testing", "pytester"]


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh host generator per test: data is drawn on the host, then moved."""
    return np.random.default_rng(20261122)
