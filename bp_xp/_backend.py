"""Backend and device resolution: the one place that knows concrete array libraries.

Layers, functions and optimizers never name a backend. They ask :func:`namespace_of`
for the Array API namespace of their inputs (which also refuses mixed backends and
devices with an error naming both), and users pick where their arrays live with a
string such as ``"torch:cuda:0"`` through :func:`resolve_backend`.

Host data (NumPy arrays, lists, Python numbers) crosses to a backend through
:meth:`Backend.asarray` / :func:`to_device` and comes back through :func:`to_numpy`.
"""

from __future__ import annotations

import dataclasses
import importlib
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendError",
    "BackendMismatchError",
    "BackendUnavailableError",
    "available_backends",
    "backend_info",
    "backend_of",
    "namespace_of",
    "resolve_backend",
    "to_device",
    "to_numpy",
]

#: Every backend bp_xp knows, in the order it prefers them.
BACKEND_NAMES: tuple[str, ...] = ("numpy", "cupy", "torch", "jax", "dask", "array_api_strict")


class BackendError(ValueError):
    """Base class of bp_xp's backend and device errors.

    Examples
    --------
    >>> import bp_xp
    >>> issubclass(bp_xp.BackendMismatchError, bp_xp.BackendError)
    True
    """


class BackendUnavailableError(BackendError):
    """A backend or device was named that is unknown, not installed, or not working here.

    Examples
    --------
    >>> import bp_xp
    >>> bp_xp.resolve_backend("numpy:cuda")
    Traceback (most recent call last):
    ...
    bp_xp._backend.BackendUnavailableError: backend 'numpy' has only the device 'cpu', not 'cuda'
    """


class BackendMismatchError(BackendError, TypeError):
    """Arrays from different backends, or on different devices, met in one computation.

    Examples
    --------
    >>> import bp_xp
    >>> a = bp_xp.to_device([1.0], "array_api_strict")
    >>> b = bp_xp.to_device([1.0], "array_api_strict:device1")
    >>> bp_xp.namespace_of(a, b, names=("a", "b"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    bp_xp._backend.BackendMismatchError: bp_xp: arrays on different devices met in one computation: a is on array_api_strict.Device('CPU_DEVICE'), b is on array_api_strict.Device('device1'). ...
    """


# --------------------------------------------------------------------------------------
# Per-backend knowledge: how to import it, parse a device, and move host data onto it.
# --------------------------------------------------------------------------------------


def _import(module: str, backend: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend {backend!r} is not installed ({exc}); install it with "
            f"`pip install \"bp_xp[{_EXTRA.get(backend, backend)}]\"`. {_available_hint()}"
        ) from exc


_EXTRA = {"array_api_strict": "test"}


def _split_index(text: str) -> tuple[str, int | None]:
    """``"gpu:1"`` -> ``("gpu", 1)``; ``"1"`` -> ``("", 1)``; ``"cpu"`` -> ``("cpu", None)``."""
    head, _, tail = text.rpartition(":")
    if tail.isdigit():
        return head, int(tail)
    return text, None


def _numpy_device(device: Any) -> Any:
    if device in (None, "cpu"):
        return "cpu"
    raise BackendUnavailableError(f"backend 'numpy' has only the device 'cpu', not {device!r}")


def _cupy_device(device: Any) -> Any:
    cupy = _import("cupy", "cupy")
    count = _cupy_device_count(cupy)
    if count == 0:
        raise BackendUnavailableError(
            "backend 'cupy' is installed but no working CUDA device was found. "
            + _available_hint()
        )
    if isinstance(device, cupy.cuda.Device):
        index = device.id
    elif device is None:
        index = cupy.cuda.runtime.getDevice()
    else:
        kind, index = _split_index(str(device))
        if kind not in ("", "cuda", "gpu") or index is None:
            raise BackendUnavailableError(
                f"cannot read CuPy device {device!r}; expected an index such as 'cupy:0'"
            )
    if not 0 <= index < count:
        raise BackendUnavailableError(
            f"CuPy device {index} does not exist; this machine has {count} CUDA device(s) 0..{count - 1}"
        )
    return cupy.cuda.Device(index)


def _cupy_device_count(cupy: ModuleType) -> int:
    try:
        count = cupy.cuda.runtime.getDeviceCount()
        if count:
            cupy.arange(3).sum()  # a CUDA driver can answer the count and still fail to run
        return int(count)
    except Exception:  # CUDA raises many unrelated types when no driver is present
        return 0


def _torch_device(device: Any) -> Any:
    torch = _import("torch", "torch")
    try:
        dev = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as exc:
        raise BackendUnavailableError(
            f"cannot read torch device {device!r}: {exc}; expected e.g. 'cpu', 'cuda', 'cuda:0'"
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"torch device {str(dev)!r} was asked for but torch.cuda is not available here "
                f"(torch {torch.__version__}). {_available_hint()}"
            )
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        if dev.index >= torch.cuda.device_count():
            raise BackendUnavailableError(
                f"torch device {str(dev)!r} does not exist; this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise BackendUnavailableError("torch device 'mps' was asked for but is not available here")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise BackendUnavailableError(f"torch device type {dev.type!r} is not supported by bp_xp")
    return dev


def _jax_device(device: Any) -> Any:
    jax = _import("jax", "jax")
    if device is None:
        return jax.devices()[0]
    if not isinstance(device, str):
        if device in jax.devices() or device in jax.devices("cpu"):
            return device
        raise BackendUnavailableError(f"{device!r} is not a JAX device of this process")
    platform, index = _split_index(device)
    platform = {"": "gpu", "cuda": "gpu"}.get(platform, platform)
    try:
        devices = jax.devices(platform)
    except RuntimeError as exc:
        raise BackendUnavailableError(
            f"JAX has no {platform!r} devices here ({exc}). {_available_hint()}"
        ) from exc
    index = 0 if index is None else index
    if index >= len(devices):
        raise BackendUnavailableError(
            f"JAX device {device!r} does not exist; {platform!r} has {len(devices)} device(s)"
        )
    return devices[index]


def _dask_device(device: Any) -> Any:
    _import("dask.array", "dask")
    if device in (None, "cpu"):
        return "cpu"
    raise BackendUnavailableError(
        f"backend 'dask' takes no device (chunks decide where work runs), got {device!r}"
    )


def _strict_device(device: Any) -> Any:
    strict = _import("array_api_strict", "array_api_strict")
    devices = strict.__array_namespace_info__().devices()
    if device is None:
        return strict.__array_namespace_info__().default_device()
    if isinstance(device, strict.Device):
        return device
    for dev in devices:
        if str(device) in (dev._device, str(dev)):  # "device1" or "array_api_strict.Device('device1')"
            return dev
    names = ", ".join(d._device for d in devices)
    raise BackendUnavailableError(
        f"array_api_strict has no device {device!r}; its devices are: {names}"
    )


@dataclasses.dataclass(frozen=True)
class _Spec:
    module: str  # what to import for the namespace and version
    namespace: str  # the Array-API-conforming namespace (array_api_compat wrapper where needed)
    parse_device: Callable[[Any], Any]


_SPECS: dict[str, _Spec] = {
    "numpy": _Spec("numpy", "array_api_compat.numpy", _numpy_device),
    "cupy": _Spec("cupy", "array_api_compat.cupy", _cupy_device),
    "torch": _Spec("torch", "array_api_compat.torch", _torch_device),
    "jax": _Spec("jax", "jax.numpy", _jax_device),
    "dask": _Spec("dask", "array_api_compat.dask.array", _dask_device),
    "array_api_strict": _Spec("array_api_strict", "array_api_strict", _strict_device),
}


# --------------------------------------------------------------------------------------
# Backend: a namespace plus a device, the answer to "where do my arrays live?"
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Backend:
    """Where arrays live: an Array API namespace and a device of it.

    Build one with :func:`resolve_backend`; do not construct it directly.

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

    def __str__(self) -> str:
        if self.name in ("numpy", "dask"):
            return self.name
        if self.name == "array_api_strict":
            return f"array_api_strict:{self.device._device}"
        if self.name == "cupy":
            return f"cupy:{self.device.id}"
        if self.name == "jax":
            return f"jax:{self.device.platform}:{self.device.id}"
        return f"torch:{self.device}"

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
        bp_xp._backend.BackendUnavailableError: dtype 'float64' is not available on array_api_strict:no_float64; it supports bool, complex64, float32, int16, int32, int64, int8, uint16, uint32, uint64, uint8.
        """
        name = _dtype_name(dtype)
        supported = self._supported_dtypes()
        if name not in supported:
            hint = (
                " Enable it with jax.config.update('jax_enable_x64', True) before creating arrays."
                if self.name == "jax" and name in ("float64", "int64")
                else ""
            )
            raise BackendUnavailableError(
                f"dtype {name!r} is not available on {self}; it supports "
                f"{', '.join(sorted(supported))}.{hint}"
            )
        return supported[name]

    def _supported_dtypes(self) -> dict[str, Any]:
        info = self.xp.__array_namespace_info__()
        device = None if self.name in ("numpy", "dask", "cupy") else self.device
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's info warns about device types it probes
            dtypes = dict(info.dtypes(device=device))
        if self.name == "jax":
            import jax

            if not jax.config.jax_enable_x64:
                for name in ("float64", "int64", "uint64", "complex128"):
                    dtypes.pop(name, None)
        return dtypes

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
        host = to_numpy(x)
        if dtype is not None:
            target = self.dtype(dtype)
            host = host.astype(_dtype_name(target), copy=False)
        elif host.dtype.kind == "f" and host.dtype.name not in self._supported_dtypes():
            raise BackendUnavailableError(
                f"dtype {host.dtype.name!r} is not available on {self}; pass dtype='float32'"
            )
        xp = self.xp
        if self.name == "numpy":
            return np.array(host, copy=True)
        if self.name == "dask":
            import dask.array as da

            return da.from_array(np.array(host, copy=True), chunks=self.chunks)
        if self.name == "cupy":
            with self.device:
                return xp.asarray(host)
        if self.name == "torch":
            import torch

            return torch.tensor(host, device=self.device)
        return xp.asarray(host, device=self.device, copy=True)

    def owns(self, x: Any) -> bool:
        """Whether ``x`` is an array of this backend on this device.

        Examples
        --------
        >>> import bp_xp
        >>> x = bp_xp.to_device([1.0], "array_api_strict:device1")
        >>> bp_xp.resolve_backend("array_api_strict:device1").owns(x)
        True
        >>> bp_xp.resolve_backend("array_api_strict").owns(x)
        False
        """
        try:
            return backend_of(x) == self
        except BackendError:
            return False


def _dtype_name(dtype: Any) -> str:
    if isinstance(dtype, str):
        return dtype
    name = getattr(dtype, "name", None) or str(dtype)
    return name.rsplit(".", 1)[-1]  # "torch.float32" -> "float32"


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
        For an unknown name, a backend that is not installed, or a device that does not
        exist here. The message lists the backends that work on this machine.

    Examples
    --------
    >>> import bp_xp
    >>> bp_xp.resolve_backend("array_api_strict:device1").device
    array_api_strict.Device('device1')
    """
    if isinstance(backend, Backend):
        if device is None:
            return backend
        backend = backend.name
    name, text_device = _parse_backend(backend)
    spec = _SPECS[name]
    dev = spec.parse_device(device if device is not None else text_device)
    xp = importlib.import_module(spec.namespace)
    return Backend(name, xp, dev)


def _parse_backend(backend: Any) -> tuple[str, str | None]:
    if backend is None:
        return "numpy", None
    if isinstance(backend, ModuleType):
        for name in BACKEND_NAMES:
            root = backend.__name__.removeprefix("array_api_compat.")
            if root.split(".")[0] == name:
                return name, None
        raise BackendUnavailableError(f"namespace {backend.__name__!r} is not a backend bp_xp knows")
    if not isinstance(backend, str):
        raise TypeError(
            f"backend must be a name such as 'torch:cuda:0', a namespace or a Backend, "
            f"got {type(backend).__name__}"
        )
    name, _, dev = backend.strip().partition(":")
    name = {"np": "numpy", "pytorch": "torch", "strict": "array_api_strict"}.get(name, name)
    if name not in _SPECS:
        raise BackendUnavailableError(
            f"unknown backend {backend!r}; bp_xp knows {', '.join(BACKEND_NAMES)}. "
            + _available_hint()
        )
    return name, (dev or None)


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
    for name in BACKEND_NAMES:
        row: dict[str, Any] = {"name": name, "available": False, "version": None,
                               "devices": [], "reason": ""}
        try:
            backend = resolve_backend(name)
            module = importlib.import_module(_SPECS[name].module)
            row["version"] = getattr(module, "__version__", "?")
            row["devices"] = _device_strings(backend)
            backend.xp.sum(backend.asarray([1.0, 2.0], dtype="float32"))
            row["available"] = True
        except Exception as exc:  # report, never crash: this answers "what works here?"
            row["reason"] = str(exc).split(". ")[0]
        rows.append(row)
    return rows


def _device_strings(backend: Backend) -> list[str]:
    name = backend.name
    if name == "cupy":
        import cupy

        return [f"cupy:{i}" for i in range(cupy.cuda.runtime.getDeviceCount())]
    if name == "torch":
        import torch

        cuda = [f"torch:cuda:{i}" for i in range(torch.cuda.device_count())]
        return ["torch:cpu", *cuda]
    if name == "jax":
        import jax

        return [f"jax:{d.platform}:{d.id}" for d in jax.devices()]
    if name == "array_api_strict":
        return [f"array_api_strict:{d._device}" for d in backend.xp.__array_namespace_info__().devices()]
    return [name]


def _available_hint() -> str:
    names = []
    for name in BACKEND_NAMES:
        if name == "cupy":
            continue  # probing CUDA here would be slow and recursive; available_backends() tells
        try:
            importlib.import_module(_SPECS[name].module)
            names.append(name)
        except ImportError:
            pass
    return f"Installed here: {', '.join(names)}."


# --------------------------------------------------------------------------------------
# Namespaces of arrays: the hot path every layer call goes through.
# --------------------------------------------------------------------------------------

_NAMESPACE_BY_TYPE: dict[type, ModuleType] = {}
_SINGLE_DEVICE_TYPES: set[type] = {np.ndarray}
# Array types whose ``.device`` attribute is what array_api_compat.device() returns, so the
# device check can read it directly: torch tensors (array_api_compat's lookup costs ~1 us
# per array, and a training step makes a few dozen checks).
_DEVICE_ATTRIBUTE_TYPES: set[type] = set()


def namespace_of(*arrays: Any, names: Sequence[str] | None = None) -> ModuleType:
    """The Array API namespace shared by ``arrays``; refuses mixed backends or devices.

    This is :func:`array_api_compat.array_namespace` with two additions: a per-type
    cache (layers call it on every forward and backward), and a device check, so that
    ``x`` on one device and ``W`` on another fail *before* any compute with an error
    naming both.

    Parameters
    ----------
    *arrays
        Arrays (Python scalars and ``None`` are ignored).
    names : sequence of str, optional
        Names of ``arrays`` for the error message (``("x", "W")``).

    Raises
    ------
    BackendMismatchError
        When the arrays come from different backends or sit on different devices.
    TypeError
        When none of the arguments is an array.

    Examples
    --------
    >>> import numpy as np, bp_xp
    >>> bp_xp.namespace_of(np.ones(2), np.zeros(3)).__name__
    'array_api_compat.numpy'
    >>> bp_xp.namespace_of(bp_xp.to_device([1.0], "array_api_strict")).__name__
    'array_api_strict'
    """
    first = type(arrays[0])
    xp = _NAMESPACE_BY_TYPE.get(first)
    if xp is not None:
        if len(arrays) == 1 or (first in _SINGLE_DEVICE_TYPES
                                and all(type(a) is first for a in arrays)):
            return xp
        if all(type(a) is first for a in arrays):
            if first in _DEVICE_ATTRIBUTE_TYPES:
                device = arrays[0].device
                if all(a.device == device for a in arrays):
                    return xp
            _check_same_device(arrays, names)
            return xp
    return _namespace_slow(arrays, names)


def _namespace_slow(arrays: Sequence[Any], names: Sequence[str] | None) -> ModuleType:
    labelled = [
        (names[i] if names else f"argument {i}", a)
        for i, a in enumerate(arrays)
        if a is not None and type(a) not in (bool, int, float, complex)
    ]
    if not labelled:
        raise TypeError("bp_xp: expected at least one array, got only Python scalars or None")
    try:
        xp = array_api_compat.array_namespace(*(a for _, a in labelled))
    except TypeError as exc:
        described = ", ".join(f"{label} is {_describe(a)}" for label, a in labelled)
        raise BackendMismatchError(
            f"bp_xp: arrays from different backends met in one computation: {described}. "
            "Move them to one backend first, e.g. with bp_xp.to_device(array, 'torch:cuda:0')."
        ) from exc
    if len({type(a) for _, a in labelled}) == 1:
        _NAMESPACE_BY_TYPE[type(labelled[0][1])] = xp
        if array_api_compat.is_torch_array(labelled[0][1]):
            _DEVICE_ATTRIBUTE_TYPES.add(type(labelled[0][1]))
    if len(labelled) > 1:
        _check_same_device([a for _, a in labelled], [label for label, _ in labelled])
    return xp


def _check_same_device(arrays: Sequence[Any], names: Sequence[str] | None) -> None:
    devices = [array_api_compat.device(a) for a in arrays]
    first = devices[0]
    for dev in devices[1:]:
        if dev != first:
            labels = names or [f"argument {i}" for i in range(len(arrays))]
            described = ", ".join(f"{label} is on {d}" for label, d in zip(labels, devices))
            raise BackendMismatchError(
                f"bp_xp: arrays on different devices met in one computation: {described}. "
                "Move them to one device first, e.g. with bp_xp.to_device(array, backend, device)."
            )


def _describe(x: Any) -> str:
    try:
        return f"a {backend_of(x)} array"
    except BackendError:
        return f"a {type(x).__module__}.{type(x).__qualname__}"


# Unsigned integers of each float width, for the bitwise fast path of zero_where.
_UINT_OF_FLOAT = {np.dtype(np.float32): np.dtype(np.uint32), np.dtype(np.float64): np.dtype(np.uint64)}
# Below this many elements torch.where's fixed cost wins over the bitwise path's three calls.
_TORCH_BITWISE_MIN_SIZE = 65536


def zero_where(mask: Any, x: Any, xp: ModuleType | None = None) -> Any:
    """``where(mask, 0, x)``: ``x`` with zeros where ``mask`` is true (a new array).

    The ReLU layer's forward and backward. The portable path is ``xp.where``. On the
    CPU, NumPy's and PyTorch's ``where`` are branchy and slow when the mask is random
    (about 2-4 ns per element: for a wide network, more than all other element-wise work
    of a step), so float32/float64 NumPy arrays, and large CPU torch tensors that do not
    require grad, of the mask's shape take a bitwise path instead: the mask becomes an
    all-zeros/all-ones integer per element and is ANDed with ``x``'s bits. The result is
    bit for bit what ``where`` gives (``+0.0`` where masked; NaN, infinities and ``-0.0``
    elsewhere kept).

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp._backend import zero_where
    >>> x = np.array([1.5, -2.0, np.inf, np.nan])
    >>> zero_where(x < 0, x)
    array([1.5, 0. , inf, nan])
    >>> zero_where(np.isinf(x), x)
    array([ 1.5, -2. ,  0. ,  nan])
    """
    kind = type(x)
    if type(mask) is kind and mask.shape == x.shape:
        if kind is np.ndarray:
            uint = _UINT_OF_FLOAT.get(x.dtype)
            if uint is not None and mask.dtype == np.bool_:
                bits = mask.astype(uint)  # 1 where masked
                bits -= 1  # 0 where masked, all ones elsewhere
                bits &= x.view(uint)
                return bits.view(x.dtype)
        elif kind in _DEVICE_ATTRIBUTE_TYPES:  # torch
            bits = _torch_zero_where(mask, x)
            if bits is not None:
                return bits
    if xp is None:
        xp = namespace_of(mask, x, names=("mask", "x"))
    return xp.where(mask, 0, x)


def _torch_zero_where(mask: Any, x: Any) -> Any:
    """The bitwise path of :func:`zero_where` for CPU tensors, or ``None`` where it does not apply."""
    import torch

    integer = {torch.float32: torch.int32, torch.float64: torch.int64}.get(x.dtype)
    if (integer is None or mask.dtype != torch.bool or x.device.type != "cpu"
            or x.requires_grad or x.numel() < _TORCH_BITWISE_MIN_SIZE):
        return None
    bits = mask.to(integer)  # 1 where masked
    bits -= 1  # 0 where masked, all ones elsewhere
    bits &= x.view(integer)
    return bits.view(x.dtype)


def backend_of(x: Any) -> Backend:
    """The :class:`Backend` (namespace and device) an array lives on.

    Examples
    --------
    >>> import numpy as np, bp_xp
    >>> str(bp_xp.backend_of(np.zeros(3)))
    'numpy'
    """
    if array_api_compat.is_numpy_array(x):
        name = "numpy"
    elif array_api_compat.is_torch_array(x):
        name = "torch"
    elif array_api_compat.is_cupy_array(x):
        name = "cupy"
    elif array_api_compat.is_jax_array(x):
        name = "jax"
    elif array_api_compat.is_dask_array(x):
        name = "dask"
    elif type(x).__module__.startswith("array_api_strict"):
        name = "array_api_strict"
    else:
        raise BackendError(f"{type(x).__qualname__} is not an array of a backend bp_xp knows")
    device = array_api_compat.device(x)
    if name == "dask":
        return Backend(name, importlib.import_module(_SPECS[name].namespace), "cpu",
                       chunks=x.chunks)
    return Backend(name, importlib.import_module(_SPECS[name].namespace), device)


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
    """A NumPy array with the values of ``x``, from any backend or device (host copy).

    This synchronises with the device: call it outside training steps.

    Examples
    --------
    >>> import bp_xp
    >>> bp_xp.to_numpy(bp_xp.to_device([1, 2], "array_api_strict:device1"))
    array([1, 2])
    """
    if isinstance(x, np.ndarray):
        return x
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if array_api_compat.is_dask_array(x):
        return to_numpy(x.compute())
    if type(x).__module__.startswith("array_api_strict"):
        import array_api_strict

        return np.asarray(x.to_device(array_api_strict.Device("CPU_DEVICE")))
    return np.asarray(x)
