"""A new backend is one file: this module defines one outside bp_xp and runs the matrix on it.

The backend, ``ext_np``, is a NumPy-backed Array API namespace written here: its arrays are
instances of :class:`ExtArray` (a thin box around an ``ndarray``, not an ``ndarray``), its
namespace is :data:`ext` (every function of ``array_api_compat.numpy``, unboxing the
arguments and boxing the results), and it has one device. Registered through the public
API (:func:`bp_xp.backends.register_backend` and :func:`bp_xp.testing.add_case`), with no
file of ``bp_xp`` edited, it must pass the backend-parametrized tests of bp_xp's own suite.

The matrix (every test of ``tests/`` that takes the ``xb`` fixture, on the ``ext_np`` row)
runs in a child pytest process that loads this module as a plugin
(``-p test_external_backend``): its ``pytest_configure`` registers the backend there, so
this process's registry (and the other tests' view of ``BACKEND_NAMES``) is left as it is.
The recipe is in docs/backends.md, "A new backend".
"""

from __future__ import annotations

import operator
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import array_api_compat.numpy as compat_numpy
import numpy as np
import pytest

import bp_xp
from bp_xp.backends import BackendSpec, BackendUnavailableError
from bp_xp.testing import Case

NAME = "ext_np"


class ExtDevice:
    """The one device of the backend."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExtDevice)

    def __hash__(self) -> int:
        return hash(ExtDevice)

    def __repr__(self) -> str:
        return "ExtDevice()"


DEVICE = ExtDevice()


def _unbox(value: Any) -> Any:
    if isinstance(value, ExtArray):
        return value.data
    if isinstance(value, ExtDevice):
        return "cpu"
    if isinstance(value, (tuple, list)):
        return type(value)(_unbox(v) for v in value)
    if isinstance(value, dict):
        return {k: _unbox(v) for k, v in value.items()}
    return value


def _box(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return ExtArray(value)
    if isinstance(value, np.generic):
        return ExtArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_box(v) for v in value)
    if isinstance(value, list):
        return [_box(v) for v in value]
    return value


class ExtArray:
    """An array of the ``ext_np`` backend: an ``ndarray`` in a box of another type."""

    __slots__ = ("data", "version", "__weakref__")  # weakly referable, as NumPy's arrays are

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.version = 0  # counts in-place changes (the spec's version_stamp)

    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    device = property(lambda self: DEVICE)
    T = property(lambda self: ExtArray(self.data.T))
    mT = property(lambda self: ExtArray(np.swapaxes(self.data, -1, -2)))

    def __array_namespace__(self, api_version: str | None = None) -> types.ModuleType:
        return ext

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return np.array(self.data, dtype=dtype, copy=True)

    def to_device(self, device: Any, stream: Any = None) -> ExtArray:
        if device != DEVICE:
            raise ValueError(f"ext_np has one device, not {device!r}")
        return self

    def __getitem__(self, key: Any) -> Any:
        return _box(self.data[_unbox(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        self.data[_unbox(key)] = _unbox(value)
        self.version += 1

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"ExtArray({self.data!r})"

    def __float__(self) -> float:
        return float(self.data)

    def __int__(self) -> int:
        return int(self.data)

    def __index__(self) -> int:
        return operator.index(self.data)

    def __bool__(self) -> bool:
        return bool(self.data)

    def __complex__(self) -> complex:
        return complex(self.data)

    __hash__ = None  # type: ignore[assignment]


def _binary(op: Any, reflected: bool = False) -> Any:
    def method(self: ExtArray, other: Any) -> Any:
        if not isinstance(other, (ExtArray, bool, int, float, complex)):
            return NotImplemented
        a, b = self.data, _unbox(other)
        return _box(op(b, a) if reflected else op(a, b))
    return method


def _inplace(op: Any) -> Any:
    def method(self: ExtArray, other: Any) -> ExtArray:
        self.data = op(self.data, _unbox(other))
        self.version += 1
        return self
    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or",
              "xor", "lshift", "rshift"):
    _op = getattr(operator, f"{_name}_" if _name in ("and", "or") else _name)
    setattr(ExtArray, f"__{_name}__", _binary(_op))
    setattr(ExtArray, f"__r{_name}__", _binary(_op, reflected=True))
    setattr(ExtArray, f"__i{_name}__", _inplace(getattr(operator, f"i{_name}")))
for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(ExtArray, f"__{_name}__", _binary(getattr(operator, _name)))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(ExtArray, f"__{_name}__", (lambda op: lambda self: _box(op(self.data)))(
        getattr(operator, _name)))


class _Info:
    """``__array_namespace_info__()`` of the namespace: one device, NumPy's dtypes."""

    def capabilities(self) -> dict[str, Any]:
        return compat_numpy.__array_namespace_info__().capabilities()

    def default_device(self) -> ExtDevice:
        return DEVICE

    def devices(self) -> list[ExtDevice]:
        return [DEVICE]

    def default_dtypes(self, *, device: Any = None) -> dict[str, Any]:
        return compat_numpy.__array_namespace_info__().default_dtypes()

    def dtypes(self, *, device: Any = None, kind: Any = None) -> dict[str, Any]:
        return compat_numpy.__array_namespace_info__().dtypes(kind=kind)


class _Namespace(types.ModuleType):
    """Every name of ``array_api_compat.numpy``; functions unbox arguments and box results."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name != "__array_namespace_info__":
            raise AttributeError(name)
        if name == "__array_namespace_info__":
            return _Info
        target = getattr(compat_numpy, name)
        if isinstance(target, type) or not callable(target):
            return target  # dtypes and constants (float32, e, pi, inf, nan, newaxis)

        def call(*args: Any, **kwargs: Any) -> Any:
            return _box(target(*_unbox(args), **_unbox(kwargs)))

        call.__name__ = name
        setattr(self, name, call)
        return call


ext = _Namespace("bp_xp_test_ext_np", "The namespace of the ext_np test backend.")
ext.__array_api_version__ = compat_numpy.__array_api_version__


def _parse_device(device: Any) -> ExtDevice:
    if device is None or device == DEVICE or device == "cpu":
        return DEVICE
    raise BackendUnavailableError(f"backend {NAME!r} has only the device 'cpu', not {device!r}")


SPEC = BackendSpec(
    name=NAME, module="numpy", namespace=ext, extra="numpy",
    is_array=lambda x: isinstance(x, ExtArray),
    is_namespace=lambda xp: xp is ext,
    parse_device=_parse_device,
    format_device=lambda device: None,
    devices=lambda: [DEVICE],
    dtypes=lambda xp, device: _Info().dtypes(),
    from_host=lambda host, device, chunks: ExtArray(np.array(host, copy=True)),
    to_host=lambda x: np.array(x.data, copy=True),
    synchronize=lambda device, arrays: None,
    version_stamp=lambda x: x.version,
)

#: The matrix row of the backend.
CASE = Case(NAME, NAME, NAME)


def pytest_configure(config: pytest.Config) -> None:
    """Run as a plugin (``-p test_external_backend``): the backend joins bp_xp and its matrix."""
    bp_xp.backends.register_backend(SPEC)
    bp_xp.testing.add_case(CASE)


# ------------------------------------------------------------------------------------------
# The tests, run in this process
# ------------------------------------------------------------------------------------------

TESTS = Path(__file__).resolve().parent


def test_the_backend_works_through_the_public_api():
    """Registered and unregistered in this process: resolve, compute, move, mix, forget."""
    bp_xp.backends.register_backend(SPEC)
    try:
        backend = bp_xp.resolve_backend(NAME)
        x = backend.asarray([[1.0, -2.0]], dtype="float32")
        assert isinstance(x, ExtArray) and bp_xp.namespace_of(x) is ext
        net = bp_xp.TwoLayerNet(2, 3, 2, backend=NAME, seed=0)
        loss, grads = net.loss_and_gradient(x, backend.asarray([1], dtype="int64"))
        assert isinstance(loss, ExtArray) and isinstance(grads["W1"], ExtArray)
        reference = bp_xp.TwoLayerNet(2, 3, 2, seed=0).loss(np.array([[1.0, -2.0]], np.float32),
                                                             np.array([1]))
        np.testing.assert_allclose(bp_xp.to_numpy(loss), reference, rtol=1e-6)
        with pytest.raises(bp_xp.BackendMismatchError, match="ext_np"):
            bp_xp.namespace_of(x, np.zeros(2), names=("x", "W"))
        assert NAME in bp_xp.backends.backend_names()
    finally:
        bp_xp.backends.unregister_backend(NAME)
    assert NAME not in bp_xp.backends.backend_names()
    with pytest.raises(BackendUnavailableError, match="unknown backend 'ext_np'"):
        bp_xp.resolve_backend(NAME)


@pytest.mark.slow
def test_the_matrix_passes_on_a_backend_defined_outside_bp_xp():
    """Every backend-parametrized test of bp_xp's suite, on the ``ext_np`` row only, in a child pytest.

    ``-p bp_xp.testing`` comes first so that pytest can rewrite its assertions before this
    module (the plugin that registers the backend) imports bp_xp.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "bp_xp.testing",
         "-p", "test_external_backend", "-k", NAME, str(TESTS),
         f"--ignore={TESTS / Path(__file__).name}"],
        cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=900,
    )
    tail = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, tail
    counts = [line for line in result.stdout.splitlines() if line.startswith(NAME)]
    assert counts and "passed" in counts[0] and "failed" not in counts[0], tail
    assert int(counts[0].split()[1]) >= 300, counts  # the whole matrix ran, not a handful
