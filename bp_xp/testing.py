"""The backend x device x dtype test matrix, as a pytest plugin you can use in your own suite.

Add one line to your ``conftest.py``::

    pytest_plugins = ["bp_xp.testing"]

and any test that asks for the ``xb`` fixture runs once per backend case (numpy, a
read-only numpy, array_api_strict on three devices, torch CPU/CUDA, jax CPU/GPU, dask
with two chunks, cupy); a test that also asks for ``dtype`` runs once per float dtype the
case's device has. Backends that are not installed, or have no device here, are skipped
with the reason. Set ``BP_XP_REQUIRE=cupy,torch`` (backend names, or ``all``) to turn
such a skip into a failure, so that a GPU machine cannot skip CuPy silently.

The plugin enables JAX's float64 (``jax_enable_x64``) when JAX is installed, so that the
float64 rows run on JAX too.

Inside a test, ``xb.asarray(host, dtype)`` moves host data onto the case's backend,
``xb.to_numpy`` brings it back, and ``xb.assert_close(actual, expected, dtype)`` compares
with a NumPy reference at per-dtype tolerances *and* checks that the result kept the
case's namespace, dtype and device.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import array_api_compat
import numpy as np
import pytest

from ._backend import Backend, BackendUnavailableError, resolve_backend, to_numpy

__all__ = ["CASES", "Case", "XB", "TOLERANCES"]

#: ``(rtol, atol)`` used by :meth:`XB.assert_close` for each dtype.
TOLERANCES: dict[str, tuple[float, float]] = {
    "float32": (1e-4, 1e-5),
    "float64": (1e-10, 1e-12),
}


@dataclasses.dataclass(frozen=True)
class Case:
    """One row of the matrix: a backend spec plus how to treat inputs.

    Examples
    --------
    >>> from bp_xp.testing import CASES
    >>> [case.spec for case in CASES if case.family == "array_api_strict"]
    ['array_api_strict', 'array_api_strict:device1', 'array_api_strict:no_float64']
    """

    id: str
    spec: str
    family: str
    float64: bool = True
    readonly: bool = False


CASES: tuple[Case, ...] = (
    Case("numpy", "numpy", "numpy"),
    Case("numpy_readonly", "numpy", "numpy", readonly=True),
    Case("strict", "array_api_strict", "array_api_strict"),
    Case("strict_device1", "array_api_strict:device1", "array_api_strict"),
    Case("strict_no_float64", "array_api_strict:no_float64", "array_api_strict", float64=False),
    Case("torch_cpu", "torch:cpu", "torch"),
    Case("torch_cuda", "torch:cuda", "torch"),
    Case("jax_cpu", "jax:cpu", "jax"),
    Case("jax_gpu", "jax:gpu", "jax"),
    Case("dask", "dask", "dask"),
    Case("cupy", "cupy", "cupy"),
)


class XB:
    """The backend under test, as handed to a test by the ``xb`` fixture.

    Examples
    --------
    >>> import numpy as np, bp_xp
    >>> from bp_xp.testing import CASES, XB
    >>> xb = XB(CASES[0], bp_xp.resolve_backend("numpy"))  # what the fixture builds
    >>> x = xb.asarray([1.0, 4.0], "float32")
    >>> xb.assert_close(xb.xp.sqrt(x), np.sqrt([1.0, 4.0]), "float32")
    >>> xb.assert_close(x, [1.0, 4.0], "float64")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: dtype changed: expected float64, got float32...
    """

    def __init__(self, case: Case, backend: Backend) -> None:
        self.case = case
        self.backend = backend
        self.xp = backend.xp
        self.device = backend.device

    def __repr__(self) -> str:
        return f"XB({self.case.id}: {self.backend})"

    def asarray(self, host: Any, dtype: Any = None) -> Any:
        """Host data -> this case's backend (read-only for the read-only NumPy case).

        Dask arrays get two chunks along the first axis where it has two or more rows.
        """
        host = np.asarray(host)
        if self.case.family == "dask" and host.ndim and host.shape[0] >= 2:
            chunks = (math.ceil(host.shape[0] / 2), *host.shape[1:])
            return dataclasses.replace(self.backend, chunks=chunks).asarray(host, dtype=dtype)
        out = self.backend.asarray(host, dtype=dtype)
        if self.case.readonly:
            out.flags.writeable = False
        return out

    def to_numpy(self, x: Any) -> np.ndarray:
        """A host copy of ``x`` (see :func:`bp_xp.to_numpy`)."""
        return to_numpy(x)

    def dtype(self, name: str) -> Any:
        """The backend's dtype object for ``name`` (see :meth:`bp_xp.Backend.dtype`)."""
        return self.backend.dtype(name)

    def assert_on_backend(self, x: Any, dtype: Any = None) -> None:
        """``x`` is an array of this case's namespace and device (and ``dtype``)."""
        xp = array_api_compat.array_namespace(x)
        assert xp is self.xp, f"namespace changed: expected {self.xp.__name__}, got {xp.__name__}"
        dev = array_api_compat.device(x)
        assert dev == self.device, f"device changed: expected {self.device}, got {dev}"
        if dtype is not None:
            expected = self.backend.dtype(dtype)
            assert x.dtype == expected, f"dtype changed: expected {expected}, got {x.dtype}"

    def assert_close(self, actual: Any, expected: Any, dtype: Any,
                     rtol: float | None = None, atol: float | None = None) -> None:
        """Compare with a NumPy reference at ``dtype``'s tolerances, after checking placement."""
        self.assert_on_backend(actual, dtype)
        name = str(getattr(dtype, "name", dtype)).rsplit(".", 1)[-1]
        default_rtol, default_atol = TOLERANCES[name]
        np.testing.assert_allclose(
            to_numpy(actual), np.asarray(expected, dtype=np.float64),
            rtol=default_rtol if rtol is None else rtol,
            atol=default_atol if atol is None else atol,
        )


def _required() -> set[str]:
    names = {n.strip() for n in os.environ.get("BP_XP_REQUIRE", "").split(",") if n.strip()}
    return {c.family for c in CASES} if "all" in names else names


def _enable_jax_x64() -> None:
    try:
        import jax
    except ImportError:
        return
    jax.config.update("jax_enable_x64", True)


_enable_jax_x64()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "xb_case" not in metafunc.fixturenames:
        return
    if "dtype" in metafunc.fixturenames:
        rows = [
            pytest.param(case, dtype, id=f"{case.id}-{dtype}")
            for case in CASES
            for dtype in ("float32", "float64")
            if dtype == "float32" or case.float64
        ]
        metafunc.parametrize(("xb_case", "dtype"), rows)
    else:
        metafunc.parametrize("xb_case", [pytest.param(c, id=c.id) for c in CASES])


_RESOLVED: dict[str, Backend | str] = {}


@pytest.fixture
def xb(xb_case: Case) -> XB:
    """The backend under test; see :mod:`bp_xp.testing`."""
    if xb_case.spec not in _RESOLVED:
        try:
            _RESOLVED[xb_case.spec] = resolve_backend(xb_case.spec)
        except BackendUnavailableError as exc:
            _RESOLVED[xb_case.spec] = str(exc)
    found = _RESOLVED[xb_case.spec]
    if isinstance(found, str):
        if xb_case.family in _required():
            pytest.fail(f"{xb_case.id} is required by BP_XP_REQUIRE but unavailable: {found}")
        pytest.skip(f"{xb_case.id}: {found}")
    return XB(xb_case, found)
