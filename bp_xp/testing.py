"""The backend x device x dtype test matrix, as a pytest plugin you can use in your own suite.

Add one line to your ``conftest.py``::

    pytest_plugins = ["bp_xp.testing"]

and any test that asks for the ``xb`` fixture runs once per backend case (numpy, a
read-only numpy, array_api_strict on three devices, torch CPU/CUDA, jax CPU/GPU, dask
with two chunks, cupy, and two rows that stand in for a GPU on the CPU: JAX on its second
CPU device, ``jax:cpu:1``, and PyTorch's ``meta`` device, whose tensors hold no values and
which only tests marked ``no_values`` use); a test that also asks for ``dtype`` runs once per float dtype the
case's device has. Backends that are not installed, or have no device here, are skipped
with the reason. Set ``BP_XP_REQUIRE=cupy,torch`` (backend names, or ``all``) to turn
such a skip into a failure, so that a GPU machine cannot skip CuPy silently.

The test header lists every case with whether it runs here (and why not), and the end of
the run counts passed/failed/skipped tests per case.

Rows marked ``slow`` (JAX, Dask) carry the ``slow`` marker, so ``pytest -m "not slow"`` is a
quick lane and a plain ``pytest`` runs everything. A test (or a module, through
``pytestmark``) made of many small checks can also leave the rows that repeat another row's
work to the slow lane with ``@pytest.mark.slow_rows("numpy_readonly", "strict_device1")``:
those rows' parameters carry ``slow`` for that test only.

When the session starts (``pytest_configure``, not at import) the plugin switches float64
on where a backend needs a switch (JAX's ``jax_enable_x64``), so that the float64 rows run
on JAX too, and asks XLA for two CPU devices (see :func:`pytest_configure`).

A backend registered outside bp_xp (:func:`bp_xp.backends.register_backend`) joins the
matrix with :func:`add_case`.

Inside a test, ``xb.asarray(host, dtype)`` moves host data onto the case's backend,
``xb.to_numpy`` brings it back, and ``xb.assert_close(actual, expected, dtype)`` compares
with a NumPy reference at per-dtype tolerances *and* checks that the result kept the
case's namespace, dtype and device (through ``array_api_extra.testing``).

The module imports pytest because a plugin's fixtures and hooks need it; :class:`Case`,
:class:`XB` and :data:`CASES` do not use it.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.util
import math
import os
from collections.abc import Collection
from typing import Any

import array_api_compat
import numpy as np
import pytest
from array_api_extra import testing as xpx_testing

from .backends import (
    Backend,
    BackendUnavailableError,
    backend_names,
    dtype_name,
    get_spec,
    resolve_backend,
    to_numpy,
)
from .conformance import check_layer as check_layer  # the layer contract: docs/testing.md

__all__ = ["CASES", "Case", "XB", "TOLERANCES", "XLA_TWO_CPUS", "add_case", "cases"]

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
    #: Every call on this row is slow (JAX compiles each new operation, Dask builds and runs a
    #: task graph): its tests carry the ``slow`` marker, so ``pytest -m "not slow"`` is a quick
    #: everyday lane over the other rows, and a plain ``pytest`` still runs them all.
    slow: bool = False
    #: The device holds values. ``False`` for PyTorch's ``meta`` device (shapes and dtypes
    #: only): only tests marked ``@pytest.mark.no_values`` (they never read a value) run there.
    values: bool = True
    #: Added to the reason the row is skipped when its backend or device is missing here.
    hint: str = ""


#: What makes JAX's CPU platform offer two devices, so that the ``jax_cpu1`` row can run.
XLA_TWO_CPUS = "--xla_force_host_platform_device_count=2"

CASES: tuple[Case, ...] = (
    Case("numpy", "numpy", "numpy"),
    Case("numpy_readonly", "numpy", "numpy", readonly=True),
    Case("strict", "array_api_strict", "array_api_strict"),
    Case("strict_device1", "array_api_strict:device1", "array_api_strict"),
    Case("strict_no_float64", "array_api_strict:no_float64", "array_api_strict", float64=False),
    Case("torch_cpu", "torch:cpu", "torch"),
    Case("torch_cuda", "torch:cuda", "torch"),
    Case("torch_meta", "torch:meta", "torch", values=False),
    Case("jax_cpu", "jax:cpu", "jax", slow=True),
    Case("jax_cpu1", "jax:cpu:1", "jax", slow=True,
         hint=f"; JAX has a second CPU device only with XLA_FLAGS={XLA_TWO_CPUS} set before jax "
              "is imported (the bp_xp.testing plugin sets it when XLA_FLAGS names no device "
              "count and jax is not yet imported)"),
    Case("jax_gpu", "jax:gpu", "jax", slow=True),
    Case("dask", "dask", "dask", slow=True),
    Case("cupy", "cupy", "cupy"),
)


_ADDED: list[Case] = []


def add_case(case: Case) -> None:
    """Add a row to the matrix, for a backend registered outside bp_xp.

    Call it before tests are collected: from a plugin's or a ``conftest.py``'s
    ``pytest_configure``, next to :func:`bp_xp.backends.register_backend`. See
    ``docs/backends.md``, "A new backend".
    """
    if not isinstance(case, Case):
        raise TypeError(f"add_case expects a bp_xp.testing.Case, got {type(case).__name__}")
    if any(c.id == case.id for c in cases()):
        raise ValueError(f"the matrix already has a row {case.id!r}")
    _ADDED.append(case)


def cases() -> tuple[Case, ...]:
    """Every row of the matrix: :data:`CASES` and those added with :func:`add_case`."""
    return CASES + tuple(_ADDED)


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
    >>> xb.assert_equal(xb.xp.argmax(x), 1)
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
        if self.backend.spec.chunked and host.ndim and host.shape[0] >= 2:
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

    def _on_backend(self, expected: Any, actual: Any, dtype: Any) -> Any:
        """The reference ``expected`` as an array of ``actual``'s backend, dtype and shape."""
        host = np.asarray(expected)
        if host.ndim == 0 and actual.ndim:  # a scalar reference stands for every element
            host = np.broadcast_to(host, actual.shape)
        return self.backend.asarray(host, dtype=dtype)

    def assert_close(self, actual: Any, expected: Any, dtype: Any,
                     rtol: float | None = None, atol: float | None = None) -> None:
        """Compare with a NumPy reference at ``dtype``'s tolerances, after checking placement.

        The reference is moved onto the case's backend at ``dtype`` and compared by
        ``array_api_extra.testing.assert_close``, which also checks namespace, shape,
        dtype and device; the tolerances are bp_xp's :data:`TOLERANCES`, not its defaults.
        """
        self.assert_on_backend(actual, dtype)
        default_rtol, default_atol = TOLERANCES[dtype_name(dtype)]
        xpx_testing.assert_close(
            actual, self._on_backend(expected, actual, dtype),
            rtol=default_rtol if rtol is None else rtol,
            atol=default_atol if atol is None else atol,
            xp=self.xp,
        )

    def assert_equal(self, actual: Any, expected: Any, dtype: Any = None) -> None:
        """Exact equality with a NumPy reference, after checking placement (and ``dtype``).

        Without ``dtype`` the reference takes ``actual``'s dtype: only the values,
        namespace, shape and device are checked.
        """
        self.assert_on_backend(actual, dtype)
        target = actual.dtype if dtype is None else dtype
        xpx_testing.assert_equal(actual, self._on_backend(expected, actual, target), xp=self.xp)


def _required() -> set[str]:
    names = {n.strip() for n in os.environ.get("BP_XP_REQUIRE", "").split(",") if n.strip()}
    return {c.family for c in cases()} if "all" in names else names


_RESOLVED: dict[str, Backend | str] = {}


def _resolve(case: Case) -> Backend | str:
    """The case's backend, or why it cannot run here (cached for the session)."""
    if case.spec not in _RESOLVED:
        try:
            _RESOLVED[case.spec] = resolve_backend(case.spec)
        except BackendUnavailableError as exc:
            _RESOLVED[case.spec] = str(exc) + case.hint
    return _RESOLVED[case.spec]


# --------------------------------------------------------------------------------------
# pytest hooks and fixtures
# --------------------------------------------------------------------------------------

_CASE_PROPERTY = "bp_xp_case"


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers; give JAX two CPU devices; switch float64 on where needed (JAX).

    The ``jax_cpu1`` row (``"jax:cpu:1"``) stands in for a GPU: a device that is not the
    default one, so an array made without naming the device lands elsewhere and is caught.
    JAX's CPU has that second device only when ``XLA_FLAGS`` asks for it *before jax is
    imported*, so the plugin adds :data:`XLA_TWO_CPUS` here when ``XLA_FLAGS`` does not
    mention a device count yet and jax is not imported; otherwise the row is skipped with
    the reason (each backend whose spec has ``request_host_devices`` is asked). Every
    installed backend whose spec has ``enable_float64`` gets it, so the
    float64 rows run there too.
    """
    config.addinivalue_line("markers", "slow: takes seconds (or runs on a slow matrix row); "
                                       'pytest -m "not slow" leaves it out')
    config.addinivalue_line("markers", "no_values: reads no array value, so it also runs on the "
                                       "matrix rows whose device holds none (torch:meta)")
    config.addinivalue_line("markers", "slow_rows(*case_ids): the named matrix rows of this test "
                                       "run in the slow lane only")
    for name in backend_names():
        spec = get_spec(name)
        if spec is not None and spec.request_host_devices is not None:
            spec.request_host_devices(2)
        if spec is not None and spec.enable_float64 is not None \
                and importlib.util.find_spec(spec.module) is not None:
            spec.enable_float64()


def pytest_report_header(config: pytest.Config) -> list[str]:
    """One line per matrix case: its backend and device, and whether it runs here or why not."""
    required = _required()
    lines = ["bp_xp test matrix (bp_xp.testing.CASES):"]
    width = max(len(case.id) for case in cases())
    for case in cases():
        found = _resolve(case)
        if isinstance(found, str):
            verdict = ("FAILS, required by BP_XP_REQUIRE: " if case.family in required
                       else "skipped: ") + found.split(" Installed here:")[0] + (
                           case.hint if found.endswith(case.hint) else "")
        else:
            verdict = f"runs on {found}"
        lines.append(f"  {case.id:<{width}}  {verdict}")
    return lines


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tag each matrix test with its case id (reports carry it, also from xdist workers)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        case = callspec.params.get("xb_case") if callspec is not None else None
        if isinstance(case, Case):
            item.user_properties.append((_CASE_PROPERTY, case.id))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many matrix tests passed, failed and were skipped, per case."""
    counts: dict[str, collections.Counter[str]] = {}
    for outcome in ("passed", "failed", "error", "skipped", "xfailed", "xpassed"):
        for report in terminalreporter.stats.get(outcome, []):
            case_id = dict(getattr(report, "user_properties", ())).get(_CASE_PROPERTY)
            if case_id is not None:
                counts.setdefault(case_id, collections.Counter())[outcome] += 1
    if not counts:
        return
    terminalreporter.section("bp_xp matrix: tests per backend case")
    width = max(len(case.id) for case in cases())
    for case in cases():
        if case.id in counts:
            tally = ", ".join(f"{n} {outcome}" for outcome, n in counts[case.id].items())
            terminalreporter.write_line(f"{case.id:<{width}}  {tally}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``xb_case`` (and ``dtype``) over :data:`CASES`."""
    if "xb_case" not in metafunc.fixturenames:
        return
    valueless = metafunc.definition.get_closest_marker("no_values") is not None
    rows = [case for case in cases() if case.values or valueless]
    slow_rows = _slow_rows(metafunc)
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize(("xb_case", "dtype"), [
            pytest.param(case, dtype, id=f"{case.id}-{dtype}", marks=_marks(case, slow_rows))
            for case in rows
            for dtype in ("float32", "float64")
            if dtype == "float32" or case.float64
        ])
    else:
        metafunc.parametrize("xb_case", [pytest.param(c, id=c.id, marks=_marks(c, slow_rows))
                                         for c in rows])


def _slow_rows(metafunc: pytest.Metafunc) -> set[str]:
    """The row ids named by the test's ``slow_rows`` markers (its own and its module's)."""
    named = {case_id for mark in metafunc.definition.iter_markers("slow_rows")
             for case_id in mark.args}
    unknown = named - {case.id for case in cases()}
    if unknown:
        raise ValueError(f"{metafunc.definition.nodeid}: slow_rows names no matrix row "
                         f"{sorted(unknown)}; the rows are {[c.id for c in cases()]}")
    return named


def _marks(case: Case, slow_rows: Collection[str] = ()) -> list[pytest.MarkDecorator]:
    return [pytest.mark.slow] if case.slow or case.id in slow_rows else []


@pytest.fixture
def xb(xb_case: Case) -> XB:
    """The backend under test; see :mod:`bp_xp.testing`."""
    found = _resolve(xb_case)
    if isinstance(found, str):
        if xb_case.family in _required():
            pytest.fail(f"{xb_case.id} is required by BP_XP_REQUIRE but unavailable: {found}")
        pytest.skip(f"{xb_case.id}: {found}")
    return XB(xb_case, found)
