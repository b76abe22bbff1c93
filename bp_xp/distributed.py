"""Data-parallel training and evaluation on Dask arrays, locally or on a cluster.

Nothing here is a second implementation of the network. The layers already run on Dask
arrays, because Dask is an Array API backend: with a batch chunked along its first axis,
``Affine.forward`` runs per chunk, and the parameter gradients ``x.T @ dout`` and
``sum(dout, axis=0)`` contract over the chunked axis, which Dask turns into tree
reductions across chunks (and so across workers). That *is* data parallelism.

What this module adds is what a lazy backend needs to train well, and to survive the loss
of a worker:

- :func:`shard` puts a dataset onto the cluster in row chunks, once, in a form the
  scheduler can rebuild when the worker holding a chunk dies.
- :func:`materialize` computes the new parameters (and optimizer state) after an update
  and keeps them on the client, so each step's task graph starts from concrete arrays,
  never grows from step to step, and never depends on one worker's memory.
- :func:`train_step` is one step (gradient, update, materialize) that is all or nothing:
  it completes on the surviving workers, or raises :class:`StepLostError` and leaves the
  parameters and optimizer state of before the step.
- :func:`evaluate` computes accuracy over a dataset of any size chunk by chunk.

Chunks may hold NumPy or CuPy arrays (one GPU per worker, as with ``dask-cuda``): the
layers take their namespace from the chunks they are given.
"""

from __future__ import annotations

import math
from typing import Any

from ._checks import check_integer
from .backends import BackendError, get_spec, settle, spec_of, to_numpy
from .backends import dask as dask_backend
from .compile import train_step as eager_step

__all__ = ["StepLostError", "evaluate", "materialize", "shard", "train_step"]

Array = Any


class StepLostError(RuntimeError):
    """A distributed training step could not be completed, and was undone.

    Raised by :func:`train_step` when the cluster lost what the step needed (a worker
    died holding data that cannot be rebuilt, a task killed its workers too often, the
    connection dropped). The network's parameters and the optimizer's state are those of
    before the step, readable and savable; the step can be retried once the cause is
    gone. The original error is chained as ``__cause__``.
    """


def _require_dask() -> None:
    """Refuse to run without Dask, with the install hint."""
    try:
        dask_backend.parse_device(None)  # imports dask.array, or explains how to install it
    except BackendError as exc:
        raise BackendError(f'bp_xp.distributed needs dask: pip install "bp_xp[dask]" ({exc})') from exc


def _is_lazy(x: Any) -> bool:
    spec = spec_of(x)
    return spec is not None and spec.settle is not None


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

    Notes
    -----
    Each chunk is a task that *holds its rows* (a private copy), and the scheduler keeps
    that task while the array is alive. When the worker holding a chunk dies, the
    scheduler re-runs the task on a surviving worker, so training goes on. The price is a
    copy of the dataset in the scheduler's memory. (Data scattered with
    ``client.scatter`` has no such task: it dies with its worker.) For a dataset too large
    for that, load it with Dask from storage (``da.from_zarr``, ``da.from_npy_stack``):
    its chunks are rebuilt from the files.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.distributed import shard
    >>> shard(np.zeros((10, 3)), chunks=4).chunks
    ((3, 3, 3, 1), (3,))
    """
    _require_dask()
    host = to_numpy(x)
    if dtype is not None:
        host = host.astype(dtype)
    n = host.shape[0]
    if rows_per_chunk is None:
        if chunks is None:
            raise ValueError("shard needs rows_per_chunk or chunks")
        rows_per_chunk = max(1, math.ceil(n / check_integer(chunks, "chunks", where="shard")))
    check_integer(rows_per_chunk, "rows_per_chunk", where="shard")
    return dask_backend.shard_rows(host, rows_per_chunk, persist)


def materialize(net: Any, optimizer: Any = None) -> None:
    """Compute ``net``'s lazy Dask parameters (and ``optimizer``'s state), keep them on the client.

    After ``params[k] = params[k] - lr * grad`` a Dask parameter is a graph that holds the
    whole step. This computes it (on the workers, with a distributed Client), waits for
    the result, and replaces the parameter by a one-task array holding the values, so the
    next step's graph does not contain this one and depends on no worker's memory (a
    persisted result would live on one worker only, and would be lost with it). The
    optimizer's velocities and moments are handled the same way, through its
    ``state_dict`` / ``load_state_dict``.

    Nothing is replaced unless every array was computed: on an error the parameters and
    state are the lazy arrays they were. Arrays of backends that compute eagerly are left
    as they are, so on a network with no Dask array this does nothing, and it needs no
    Dask installed then.

    Examples
    --------
    >>> import numpy as np, bp_xp
    >>> from bp_xp.distributed import materialize
    >>> net = bp_xp.TwoLayerNet(4, 5, 3, seed=0)  # NumPy: nothing lazy to settle
    >>> w = net.params["W1"]
    >>> materialize(net)
    >>> net.params["W1"] is w
    True
    """
    keys = [k for k in net.params if _is_lazy(net.params[k])]
    state: dict[str, Any] = {"state": {}}
    if optimizer is not None and hasattr(optimizer, "state_dict"):
        state = optimizer.state_dict()
    slots = [(slot, key) for slot, arrays in state["state"].items() for key in arrays
             if _is_lazy(arrays[key])]
    if not keys and not slots:
        return
    lazy = [net.params[k] for k in keys] + [state["state"][s][k] for s, k in slots]
    held = settle(lazy)  # blocks until done; raises if the cluster lost the step
    for key, value in zip(keys, held[:len(keys)]):
        net.params[key] = value
    if slots:
        for (slot, key), value in zip(slots, held[len(keys):]):
            state["state"][slot][key] = value
        optimizer.load_state_dict(state)


def train_step(net: Any, optimizer: Any, x: Array, t: Array) -> Array:
    """One data-parallel step: gradients over all chunks, update, materialize. Returns the loss.

    All or nothing. The step returns only once the new parameters and optimizer state are
    computed and held on the client; a worker that dies meanwhile is survived when the
    scheduler can rerun its tasks elsewhere (chunks made by :func:`shard`, parameters
    held by :func:`materialize`). When it cannot, the network's parameters and the
    optimizer's state are put back as they were before the step and
    :class:`StepLostError` is raised: they can be read, saved, and the step retried.
    (A book-style optimizer without ``state_dict`` gets its parameters back, not its
    own state.) Any other error, ``KeyboardInterrupt`` included, also undoes the step
    and is re-raised.

    The returned loss is a lazy 0-d Dask array: nothing but the new parameters is computed
    until you call ``float(loss)`` or ``dask.compute(loss)``, so log it only every few
    steps (computing it then re-runs that step's forward pass).
    """
    before_params = dict(net.params)
    before_state = optimizer.state_dict() if hasattr(optimizer, "state_dict") else None
    try:
        loss = eager_step(net, optimizer, x, t)
        materialize(net, optimizer)
    except BaseException as exc:
        for key, value in before_params.items():
            net.params[key] = value
        if before_state is not None:
            optimizer.load_state_dict(before_state)
        if isinstance(exc, dask_backend.lost_step_errors()):
            raise StepLostError(
                f"bp_xp.distributed.train_step: the step was lost ({type(exc).__name__}: "
                f"{exc}); the parameters and optimizer state are those of before the step, "
                "so it can be retried once the cluster has workers again"
            ) from exc
        raise
    return loss


def evaluate(net: Any, x: Array, t: Array) -> float:
    """Accuracy of ``net`` over a Dask dataset of any size, computed chunk by chunk.

    Each chunk is predicted where it lives and only per-chunk counts travel, so the data
    set can be far larger than any one worker's memory.
    """
    _require_dask()
    if spec_of(x) is not get_spec(dask_backend.NAME):
        raise TypeError(f"evaluate expects Dask arrays, got {type(x).__qualname__}; use net.accuracy")
    return float(dask_backend.compute(net.accuracy(x, t))[0])
