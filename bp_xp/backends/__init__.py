"""Backends: the one place that knows concrete array libraries.

Each backend is one file of this package (:mod:`~bp_xp.backends.numpy`,
:mod:`~bp_xp.backends.cupy`, :mod:`~bp_xp.backends.torch`, :mod:`~bp_xp.backends.jax`,
:mod:`~bp_xp.backends.dask`, :mod:`~bp_xp.backends.array_api_strict`) that says, with
module-level names:

- ``NAME``, ``ALIASES``, ``MODULE`` (what to import for the version), ``NAMESPACE`` (its
  Array API namespace), ``EXTRA`` (the pip extra that installs it);
- ``is_array(x)`` and ``is_namespace(xp)`` (array-api-compat's predicates where they exist);
- ``parse_device(spec)`` (``None``, text or a device object -> the library's device),
  ``format_device(device)`` (back to text, or ``None`` when there is only one),
  ``devices()`` and ``dtypes(xp, device)``;
- ``from_host(host, device, chunks)`` and ``to_host(x)``, both always copies;
- ``synchronize(device, arrays)`` (wait for queued device work);
- optionally ``KERNELS``, its fast kernels by name (see "Fast kernels" below),
  ``SINGLE_DEVICE`` / ``DEVICE_ATTRIBUTE`` (shortcuts for :func:`namespace_of`'s
  device check), ``chunks_of(x)``, ``missing_dtype_hint(name)``, ``PROBE_IN_HINTS``.

Adding a backend is one such file, its name in :data:`BACKEND_NAMES`, and a row of the
test matrix (:data:`bp_xp.testing.CASES`).

Layers, functions and optimizers never name a backend: they ask :func:`namespace_of`
for the namespace of their inputs. Users pick where arrays live with a string such as
``"torch:cuda:0"`` through :func:`resolve_backend`; host data crosses with
:meth:`Backend.asarray` / :func:`to_device` and comes back with :func:`to_numpy`.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from ._errors import BackendError, BackendMismatchError, BackendUnavailableError, DTypeError
from ._namespace import _NAMESPACE_BY_TYPE, FAST_KERNELS, namespace_of
from ._native import conv2d, max_pool2d, softmax_cross_entropy_labels

__all__ = [
    "BACKEND_NAMES",
    "FLOAT_DTYPES",
    "Backend",
    "BackendError",
    "BackendMismatchError",
    "BackendUnavailableError",
    "DTypeError",
    "available_backends",
    "backend_info",
    "backend_of",
    "conv2d",
    "dtype_name",
    "float_dtype",
    "fast_kernel",
    "installed_hint",
    "max_pool2d",
    "module_of",
    "namespace_of",
    "resolve_backend",
    "softmax_cross_entropy_labels",
    "subtract_scaled",
    "to_device",
    "to_numpy",
    "zero_where",
]

#: Every backend bp_xp knows, in the order it prefers them: the registry. Each name is a
#: module of this package.
BACKEND_NAMES: tuple[str, ...] = ("numpy", "cupy", "torch", "jax", "dask", "array_api_strict")

_MODULES: dict[str, ModuleType] = {
    name: importlib.import_module(f"{__name__}.{name}") for name in BACKEND_NAMES
}
_ALIASES: dict[str, str] = {alias: m.NAME for m in _MODULES.values() for alias in m.ALIASES}

#: The dtypes a network may have (the Array API's real floating dtypes).
FLOAT_DTYPES: tuple[str, ...] = ("float32", "float64")


def module_of(x: Any) -> ModuleType | None:
    """The backend file that owns array ``x``, or ``None`` when no backend of bp_xp does.

    Examples
    --------
    >>> import numpy as np
    >>> module_of(np.zeros(2)).NAME, module_of([1.0])
    ('numpy', None)
    """
    for module in _MODULES.values():
        if module.is_array(x):
            return module
    return None


# --------------------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------------------


def dtype_name(dtype: Any) -> str:
    """The standard name of a dtype given in any form bp_xp accepts.

    Names (``"float32"``, ``"f4"``, ``"float"``), NumPy dtypes and scalar types, the
    builtins (``float`` is float64, as in NumPy), and the dtype objects of torch, JAX
    and array-api-strict all map to their Array API name.

    Examples
    --------
    >>> import numpy as np
    >>> [dtype_name(d) for d in ("float32", np.float32, np.dtype("float64"), float, "f4")]
    ['float32', 'float32', 'float64', 'float64', 'float32']
    >>> import array_api_strict as strict
    >>> dtype_name(strict.float32)
    'float32'
    """
    if isinstance(dtype, str):
        text = dtype.strip()
        try:
            return np.dtype(text).name
        except TypeError:  # not a NumPy name (e.g. "bfloat16"): keep the last dotted part
            return text.rsplit(".", 1)[-1]
    name = getattr(dtype, "name", None)
    if isinstance(name, str) and not isinstance(dtype, type):
        return name  # np.dtype, JAX dtypes
    try:
        return np.dtype(dtype).name  # np.float32, float, jax.numpy.float32
    except TypeError:
        return str(dtype).rsplit(".", 1)[-1]  # torch.float32, array_api_strict.float32


def _shown(dtype: Any) -> str:
    return repr(dtype) if isinstance(dtype, str) else f"{dtype!r}"


# --------------------------------------------------------------------------------------
# Backend: a namespace plus a device, the answer to "where do my arrays live?"
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Backend:
    """Where arrays live: an Array API namespace and a device of it.

    Build one with :func:`resolve_backend` (or :func:`backend_of`); do not construct it
    directly.

    Attributes
    ----------
    name : str
        One of :data:`BACKEND_NAMES`.
    xp : module
        The Array API namespace (``array_api_compat.numpy``, ``jax.numpy``, ...).
    device : object
        The backend's own device object (``torch.device``, ``cupy.cuda.Device``, a JAX
        device, ``array_api_strict.Device``), or ``"cpu"`` for NumPy and Dask.
    chunks : object
        Dask only: the chunking :meth:`asarray` uses (``"auto"`` by default).

    Examples
    --------
    >>> import bp_xp
    >>> b = bp_xp.resolve_backend("numpy")
    >>> str(b), b.asarray([1.0, 2.0], dtype="float32").dtype
    ('numpy', dtype('float32'))
    """

    name: str
    xp: ModuleType = dataclasses.field(repr=False)
    device: Any
    chunks: Any = "auto"

    @property
    def module(self) -> ModuleType:
        """The backend file (:mod:`bp_xp.backends.torch`, ...) that implements this backend."""
        return _MODULES[self.name]

    def __str__(self) -> str:
        text = self.module.format_device(self.device)
        return self.name if text is None else f"{self.name}:{text}"

    def dtype(self, dtype: Any) -> Any:
        """The namespace's dtype for ``dtype`` (a name such as ``"float32"`` or a dtype).

        Raises :class:`BackendUnavailableError` when the device cannot hold it (for
        example ``float64`` on array_api_strict's ``no_float64`` device, or on JAX
        without ``jax_enable_x64``).

        Examples
        --------
        >>> import bp_xp
        >>> bp_xp.resolve_backend("array_api_strict").dtype("float64")
        array_api_strict.float64
        >>> bp_xp.resolve_backend("array_api_strict:no_float64").dtype("float64")
        Traceback (most recent call last):
        ...
        bp_xp.BackendUnavailableError: dtype 'float64' is not available on ...
        """
        name = dtype_name(dtype)
        supported = self.supported_dtypes()
        if name not in supported:
            hint = getattr(self.module, "missing_dtype_hint", lambda name: "")(name)
            raise BackendUnavailableError(
                f"dtype {name!r} is not available on {self}; it supports "
                f"{', '.join(sorted(supported))}.{hint}"
            )
        return supported[name]

    def float_dtype(self, dtype: Any) -> Any:
        """The namespace's float dtype for a network's ``dtype``; anything else is refused.

        Accepts ``"float32"``, ``"float64"``, ``np.float32``, ``np.dtype("float64")``,
        ``torch.float32``, the builtin ``float`` (float64)...; refuses integer, bool and
        complex dtypes with :class:`DTypeError`, and a float dtype the device lacks with
        :class:`BackendUnavailableError`, both naming what was given and what the device has.

        Examples
        --------
        >>> import numpy as np, bp_xp
        >>> numpy = bp_xp.resolve_backend("numpy")
        >>> numpy.float_dtype(float), numpy.float_dtype(np.float32)
        (dtype('float64'), dtype('float32'))
        >>> numpy.float_dtype(bool)
        Traceback (most recent call last):
        ...
        bp_xp.DTypeError: dtype <class 'bool'> is not a float dtype; a network's dtype must be one ...
        >>> bp_xp.resolve_backend("array_api_strict:no_float64").float_dtype(np.float64)
        Traceback (most recent call last):
        ...
        bp_xp.BackendUnavailableError: dtype <class 'numpy.float64'> (float64) is not available on ...
        """
        name = dtype_name(dtype)
        supported = self.supported_dtypes()
        floats = [n for n in FLOAT_DTYPES if n in supported]
        if name not in FLOAT_DTYPES:
            raise DTypeError(
                f"dtype {_shown(dtype)} is not a float dtype; a network's dtype must be one of "
                f"{', '.join(floats)} on {self}"
            )
        if name not in supported:
            given = _shown(dtype) if _shown(dtype) == repr(name) else f"{_shown(dtype)} ({name})"
            hint = getattr(self.module, "missing_dtype_hint", lambda name: "")(name)
            raise BackendUnavailableError(
                f"dtype {given} is not available on {self}; its float dtypes are "
                f"{', '.join(floats)}.{hint}"
            )
        return supported[name]

    def supported_dtypes(self) -> dict[str, Any]:
        """Name -> dtype object, for every dtype this device supports."""
        return self.module.dtypes(self.xp, self.device)

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        """Copy ``x`` (host data or an array of any backend) onto this backend and device.

        The result never shares memory with ``x``, so the caller's array cannot be
        changed through it.

        Examples
        --------
        >>> import numpy as np, bp_xp
        >>> host = np.array([1.0, 2.0])
        >>> x = bp_xp.resolve_backend("numpy").asarray(host, dtype="float32")
        >>> x, np.shares_memory(x, host)
        (array([1., 2.], dtype=float32), False)
        """
        host = x if isinstance(x, np.ndarray) else to_numpy(x)  # from_host copies anyway
        if dtype is not None:
            host = host.astype(dtype_name(self.dtype(dtype)), copy=False)
        elif host.dtype.kind == "f" and host.dtype.name not in self.supported_dtypes():
            raise BackendUnavailableError(
                f"dtype {host.dtype.name!r} is not available on {self}; pass dtype='float32'"
            )
        return self.module.from_host(host, self.device, self.chunks)

    def synchronize(self, *arrays: Any) -> None:
        """Wait until the device has finished the work queued so far (or that of ``arrays``).

        For timing GPU code: CuPy and CUDA torch synchronise the device, JAX blocks until
        ``arrays`` are ready, Dask waits for persisted arrays (and computes nothing);
        NumPy and array-api-strict have nothing to wait for.

        Examples
        --------
        >>> import bp_xp
        >>> b = bp_xp.resolve_backend("numpy")
        >>> b.synchronize(b.asarray([1.0]))
        """
        self.module.synchronize(self.device, arrays)


def float_dtype(backend: Any, dtype: Any) -> Any:
    """``resolve_backend(backend).float_dtype(dtype)``: see :meth:`Backend.float_dtype`.

    Examples
    --------
    >>> float_dtype("array_api_strict", "float32")
    array_api_strict.float32
    """
    return resolve_backend(backend).float_dtype(dtype)


# --------------------------------------------------------------------------------------
# Resolving what the user typed
# --------------------------------------------------------------------------------------


def resolve_backend(backend: Any = None, device: Any = None) -> Backend:
    """Turn what a user typed into a :class:`Backend`.

    Parameters
    ----------
    backend : str, module, Backend or None
        A name with an optional device: ``"numpy"``, ``"cupy"``, ``"cupy:1"``,
        ``"torch"``, ``"torch:cuda:0"``, ``"jax"``, ``"jax:gpu"``, ``"dask"``,
        ``"array_api_strict"``, ``"array_api_strict:device1"``; or an array namespace
        (``numpy``, ``torch``, ``jax.numpy``, ``array_api_compat.torch``...); or a
        Backend. ``None`` means ``"numpy"``.
    device : str or device object, optional
        Overrides the device part of ``backend``: ``"cuda:0"``, ``torch.device(...)``,
        ``cupy.cuda.Device(1)``, a JAX device, ``"device1"``...

    Raises
    ------
    BackendUnavailableError
        For an unknown name (with the closest known one), a backend that is not
        installed, or a device that does not exist here. The message lists the backends
        installed here.

    Examples
    --------
    >>> import bp_xp
    >>> bp_xp.resolve_backend("array_api_strict:device1").device
    array_api_strict.Device('device1')
    >>> bp_xp.resolve_backend("numpi")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    bp_xp.BackendUnavailableError: unknown backend 'numpi'; did you mean 'numpy'? bp_xp knows ...
    """
    if isinstance(backend, Backend):
        if device is None:
            return backend
        backend = backend.name
    name, text_device = _parse_backend(backend)
    module = _MODULES[name]
    dev = module.parse_device(device if device is not None else text_device)
    return Backend(name, importlib.import_module(module.NAMESPACE), dev)


def _parse_backend(backend: Any) -> tuple[str, str | None]:
    if backend is None:
        return "numpy", None
    if isinstance(backend, ModuleType):
        for module in _MODULES.values():
            if module.is_namespace(backend) or backend.__name__ in (module.MODULE, module.NAMESPACE):
                return module.NAME, None
        raise BackendUnavailableError(f"namespace {backend.__name__!r} is not a backend bp_xp knows")
    if not isinstance(backend, str):
        raise TypeError(
            f"backend must be a name such as 'torch:cuda:0', a namespace or a Backend, "
            f"got {type(backend).__name__}"
        )
    name, _, dev = backend.strip().partition(":")
    name = _ALIASES.get(name, name)
    if name not in _MODULES:
        close = difflib.get_close_matches(name.lower(), [*BACKEND_NAMES, *_ALIASES], n=1)
        guess = f" did you mean {_ALIASES.get(close[0], close[0])!r}?" if close else ""
        raise BackendUnavailableError(
            f"unknown backend {backend!r};{guess} bp_xp knows {', '.join(BACKEND_NAMES)}. "
            + installed_hint()
        )
    return name, (dev or None)


def installed_hint() -> str:
    """``"Installed here: numpy, torch, ..."``: the backends importable on this machine.

    CuPy is left out: probing CUDA inside an error message would be slow;
    :func:`available_backends` tells whether it works.
    """
    names = []
    for module in _MODULES.values():
        if not getattr(module, "PROBE_IN_HINTS", True):
            continue
        try:
            importlib.import_module(module.MODULE)
            names.append(module.NAME)
        except ImportError:
            pass
    return f"Installed here: {', '.join(names)}."


def available_backends() -> tuple[str, ...]:
    """Names of the backends that are importable *and* work on this machine.

    CuPy is listed only when a CUDA device runs a kernel.

    Examples
    --------
    >>> import bp_xp
    >>> "numpy" in bp_xp.available_backends()
    True
    """
    return tuple(row["name"] for row in backend_info() if row["available"])


def backend_info() -> list[dict[str, Any]]:
    """One row per known backend: name, available, version, devices, and why not.

    ``bp-xp backends`` prints this as a table.

    Examples
    --------
    >>> import bp_xp
    >>> row = bp_xp.backend_info()[0]
    >>> row["name"], row["available"], row["devices"], row["reason"]
    ('numpy', True, ['numpy'], '')
    """
    rows = []
    for name, module in _MODULES.items():
        row: dict[str, Any] = {"name": name, "available": False, "version": None,
                               "devices": [], "reason": ""}
        try:
            backend = resolve_backend(name)
            row["version"] = getattr(importlib.import_module(module.MODULE), "__version__", "?")
            row["devices"] = [str(dataclasses.replace(backend, device=d)) for d in module.devices()]
            backend.xp.sum(backend.asarray([1.0, 2.0], dtype="float32"))
            row["available"] = True
        except Exception as exc:  # report, never crash: this answers "what works here?"
            row["reason"] = str(exc).split(". ")[0]
        rows.append(row)
    return rows


def backend_of(x: Any) -> Backend:
    """The :class:`Backend` (namespace and device) an array lives on.

    Examples
    --------
    >>> import numpy as np, bp_xp
    >>> str(bp_xp.backend_of(np.zeros(3)))
    'numpy'
    """
    module = module_of(x)
    if module is None:
        raise BackendError(f"{type(x).__qualname__} is not an array of a backend bp_xp knows")
    xp = importlib.import_module(module.NAMESPACE)
    chunks_of = getattr(module, "chunks_of", None)
    if chunks_of is not None:
        return Backend(module.NAME, xp, module.parse_device(None), chunks=chunks_of(x))
    return Backend(module.NAME, xp, array_api_compat.device(x))


# --------------------------------------------------------------------------------------
# Moving data
# --------------------------------------------------------------------------------------


def to_device(x: Any, backend: Any = None, device: Any = None, *, dtype: Any = None) -> Any:
    """Copy ``x`` (host data or an array of any backend) to ``backend``/``device``.

    Examples
    --------
    >>> import bp_xp
    >>> y = bp_xp.to_device([1.0, 2.0], "array_api_strict:device1", dtype="float32")
    >>> y.device
    array_api_strict.Device('device1')
    """
    return resolve_backend(backend, device).asarray(x, dtype=dtype)


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy copy of ``x``, from any backend or device; it never shares memory with ``x``.

    Writing into the result never changes ``x`` (a network's parameter, say). This
    synchronises with the device: call it outside training steps.

    Examples
    --------
    >>> import numpy as np, bp_xp
    >>> bp_xp.to_numpy(bp_xp.to_device([1, 2], "array_api_strict:device1"))
    array([1, 2])
    >>> w = np.zeros(2)
    >>> np.shares_memory(bp_xp.to_numpy(w), w)
    False
    """
    module = module_of(x)
    if module is None:
        return np.array(x, copy=True)  # lists, Python numbers, other array-likes
    return module.to_host(x)


# --------------------------------------------------------------------------------------
# Fast kernels: a portable spelling, and a backend's own faster way where it has one
# --------------------------------------------------------------------------------------
#
# Layers, functions and optimizers call the dispatchers below instead of spelling these
# few operations themselves. Each dispatcher looks up the fast function that the array's
# backend file lists under the kernel's name in its ``KERNELS`` (learned per array type by
# namespace_of, so the lookup is one dict access) and falls back to the portable Array API
# spelling, which is the default: when the backend has no such kernel, when its kernel
# returns ``None`` (it does not apply to these arrays), or when the array type is not yet
# known. A fast kernel gives what the portable spelling gives, bit for bit or within one
# rounding (tests/test_backend.py checks each on every backend of the test matrix).


def fast_kernel(name: str, x: Any) -> Any:
    """The fast function the backend of ``x`` has for kernel ``name``, or ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> fast_kernel("zero_where", np.zeros(2)).__module__
    'bp_xp.backends.numpy'
    >>> fast_kernel("subtract_scaled", np.zeros(2)) is None  # NumPy: the portable spelling
    True
    """
    table = FAST_KERNELS.get(name)
    fast = None if table is None else table.get(type(x))
    if fast is None and type(x) not in _NAMESPACE_BY_TYPE and hasattr(x, "shape"):
        try:
            namespace_of(x)  # a type not met yet: learn its backend's kernels, then look again
        except TypeError:
            return None
        table = FAST_KERNELS.get(name)
        fast = None if table is None else table.get(type(x))
    return fast


def subtract_scaled(a: Any, b: Any, scale: float) -> Any:
    """``a - scale * b`` as a new array: the SGD update.

    ``scale`` is a Python float, so the result keeps ``a``'s dtype. PyTorch does it in one
    kernel (``torch.sub(a, b, alpha=scale)``) instead of two passes and two allocations.

    Examples
    --------
    >>> import numpy as np
    >>> subtract_scaled(np.array([1.0, 2.0]), np.array([2.0, 2.0]), 0.5)
    array([0., 1.])
    """
    fast = fast_kernel("subtract_scaled", a)
    if fast is not None:
        out = fast(a, b, scale)
        if out is not None:
            return out
    return a - scale * b


def zero_where(mask: Any, x: Any, xp: ModuleType | None = None) -> Any:
    """``where(mask, 0, x)``: ``x`` with zeros where ``mask`` is true (a new array).

    The ReLU layer's forward and backward. The portable path is ``xp.where``. On the
    CPU, NumPy's and PyTorch's ``where`` are branchy and slow when the mask is random
    (about 2-4 ns per element: for a wide network, more than all other element-wise work
    of a step), so the NumPy and torch backend files supply a bitwise path (their
    ``zero_where``) that gives the same bits, used when ``mask`` has ``x``'s type and
    shape and the backend's conditions hold.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.backends import zero_where
    >>> x = np.array([1.5, -2.0, np.inf, np.nan])
    >>> zero_where(x < 0, x)
    array([1.5, 0. , inf, nan])
    >>> zero_where(np.isinf(x), x)
    array([ 1.5, -2. ,  0. ,  nan])
    """
    kind = type(x)
    fast = FAST_KERNELS["zero_where"].get(kind)
    if fast is not None and type(mask) is kind and mask.shape == x.shape:
        out = fast(mask, x)
        if out is not None:
            return out
    if xp is None:
        xp = namespace_of(mask, x, names=("mask", "x"))
    return xp.where(mask, 0, x)
