"""The layers of backpropagation by computational graph ("Deep Learning from Scratch", ch. 5).

Each layer is a small class with ``forward`` and ``backward`` and the cache it needs
between the two, exactly as in the book. What differs is how they compute: every layer
takes its Array API namespace from its inputs, creates nothing without naming dtype and
device, and never writes into an array it did not create. The book's
``dout[self.mask] = 0`` becomes ``where(mask, 0, dout)``, which runs on JAX and leaves the
caller's ``dout`` alone.
"""

from __future__ import annotations

import math
from typing import Any

from ._backend import namespace_of, zero_where
from .functions import _label_hits, _nll_with_hits, sigmoid

__all__ = ["AddLayer", "Affine", "MulLayer", "Relu", "Sigmoid", "SoftmaxWithLoss"]

Array = Any
_SCALARS = (bool, int, float, complex)  # Python numbers, as in the book's apple example


def _check_operands(x: Any, y: Any) -> None:
    """Refuse mixed backends/devices; plain Python numbers (the apple example) pass."""
    if not isinstance(x, _SCALARS) and not isinstance(y, _SCALARS):
        namespace_of(x, y, names=("x", "y"))


class MulLayer:
    """Multiplication node: ``out = x * y``; ``backward`` swaps the inputs.

    Works on arrays of any backend and on plain Python numbers.

    Examples
    --------
    >>> from bp_xp.layers import MulLayer
    >>> apple = MulLayer()
    >>> apple.forward(100, 2)
    200
    >>> apple.backward(1.1)
    (2.2, 110.00000000000001)
    """

    def __init__(self) -> None:
        self.x: Any = None
        self.y: Any = None

    def forward(self, x: Any, y: Any) -> Any:
        _check_operands(x, y)
        self.x = x
        self.y = y
        return x * y

    def backward(self, dout: Any) -> tuple[Any, Any]:
        if self.x is None:
            raise RuntimeError("MulLayer.backward called before forward")
        return dout * self.y, dout * self.x


class AddLayer:
    """Addition node: ``out = x + y``; ``backward`` passes ``dout`` to both inputs.

    Examples
    --------
    >>> from bp_xp.layers import AddLayer
    >>> AddLayer().forward(200, 450)
    650
    """

    def forward(self, x: Any, y: Any) -> Any:
        _check_operands(x, y)
        return x + y

    def backward(self, dout: Any) -> tuple[Any, Any]:
        return dout, dout


class Relu:
    """ReLU layer: ``forward`` keeps the mask ``x <= 0``; ``backward`` zeroes ``dout`` there.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.layers import Relu
    >>> relu = Relu()
    >>> relu.forward(np.array([[1.0, -0.5], [-2.0, 3.0]]))
    array([[1., 0.],
           [0., 3.]])
    >>> relu.backward(np.ones((2, 2)))
    array([[1., 0.],
           [0., 1.]])
    """

    def __init__(self) -> None:
        self.mask: Array | None = None

    def forward(self, x: Array) -> Array:
        xp = namespace_of(x)
        self.mask = x <= 0
        return zero_where(self.mask, x, xp)

    def backward(self, dout: Array) -> Array:
        mask = self.mask
        if mask is None:
            raise RuntimeError("Relu.backward called before forward")
        xp = namespace_of(dout, mask, names=("dout", "mask"))
        if dout.shape != mask.shape:
            _check_shape("Relu", "dout", dout, mask.shape)
        return zero_where(mask, dout, xp)


class Sigmoid:
    """Sigmoid layer: ``backward`` is ``dout * (1 - y) * y`` with ``y`` kept from ``forward``.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.layers import Sigmoid
    >>> s = Sigmoid()
    >>> s.forward(np.array([0.0]))
    array([0.5])
    >>> s.backward(np.array([1.0]))
    array([0.25])
    """

    def __init__(self) -> None:
        self.out: Array | None = None

    def forward(self, x: Array) -> Array:
        self.out = sigmoid(x)
        return self.out

    def backward(self, dout: Array) -> Array:
        if self.out is None:
            raise RuntimeError("Sigmoid.backward called before forward")
        namespace_of(dout, self.out, names=("dout", "out"))
        _check_shape("Sigmoid", "dout", dout, self.out.shape)
        return dout * (1 - self.out) * self.out


class Affine:
    """Fully connected layer ``out = x @ W + b``.

    ``x`` may have any number of dimensions: it is flattened to ``(N, -1)`` (an image
    batch ``(N, 1, 28, 28)`` works) and ``backward`` returns ``dx`` in ``x``'s shape.
    After ``backward``, ``dW`` and ``db`` hold the parameter gradients.

    Parameters
    ----------
    W : array, shape (in_features, out_features)
    b : array, shape (out_features,)
        Same backend, device and dtype as ``W``.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.layers import Affine
    >>> layer = Affine(np.ones((3, 2)), np.zeros(2))
    >>> layer.forward(np.ones((4, 3))).shape
    (4, 2)
    >>> layer.backward(np.ones((4, 2))).shape, layer.dW.shape, layer.db.shape
    ((4, 3), (3, 2), (2,))
    """

    param_names = ("W", "b")

    def __init__(self, W: Array, b: Array) -> None:
        namespace_of(W, b, names=("W", "b"))
        if W.ndim != 2 or b.shape != (W.shape[1],):
            raise ValueError(
                f"Affine needs W of shape (in, out) and b of shape (out,), got W {tuple(W.shape)} "
                f"and b {tuple(b.shape)}"
            )
        if W.dtype != b.dtype:
            raise TypeError(f"Affine needs W and b of one dtype, got {W.dtype} and {b.dtype}")
        self.W = W
        self.b = b
        self.x: Array | None = None
        self.original_x_shape: tuple[int, ...] | None = None
        self.dW: Array | None = None
        self.db: Array | None = None

    def forward(self, x: Array) -> Array:
        xp = namespace_of(x, self.W, self.b, names=("x", "W", "b"))
        if x.ndim < 2:
            raise ValueError(
                f"Affine expects a batch of shape (N, ...), got shape {tuple(x.shape)}; "
                "reshape a single sample to (1, -1)"
            )
        features = math.prod(x.shape[1:])
        if features != self.W.shape[0]:
            raise ValueError(
                f"Affine: x of shape {tuple(x.shape)} has {features} features per sample, "
                f"but W of shape {tuple(self.W.shape)} expects {self.W.shape[0]}"
            )
        self.original_x_shape = tuple(x.shape)
        if x.ndim != 2:
            x = xp.reshape(x, (x.shape[0], features))
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout: Array, *, need_dx: bool = True) -> Array | None:
        """Set ``dW`` and ``db``; return ``dx`` in ``x``'s shape.

        Parameters
        ----------
        dout : array, shape (N, out_features)
        need_dx : bool, keyword-only
            ``False`` skips the product ``dout @ W.T`` and returns ``None``: networks
            pass it to their first layer, whose input gradient nobody uses (it is a
            third of that layer's backward work).
        """
        x = self.x
        if x is None:
            raise RuntimeError("Affine.backward called before forward")
        W = self.W
        xp = namespace_of(dout, W, names=("dout", "W"))
        if dout.shape != (x.shape[0], W.shape[1]):
            _check_shape("Affine", "dout", dout, (x.shape[0], W.shape[1]))
        self.dW = x.T @ dout
        self.db = xp.sum(dout, axis=0)
        if not need_dx:
            return None
        dx = dout @ W.T
        if len(self.original_x_shape) != 2:
            dx = xp.reshape(dx, self.original_x_shape)
        return dx


class SoftmaxWithLoss:
    """Softmax followed by the cross-entropy loss, with the fused backward ``(y - t) / N``.

    ``forward(x, t)`` returns the mean loss as a 0-d array on ``x``'s device (no
    device-to-host read; ``float(loss)`` when you want a number). ``t`` is one-hot
    (``x``'s shape) or integer labels of any integer dtype. The loss is computed from
    the logits by log-sum-exp, so logits of +-1e3 stay finite.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.layers import SoftmaxWithLoss
    >>> layer = SoftmaxWithLoss()
    >>> round(float(layer.forward(np.array([[2.0, 0.0]]), np.array([0]))), 4)
    0.1269
    >>> layer.backward().round(4)
    array([[-0.1192,  0.1192]])
    """

    def __init__(self) -> None:
        self.loss: Array | None = None
        self.y: Array | None = None
        self.t: Array | None = None
        self._hits: Array | None = None  # boolean one-hot of integer labels, reused by backward

    def forward(self, x: Array, t: Array) -> Array:
        xp = namespace_of(x, t, names=("x", "t"))
        if x.ndim != 2:
            raise ValueError(f"SoftmaxWithLoss expects logits of shape (N, C), got {tuple(x.shape)}")
        # log-sum-exp once: the shifted exponentials give both log-probabilities and y
        shifted = x - xp.max(x, axis=-1, keepdims=True)
        e = xp.exp(shifted)
        total = xp.sum(e, axis=-1, keepdims=True)
        logp = shifted - xp.log(total)
        hits = _label_hits(xp, logp, t)
        self.y = e / total
        self.t = t
        self._hits = hits
        self.loss = _nll_with_hits(xp, logp, t, hits)
        return self.loss

    def backward(self, dout: Any = 1) -> Array:
        y = self.y
        if y is None:
            raise RuntimeError("SoftmaxWithLoss.backward called before forward")
        xp = namespace_of(y)
        if not isinstance(dout, _SCALARS):
            namespace_of(dout, y, names=("dout", "y"))
            if dout.ndim != 0:
                raise ValueError(f"dout of a scalar loss must be 0-d, got shape {tuple(dout.shape)}")
            dout = xp.astype(dout, y.dtype, copy=False)
        hits = self._hits
        target = xp.astype(self.t if hits is None else hits, y.dtype, copy=False)
        return (y - target) * (dout / y.shape[0])


def _check_shape(layer: str, name: str, x: Array, expected: tuple[int, ...]) -> None:
    if tuple(x.shape) != tuple(expected):
        raise ValueError(
            f"{layer}.backward: {name} must have the forward output's shape {tuple(expected)}, "
            f"got {tuple(x.shape)}"
        )
