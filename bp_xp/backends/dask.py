"""Dask: lazy, chunked NumPy arrays (``"dask"``); chunks, not a device, decide where work runs.

Its Array API namespace is ``array_api_compat.dask.array``. A :class:`~bp_xp.Backend` of
Dask carries the chunking its ``asarray`` uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import array_api_compat
import numpy as np

from ._errors import BackendUnavailableError
from ._util import require

NAME = "dask"
ALIASES: tuple[str, ...] = ()
MODULE = "dask"
NAMESPACE = "array_api_compat.dask.array"
EXTRA = "dask"

is_array = array_api_compat.is_dask_array
is_namespace = array_api_compat.is_dask_namespace


def parse_device(device: Any) -> str:
    """``None`` or ``"cpu"``: Dask takes no device."""
    require("dask.array", NAME, EXTRA)
    if device in (None, "cpu"):
        return "cpu"
    raise BackendUnavailableError(
        f"backend 'dask' takes no device (chunks decide where work runs), got {device!r}"
    )


def format_device(device: Any) -> str | None:
    """No device part in the string form."""
    return None


def devices() -> list[Any]:
    """The one (virtual) device."""
    require("dask.array", NAME, EXTRA)
    return ["cpu"]


def dtypes(xp: Any, device: Any) -> dict[str, Any]:
    """Every dtype of the NumPy chunks."""
    return dict(xp.__array_namespace_info__().dtypes())


def chunks_of(x: Any) -> Any:
    """The chunking of ``x``, kept by :func:`bp_xp.backend_of`."""
    return x.chunks


def from_host(host: np.ndarray, device: Any, chunks: Any) -> Any:
    """A lazy array over a private copy of ``host`` (later writes to ``host`` cannot reach it)."""
    import dask.array as da

    return da.from_array(np.array(host, copy=True), chunks=chunks)


def to_host(x: Any) -> np.ndarray:
    """Compute ``x``, and copy: a one-chunk compute can hand back the graph's own array."""
    return np.array(x.compute(), copy=True)


def synchronize(device: Any, arrays: Sequence[Any]) -> None:
    """Wait for the persisted parts of ``arrays`` on a distributed cluster; never compute.

    A lazy graph has nothing running to wait for, so without ``dask.distributed`` (or
    without persisted arrays) this returns at once.
    """
    try:
        from distributed import futures_of, wait
    except ImportError:
        return
    futures = futures_of(list(arrays))
    if futures:
        wait(futures)
