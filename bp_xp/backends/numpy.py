"""NumPy: the host backend, always installed, one device (``"cpu"``).

Its Array API namespace is ``array_api_compat.numpy``. It also holds the bitwise fast
path of :func:`bp_xp.backends.zero_where` for NumPy arrays.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Any

import array_api_compat
import numpy as np

from ._errors import BackendUnavailableError
from ._spec import BackendSpec

NAME = "numpy"
ALIASES = ("np",)
MODULE = "numpy"
NAMESPACE = "array_api_compat.numpy"
EXTRA = "numpy"  # a dependency of bp_xp itself: never missing

is_array = array_api_compat.is_numpy_array
is_namespace = array_api_compat.is_numpy_namespace


def parse_device(device: Any) -> str:
    """``None`` or ``"cpu"``: NumPy has no other device.

    Examples
    --------
    >>> parse_device(None)
    'cpu'
    """
    if device in (None, "cpu"):
        return "cpu"
    raise BackendUnavailableError(f"backend 'numpy' has only the device 'cpu', not {device!r}")


def format_device(device: Any) -> str | None:
    """No device part in the string form: ``"numpy"`` says it all."""
    return None


def devices() -> list[Any]:
    """The one device."""
    return ["cpu"]


def dtypes(xp: Any, device: Any) -> dict[str, Any]:
    """Every dtype NumPy has in the Array API."""
    return dict(xp.__array_namespace_info__().dtypes())


def from_host(host: np.ndarray, device: Any, chunks: Any) -> np.ndarray:
    """A new array: never a view of ``host``."""
    return np.array(host, copy=True)


def to_host(x: np.ndarray) -> np.ndarray:
    """A copy: writing into it never changes ``x``."""
    return np.array(x, copy=True)


def synchronize(device: Any, arrays: Sequence[Any]) -> None:
    """NumPy computes eagerly on the host: nothing to wait for."""


# Unsigned integers of each float width, for the bitwise fast path of zero_where.
_UINT_OF_FLOAT: dict[np.dtype, np.dtype] = {
    np.dtype(np.float32): np.dtype(np.uint32),
    np.dtype(np.float64): np.dtype(np.uint64),
}


def zero_where(mask: np.ndarray, x: np.ndarray) -> np.ndarray | None:
    """``where(mask, 0, x)`` by bit operations for float32/float64, or ``None`` where it does not apply.

    NumPy's ``where`` branches per element and is slow on a random mask; ANDing ``x``'s
    bits with an all-zeros/all-ones integer per element is not, and gives the same bits
    (``+0.0`` where masked; NaN, infinities and ``-0.0`` kept elsewhere). The caller has
    checked that ``mask`` is an ndarray of ``x``'s shape.

    Examples
    --------
    >>> x = np.array([1.5, -2.0, np.inf, np.nan])
    >>> zero_where(x < 0, x)
    array([1.5, 0. , inf, nan])
    >>> zero_where(x < 0, x.astype(np.float16)) is None  # no bitwise path: where() does it
    True
    """
    uint = _UINT_OF_FLOAT.get(x.dtype)
    if uint is None or mask.dtype != np.bool_:
        return None
    bits = mask.astype(uint)  # 1 where masked
    bits -= 1  # 0 where masked, all ones elsewhere
    bits &= x.view(uint)
    return bits.view(x.dtype)


def column_major(x: Any) -> Any:
    """A 2-D array in Fortran order (same values); ``None`` when it already is."""
    if x.ndim != 2 or x.flags.f_contiguous:
        return None
    return np.asfortranarray(x)


#: The fast kernels of this backend, by the name :mod:`bp_xp.backends` dispatches on.
KERNELS: dict[str, Callable[..., Any]] = {"zero_where": zero_where, "column_major": column_major}


def version_stamp(x: Any) -> Any:
    """A CRC-32 of the array's memory: it changes when the array is changed in place."""
    try:
        contiguous: Any = np.ascontiguousarray(x)  # typed Any: numpy's stubs lack Buffer
        return zlib.crc32(memoryview(contiguous).cast("B"))
    except (TypeError, ValueError):  # an object array: no buffer to summarise
        return None


def writes_in_place(x: Any) -> bool:
    """A writeable array may take the book's in-place updates."""
    return bool(x.flags.writeable)


#: This backend, declared for the registry (keep it last: it reads the definitions above).
SPEC = BackendSpec(
    name=NAME, aliases=ALIASES, module=MODULE, namespace=NAMESPACE, extra=EXTRA,
    is_array=is_array, is_namespace=is_namespace, parse_device=parse_device,
    format_device=format_device, devices=devices, dtypes=dtypes, from_host=from_host,
    to_host=to_host, synchronize=synchronize,
    kernels=KERNELS, single_device=True,
    version_stamp=version_stamp,
    writes_in_place=writes_in_place,
)

# --------------------------------------------------------------------------------------
# Native convolution, pooling and loss kernels (issue 22): strided windows
# --------------------------------------------------------------------------------------


def conv2d(x: np.ndarray, W: np.ndarray, b: np.ndarray, stride: int, pad: int) -> Any:
    """Convolution by one copy of a strided window view (see :mod:`bp_xp.backends._strided`)."""
    from . import _strided

    return _strided.conv2d(np, x, W, b, stride, pad)


def max_pool2d(x: np.ndarray, pool_h: int, pool_w: int, stride: int, pad: int) -> Any:
    """Max pooling by strided slices (see :mod:`bp_xp.backends._strided`)."""
    from . import _strided

    return _strided.max_pool2d(np, x, pool_h, pool_w, stride, pad)


# Registered in place into this file's fast-kernel table: the dict its ``KERNELS`` names or,
# where the file declares its backend as a ``SPEC``, that spec's ``kernels`` (never replaced,
# so that whatever already holds the table sees these kernels too).
_TABLE: dict[str, Any] = (globals()["SPEC"].kernels if "SPEC" in globals()
                          else globals().setdefault("KERNELS", {}))
_TABLE.update({"conv2d": conv2d, "max_pool2d": max_pool2d})
KERNELS = _TABLE
