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
from ._spec import BackendSpec
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



def settle(arrays: Sequence[Any]) -> list[Any]:
    """Compute lazy ``arrays`` together and hold each result in a one-task array.

    A held array's graph is its data (no task of the step that made it), so the next
    step's graph does not grow and depends on no worker's memory. One ``dask.compute``
    for all of them: shared work is done once. Raises what the computation raised;
    nothing is returned half done.
    """
    import dask
    import dask.array as da

    values = dask.compute(*arrays)  # blocks until done; raises if the cluster lost the step
    return [da.from_array(value, chunks=like.chunks, name=False, inline_array=True)
            for value, like in zip(values, arrays)]


def compute(*arrays: Any) -> tuple[Any, ...]:
    """``dask.compute(*arrays)``: host values of lazy arrays, computed in one graph."""
    import dask

    return tuple(dask.compute(*arrays))


def shard_rows(host: np.ndarray, rows_per_chunk: int, persist: bool) -> Any:
    """``host`` as a Dask array of row chunks, each a task that holds its rows (persisted).

    Each chunk's task holds a private copy of its rows (``inline_array``), and the
    scheduler keeps that task while the array is alive, so a chunk lost with its worker is
    rebuilt on another one.
    """
    import dask
    import dask.array as da

    array = da.from_array(host.copy(), chunks=(rows_per_chunk, *host.shape[1:]),
                          inline_array=True)
    if not persist:
        return array
    # The data is meant to travel in the graph, once: no "large graph" warning for it.
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1 PiB"}):
        return array.persist()


def lost_step_errors() -> tuple[type[BaseException], ...]:
    """The errors by which a distributed computation says it lost workers or data."""
    from concurrent.futures import CancelledError

    errors: list[type[BaseException]] = [CancelledError, OSError, TimeoutError]
    try:
        from distributed.scheduler import KilledWorker
    except ImportError:  # pragma: no cover - dask without distributed
        pass
    else:
        errors.append(KilledWorker)
    return tuple(errors)


def version_stamp(x: Any) -> Any:
    """The graph name: ``x[i] = v`` gives a Dask array a new one."""
    return x.name


#: This backend, declared for the registry (keep it last: it reads the definitions above).
SPEC = BackendSpec(
    name=NAME, aliases=ALIASES, module=MODULE, namespace=NAMESPACE, extra=EXTRA,
    is_array=is_array, is_namespace=is_namespace, parse_device=parse_device,
    format_device=format_device, devices=devices, dtypes=dtypes, from_host=from_host,
    to_host=to_host, synchronize=synchronize,
    chunks_of=chunks_of, settle=settle,
    version_stamp=version_stamp,
)
