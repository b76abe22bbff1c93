"""Data-parallel training and evaluation on Dask arrays, locally or on a cluster.

Nothing here is a second implementation of the network. The layers already run on Dask
arrays, because Dask is an Array API backend: with a batch chunked along its first axis,
``Affine.forward`` runs per chunk, and the parameter gradients ``x.T @ dout`` and
``sum(dout, axis=0)`` contract over the chunked axis, which Dask turns into tree
reductions across chunks (and so across workers). That *is* data parallelism.

What this module adds is what a lazy backend needs to train well:

- :func:`shard` puts a dataset onto the cluster in row chunks, once.
- :func:`materialize` persists the new parameters (and optimizer state) after an update,
  so each step's task graph starts from concrete arrays and never grows from step to step.
- :func:`train_step` is one step (gradient, update, persist) that computes nothing else;
  its loss stays lazy until you ask for it.
- :func:`evaluate` computes accuracy over a dataset of any size chunk by chunk.

Chunks may hold NumPy or CuPy arrays (one GPU per worker, as with ``dask-cuda``): the
layers take their namespace from the chunks they are given.
"""

from __future__ import annotations

import math
from typing import Any

from ._backend import BackendError, to_numpy

__all__ = ["evaluate", "materialize", "shard", "train_step"]

Array = Any


def _dask():
    try:
        import dask
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - exercised only without dask
        raise BackendError('bp_xp.distributed needs dask: pip install "bp_xp[dask]"') from exc
    return dask, da


def shard(x: Any, rows_per_chunk: int | None = None, *, chunks: int | None = None,
          dtype: Any = None, persist: bool = True) -> Array:
    """A Dask array of ``x`` chunked along the batch axis, persisted on the cluster.

    Parameters
    ----------
    x : array-like
        Host data (NumPy) or an array of any backend (copied to the host first).
    rows_per_chunk : int, optional
        Rows in each chunk; or give ``chunks``, the number of chunks.
    dtype : optional
        Cast on the host before sharding (e.g. ``"float32"``).
    persist : bool
        Keep the chunks in the workers' memory (with a ``distributed.Client`` active),
        so that every later step reads them there instead of re-sending them.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.distributed import shard
    >>> shard(np.zeros((10, 3)), chunks=4).chunks
    ((3, 3, 3, 1), (3,))
    """
    dask, da = _dask()
    host = to_numpy(x)
    if dtype is not None:
        host = host.astype(dtype)
    n = host.shape[0]
    if rows_per_chunk is None:
        if chunks is None:
            raise ValueError("shard needs rows_per_chunk or chunks")
        if chunks < 1:
            raise ValueError(f"chunks must be >= 1, got {chunks}")
        rows_per_chunk = max(1, math.ceil(n / chunks))
    if rows_per_chunk < 1:
        raise ValueError(f"rows_per_chunk must be >= 1, got {rows_per_chunk}")
    client = _active_client() if persist else None
    if client is None:
        array = da.from_array(host, chunks=(rows_per_chunk, *host.shape[1:]))
        return array.persist() if persist else array
    # Scatter the blocks to the workers instead of embedding them in a task graph: the
    # data crosses the network once, as data, and the graph stays a few bytes per chunk.
    blocks = [host[i:i + rows_per_chunk] for i in range(0, n, rows_per_chunk)]
    futures = client.scatter(blocks)
    pieces = [da.from_delayed(f, shape=b.shape, dtype=b.dtype) for f, b in zip(futures, blocks)]
    return da.concatenate(pieces, axis=0).persist()


def _active_client() -> Any:
    try:
        from distributed import get_client
    except ImportError:
        return None
    try:
        return get_client()
    except ValueError:  # no client: Dask's local schedulers will run the graph
        return None


def materialize(net: Any, optimizer: Any = None) -> None:
    """Persist ``net``'s parameters (and ``optimizer``'s state) that are lazy Dask arrays.

    After ``params[k] = params[k] - lr * grad`` a Dask parameter is a graph that holds the
    whole step; persisting computes it (on the workers, with a distributed Client) and
    replaces it by a one-task array, so the next step's graph does not contain this one.
    The optimizer's velocities and moments are persisted the same way, through its
    ``state_dict`` / ``load_state_dict``. On other backends this does nothing.
    """
    dask, da = _dask()
    keys = [k for k in net.params if isinstance(net.params[k], da.Array)]
    if not keys:
        return
    persisted = dask.persist(*(net.params[k] for k in keys))
    for key, value in zip(keys, persisted):
        net.params[key] = value
    if optimizer is not None and hasattr(optimizer, "state_dict"):
        (state,) = dask.persist(optimizer.state_dict())
        optimizer.load_state_dict(state)


def train_step(net: Any, optimizer: Any, x: Array, t: Array) -> Array:
    """One data-parallel step: gradients over all chunks, update, persist. Returns the loss.

    The returned loss is a lazy 0-d Dask array: nothing but the new parameters is computed
    until you call ``float(loss)`` or ``dask.compute(loss)``, so log it only every few
    steps (computing it then re-runs that step's forward pass).
    """
    from .train import train_step as step

    loss = step(net, optimizer, x, t)
    materialize(net, optimizer)
    return loss


def evaluate(net: Any, x: Array, t: Array) -> float:
    """Accuracy of ``net`` over a Dask dataset of any size, computed chunk by chunk.

    Each chunk is predicted where it lives and only per-chunk counts travel, so the data
    set can be far larger than any one worker's memory.
    """
    dask, da = _dask()
    if not isinstance(x, da.Array):
        raise TypeError(f"evaluate expects Dask arrays, got {type(x).__qualname__}; use net.accuracy")
    return float(dask.compute(net.accuracy(x, t))[0])
