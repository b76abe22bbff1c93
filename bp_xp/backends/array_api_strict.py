"""array-api-strict: the standard's reference namespace, with extra test devices.

Its devices (``"array_api_strict:device1"``, ``"array_api_strict:no_float64"``...) come
from ``__array_namespace_info__().devices()``; ``no_float64`` has no float64, and arrays
off ``CPU_DEVICE`` refuse to become NumPy arrays implicitly, which makes hidden host reads
fail loudly in tests.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import array_api_compat
import numpy as np

from . import numpy as numpy_backend
from ._errors import BackendUnavailableError
from ._spec import BackendSpec
from ._util import require

NAME = "array_api_strict"
ALIASES = ("strict",)
MODULE = "array_api_strict"
NAMESPACE = "array_api_strict"
EXTRA = "test"

is_namespace = array_api_compat.is_array_api_strict_namespace

# str(Device("device1")) is "array_api_strict.Device('device1')"; the name is the quoted part.
_DEVICE_TEXT = re.compile(r"array_api_strict\.Device\('(?P<name>[^']*)'\)")


def is_array(x: Any) -> bool:
    """Whether ``x`` is an array_api_strict array (it names that namespace as its own)."""
    method = getattr(type(x), "__array_namespace__", None)
    return method is not None and array_api_compat.is_array_api_strict_namespace(x.__array_namespace__())


def _devices() -> tuple[Any, ...]:
    return tuple(require("array_api_strict", NAME, EXTRA).__array_namespace_info__().devices())


def parse_device(device: Any) -> Any:
    """One of the namespace's devices, from ``None`` (the default), ``"device1"`` or a ``Device``.

    Examples
    --------
    >>> parse_device("device1")
    array_api_strict.Device('device1')
    >>> parse_device("device9")
    Traceback (most recent call last):
    ...
    bp_xp.BackendUnavailableError: array_api_strict has no device 'device9'; its devices are: ...
    """
    strict = require("array_api_strict", NAME, EXTRA)
    if device is None:
        return strict.__array_namespace_info__().default_device()
    known = _devices()
    for dev in known:
        if device == dev or str(device) in (format_device(dev), str(dev)):
            return dev
    raise BackendUnavailableError(
        f"array_api_strict has no device {str(device)!r}; its devices are: "
        f"{', '.join(format_device(d) for d in known)}"
    )


def format_device(device: Any) -> str:
    """``Device('device1')`` -> ``"device1"``, read from the device's public ``str()``."""
    text = str(device)
    match = _DEVICE_TEXT.fullmatch(text)
    return match["name"] if match else text


def devices() -> list[Any]:
    """Every device the namespace offers."""
    return list(_devices())


def dtypes(xp: Any, device: Any) -> dict[str, Any]:
    """The dtypes ``device`` supports (``no_float64`` lacks float64)."""
    return dict(xp.__array_namespace_info__().dtypes(device=device))


def from_host(host: np.ndarray, device: Any, chunks: Any) -> Any:
    """A new array on ``device``."""
    import array_api_strict as strict

    return strict.asarray(host, device=device, copy=True)


def to_host(x: Any) -> np.ndarray:
    """A NumPy copy, through the CPU device (other devices refuse ``__array__``)."""
    import array_api_strict as strict

    return np.array(x.to_device(strict.Device("CPU_DEVICE")), copy=True)


def synchronize(device: Any, arrays: Sequence[Any]) -> None:
    """array-api-strict computes eagerly on the host: nothing to wait for."""


def version_stamp(x: Any) -> Any:
    """The NumPy stamp of the host memory behind the array (array-api-strict keeps it in a
    NumPy array, a private attribute: if it ever goes, such arrays are simply not checked)."""
    host = getattr(x, "_array", None)
    return numpy_backend.version_stamp(host) if isinstance(host, np.ndarray) else None


#: This backend, declared for the registry (keep it last: it reads the definitions above).
SPEC = BackendSpec(
    name=NAME, aliases=ALIASES, module=MODULE, namespace=NAMESPACE, extra=EXTRA,
    is_array=is_array, is_namespace=is_namespace, parse_device=parse_device,
    format_device=format_device, devices=devices, dtypes=dtypes, from_host=from_host,
    to_host=to_host, synchronize=synchronize,
    version_stamp=version_stamp,
)
