"""What is timed: the networks, the host data every implementation starts from, and FLOP counts."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

__all__ = ["DTYPES", "LEARNING_RATE", "NETS", "NetSpec", "Problem", "make_problem", "predict_flops",
           "step_flops"]

LEARNING_RATE = 0.01
DTYPES = ("float32", "float64")


@dataclasses.dataclass(frozen=True)
class NetSpec:
    """A fully connected ReLU network and the batch it is trained on.

    Attributes
    ----------
    name : str
        Short label used in tables (``"book"``, ``"wide"``, ``"large"``).
    sizes : tuple of int
        Layer widths from input to output, e.g. ``(784, 50, 10)``.
    batch : int
        Rows per step.
    gpu : bool
        Whether the net is only timed on a GPU.
    """

    name: str
    sizes: tuple[int, ...]
    batch: int
    gpu: bool = False

    def __str__(self) -> str:
        return f"{'-'.join(map(str, self.sizes))}, batch {self.batch}"


NETS: tuple[NetSpec, ...] = (
    NetSpec("book", (784, 50, 10), 100),
    NetSpec("wide", (784, 1024, 1024, 10), 512),
    NetSpec("large", (784, 4096, 4096, 10), 4096, gpu=True),
)


def predict_flops(sizes: Sequence[int], batch: int) -> int:
    """Multiply-add FLOPs of a forward pass: ``2 * N * in * out`` per Affine layer.

    Bias additions, activations and the softmax are left out: they are a fraction of
    a percent of the matrix products for these sizes.

    Examples
    --------
    >>> from _problems import predict_flops
    >>> predict_flops((784, 50, 10), 100)
    7940000
    """
    return sum(2 * batch * fan_in * fan_out for fan_in, fan_out in zip(sizes[:-1], sizes[1:]))


def step_flops(sizes: Sequence[int], batch: int) -> int:
    """FLOPs a training step needs: forward, ``dW`` of every layer, ``dx`` of all but the first.

    Each Affine layer costs ``2 * N * in * out`` forward, the same again for
    ``dW = x.T @ dout``, and the same again for ``dx = dout @ W.T``, except the first
    layer, whose ``dx`` (the gradient with respect to the input images) nobody needs.
    So a step is ``3 * forward - 2 * N * in_1 * out_1``. The SGD update and the
    element-wise work are left out (under 1 % here). Implementations that compute the
    first ``dx`` anyway (the book's code) do extra work that is not counted.

    Examples
    --------
    >>> from _problems import step_flops
    >>> step_flops((784, 50, 10), 100)
    15980000
    """
    return 3 * predict_flops(sizes, batch) - 2 * batch * sizes[0] * sizes[1]


@dataclasses.dataclass(frozen=True)
class Problem:
    """One network, batch and dtype: the host data every implementation starts from.

    Attributes
    ----------
    net : NetSpec
    dtype : str
        ``"float32"`` or ``"float64"``.
    x : numpy.ndarray
        Inputs in ``[0, 1)``, shape ``(batch, sizes[0])``, in ``dtype``.
    t : numpy.ndarray
        Integer labels, shape ``(batch,)``, int64.
    params : dict of str to numpy.ndarray
        ``W1, b1, W2, ...`` in ``dtype``, He-initialised, ``W`` of shape ``(in, out)``.
    lr : float
        SGD learning rate (small, so thousands of steps on one batch stay far from
        saturated softmax outputs and subnormal numbers, which would slow the maths).
    """

    net: NetSpec
    dtype: str
    x: np.ndarray
    t: np.ndarray
    params: dict[str, np.ndarray]
    lr: float = LEARNING_RATE


def make_problem(net: NetSpec, dtype: str, seed: int = 0) -> Problem:
    """Host data for ``net`` in ``dtype``: the same numbers for every implementation.

    Examples
    --------
    >>> from _problems import NETS, make_problem
    >>> p = make_problem(NETS[0], "float32")
    >>> p.x.shape, p.t.dtype, sorted(p.params)
    ((100, 784), dtype('int64'), ['W1', 'W2', 'b1', 'b2'])
    """
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    for i, (fan_in, fan_out) in enumerate(zip(net.sizes[:-1], net.sizes[1:]), start=1):
        params[f"W{i}"] = (math.sqrt(2.0 / fan_in) * rng.standard_normal((fan_in, fan_out))).astype(dtype)
        params[f"b{i}"] = (0.01 * rng.standard_normal(fan_out)).astype(dtype)
    x = rng.random((net.batch, net.sizes[0])).astype(dtype)
    t = rng.integers(0, net.sizes[-1], size=net.batch, dtype=np.int64)
    return Problem(net, dtype, x, t, params)
