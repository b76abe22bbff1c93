"""CuPy: NVIDIA GPUs (``"cupy"``, ``"cupy:1"``); available only where a CUDA device runs a kernel.

Its Array API namespace is ``array_api_compat.cupy``.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from ._errors import BackendUnavailableError
from ._registry import installed_hint
from ._spec import BackendSpec
from ._util import require, split_index

NAME = "cupy"
ALIASES: tuple[str, ...] = ()
MODULE = "cupy"
NAMESPACE = "array_api_compat.cupy"
EXTRA = "cupy"

is_array = array_api_compat.is_cupy_array
is_namespace = array_api_compat.is_cupy_namespace


def _device_count(cupy: ModuleType) -> int:
    try:
        count = cupy.cuda.runtime.getDeviceCount()
        if count:
            cupy.arange(3).sum()  # a CUDA driver can answer the count and still fail to run
        return int(count)
    except Exception:  # CUDA raises many unrelated types when no driver is present
        return 0


def parse_device(device: Any) -> Any:
    """A ``cupy.cuda.Device`` that exists here, from ``None`` (the current one), an index or a device."""
    cupy = require("cupy", NAME, EXTRA)
    count = _device_count(cupy)
    if count == 0:
        raise BackendUnavailableError(
            "backend 'cupy' is installed but no working CUDA device was found. " + installed_hint()
        )
    if isinstance(device, cupy.cuda.Device):
        index = device.id
    elif device is None:
        index = cupy.cuda.runtime.getDevice()
    else:
        kind, index = split_index(str(device))
        if kind not in ("", "cuda", "gpu") or index is None:
            raise BackendUnavailableError(
                f"cannot read CuPy device {device!r}; expected an index such as 'cupy:0'"
            )
    if not 0 <= index < count:
        raise BackendUnavailableError(
            f"CuPy device {index} does not exist; this machine has {count} CUDA device(s) 0..{count - 1}"
        )
    return cupy.cuda.Device(index)


def format_device(device: Any) -> str:
    """``cupy.cuda.Device(1)`` -> ``"1"``."""
    return str(device.id)


def devices() -> list[Any]:
    """Every CUDA device that runs a kernel (none where CUDA does not work)."""
    cupy = require("cupy", NAME, EXTRA)
    return [cupy.cuda.Device(i) for i in range(_device_count(cupy))]


def dtypes(xp: Any, device: Any) -> dict[str, Any]:
    """Every dtype CuPy has (the same on every CUDA device)."""
    return dict(xp.__array_namespace_info__().dtypes())


def from_host(host: np.ndarray, device: Any, chunks: Any) -> Any:
    """A new array on ``device`` (a host-to-device copy)."""
    import cupy

    with device:
        return cupy.asarray(host)


def to_host(x: Any) -> np.ndarray:
    """A NumPy copy (device to host)."""
    return x.get()


def synchronize(device: Any, arrays: Sequence[Any]) -> None:
    """Wait until every stream of ``device`` has finished its queued kernels."""
    device.synchronize()


#: This backend, declared for the registry (keep it last: it reads the definitions above).
SPEC = BackendSpec(
    name=NAME, aliases=ALIASES, module=MODULE, namespace=NAMESPACE, extra=EXTRA,
    is_array=is_array, is_namespace=is_namespace, parse_device=parse_device,
    format_device=format_device, devices=devices, dtypes=dtypes, from_host=from_host,
    to_host=to_host, synchronize=synchronize,
    probe_in_hints=False,
    writes_in_place=lambda x: True,
)

# --------------------------------------------------------------------------------------
# Native convolution and pooling kernels (issue 22): strided windows, as on NumPy
# --------------------------------------------------------------------------------------


def _on_device_of(x: Any, run: Any) -> Any:
    """Run ``run()`` (a kernel) with ``x``'s GPU current, and its backward too: CuPy
    allocates on the current device, which need not be the one ``x`` lives on."""
    with x.device:
        result = run()
    if result is None:
        return None
    out, backward = result
    device = x.device

    def on_device(*args: Any) -> Any:
        with device:
            return backward(*args)

    return out, on_device


def conv2d(x: Any, W: Any, b: Any, stride: int, pad: int) -> Any:
    """Convolution by one copy of a strided window view (see :mod:`bp_xp.backends._strided`)."""
    import cupy

    from . import _strided

    return _on_device_of(x, lambda: _strided.conv2d(cupy, x, W, b, stride, pad))


def max_pool2d(x: Any, pool_h: int, pool_w: int, stride: int, pad: int) -> Any:
    """Max pooling by strided slices (see :mod:`bp_xp.backends._strided`)."""
    import cupy

    from . import _strided

    return _on_device_of(x, lambda: _strided.max_pool2d(cupy, x, pool_h, pool_w, stride, pad))


# Registered in place into this file's fast-kernel table: the dict its ``KERNELS`` names or,
# where the file declares its backend as a ``SPEC``, that spec's ``kernels`` (never replaced,
# so that whatever already holds the table sees these kernels too).
_TABLE: dict[str, Any] = (globals()["SPEC"].kernels if "SPEC" in globals()
                          else globals().setdefault("KERNELS", {}))
_TABLE.update({"conv2d": conv2d, "max_pool2d": max_pool2d})
KERNELS = _TABLE
