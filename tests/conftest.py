"""bp_xp's own suite runs on the matrix the library ships as a pytest plugin."""

import gc

import numpy as np
import pytest

pytest_plugins = ["bp_xp.testing", "pytester"]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Take what exists after collection (torch, jax, dask, ~10,000 test items) out of the
    cyclic garbage collector: it lives for the whole session, and each full collection would
    walk it again (one ``gc.collect()`` took about a second). Objects made by the tests are
    collected as before."""
    gc.freeze()


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh host generator per test: data is drawn on the host, then moved."""
    return np.random.default_rng(20261122)
