"""Where arrays live: :class:`Backend`, resolving what users type, moving data, dtypes.

Everything here asks the registry (:mod:`bp_xp.backends._registry`) for a backend's
:class:`~bp_xp.backends.BackendSpec` and uses only what the spec declares.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from ._builtin import BUILTIN_NAMES
from ._errors import BackendError, BackendUnavailableError, DTypeError
from ._registry import backend_names, get_spec, installed_hint, spec_of
from ._spec import BackendSpec

__all__ = [
    "BACKEND_NAMES",
    "FLOAT_DTYPES",
    "Backend",
    "available_backends",
    "backend_info",
    "backend_of",
    "dtype_name",
    "enable_float64",
    "float_dtype",
    "is_tracer",
    "resolve_backend",
    "settle",
    "to_device",
    "to_numpy",
]

#: The backends that ship with bp_xp, in the order it prefers them (every name is a file of
#: this package). :func:`~bp_xp.backends.backend_names` adds those registered since.
BACKEND_NAMES: tuple[str, ...] = BUILTIN_NAMES

#: The dtypes a network may have (the Array API's real floating dtypes).
FLOAT_DTYPES: tuple[str, ...] = ("float32", "float64")


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
        A registered backend's name (:func:`~bp_xp.backends.backend_names`).
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
    def spec(self) -> BackendSpec:
        """What this backend can do: its :class:`~bp_xp.backends.BackendSpec`."""
        spec = get_spec(self.name)
        if spec is None:
            raise BackendUnavailableError(f"backend {self.name!r} is no longer registered")
        return spec

    def __str__(self) -> str:
        text = self.spec.format_device(self.device)
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
            hint = self.spec.missing_dtype_hint(name)
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
            hint = self.spec.missing_dtype_hint(name)
            raise BackendUnavailableError(
                f"dtype {given} is not available on {self}; its float dtypes are "
                f"{', '.join(floats)}.{hint}"
            )
        return supported[name]

    def supported_dtypes(self) -> dict[str, Any]:
        """Name -> dtype object, for every dtype this device supports."""
        return self.spec.dtypes(self.xp, self.device)

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
        return self.spec.from_host(host, self.device, self.chunks)

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
        self.spec.synchronize(self.device, arrays)


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
    spec = get_spec(name)
    assert spec is not None  # _parse_backend returned a registered name
    dev = spec.parse_device(device if device is not None else text_device)
    return Backend(spec.name, spec.xp(), dev)


def _parse_backend(backend: Any) -> tuple[str, str | None]:
    if backend is None:
        return "numpy", None
    if isinstance(backend, ModuleType):
        for name in backend_names():
            spec = get_spec(name)
            if spec is not None and (spec.is_namespace(backend)
                                     or backend.__name__ == spec.module
                                     or backend.__name__ == getattr(spec.namespace, "__name__",
                                                                    spec.namespace)):
                return spec.name, None
        raise BackendUnavailableError(f"namespace {backend.__name__!r} is not a backend bp_xp knows")
    if not isinstance(backend, str):
        raise TypeError(
            f"backend must be a name such as 'torch:cuda:0', a namespace or a Backend, "
            f"got {type(backend).__name__}"
        )
    name, _, dev = backend.strip().partition(":")
    spec = get_spec(name)
    if spec is None:
        names = backend_names()
        aliases = {alias: n for n in names for alias in get_spec(n).aliases}  # type: ignore[union-attr]
        close = difflib.get_close_matches(name.lower(), [*names, *aliases], n=1)
        guess = f" did you mean {aliases.get(close[0], close[0])!r}?" if close else ""
        raise BackendUnavailableError(
            f"unknown backend {backend!r};{guess} bp_xp knows {', '.join(names)}. "
            + installed_hint()
        )
    return spec.name, (dev or None)


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
    for name in backend_names():
        row: dict[str, Any] = {"name": name, "available": False, "version": None,
                               "devices": [], "reason": ""}
        try:
            backend = resolve_backend(name)
            spec = backend.spec
            row["version"] = getattr(importlib.import_module(spec.module), "__version__", "?")
            row["devices"] = [str(dataclasses.replace(backend, device=d)) for d in spec.devices()]
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
    spec = spec_of(x)
    if spec is None:
        raise BackendError(f"{type(x).__qualname__} is not an array of a backend bp_xp knows")
    xp = spec.xp()
    if spec.chunks_of is not None:
        return Backend(spec.name, xp, spec.parse_device(None), chunks=spec.chunks_of(x))
    return Backend(spec.name, xp, array_api_compat.device(x))


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
    spec = spec_of(x)
    if spec is None:
        return np.array(x, copy=True)  # lists, Python numbers, other array-likes
    return spec.to_host(x)


# --------------------------------------------------------------------------------------
# Capabilities that core code asks for by array or by name, never by comparing names
# --------------------------------------------------------------------------------------


def is_tracer(x: Any) -> bool:
    """Whether ``x`` is a placeholder of a trace (``jax.jit``), whose values cannot be read.

    Examples
    --------
    >>> import numpy as np
    >>> is_tracer(np.zeros(2)), is_tracer(3.0)
    (False, False)
    """
    spec = spec_of(x)
    return spec is not None and spec.is_tracer(x)


def enable_float64(backend: Any) -> bool:
    """Switch float64 on for ``backend`` where it needs a switch (JAX); ``True`` if it did.

    Call it before the backend creates arrays. Only the name part of ``backend`` is read
    (``"jax:gpu"`` is ``"jax"``); no device is opened.

    Examples
    --------
    >>> enable_float64("numpy")  # float64 needs no switch there
    False
    """
    name = backend.name if isinstance(backend, Backend) else str(backend).strip().partition(":")[0]
    spec = get_spec(name)
    if spec is None or spec.enable_float64 is None:
        return False
    spec.enable_float64()
    return True


def settle(arrays: list[Any]) -> list[Any]:
    """Lazy arrays (Dask) computed and held; other arrays returned as they are.

    Each array is settled by its backend's ``settle`` capability; arrays of backends
    without one (they compute when made) come back unchanged. All lazy arrays of one
    backend are computed together, and nothing is returned unless all were.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros(2)
    >>> settle([a])[0] is a
    True
    """
    out = list(arrays)
    groups: dict[str, list[int]] = {}
    for i, x in enumerate(arrays):
        spec = spec_of(x)
        if spec is not None and spec.settle is not None:
            groups.setdefault(spec.name, []).append(i)
    for name, where in groups.items():
        spec = get_spec(name)
        assert spec is not None and spec.settle is not None
        for i, value in zip(where, spec.settle([arrays[i] for i in where])):
            out[i] = value
    return out


