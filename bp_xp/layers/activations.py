"""Activation layers: ReLU and sigmoid, each caching what its backward needs."""

from __future__ import annotations

from typing import Any

from .._backend import namespace_of, zero_where
from ..functions import sigmoid
from ._checks import check_shape, require_forward
from .base import Layer

__all__ = ["Relu", "Sigmoid"]

Array = Any


class Relu(Layer):
    """ReLU layer: ``forward`` keeps the mask ``x <= 0``; ``backward`` zeroes ``dout`` there.

    The book's ``dout[self.mask] = 0`` writes into the caller's array; here it is
    ``where(mask, 0, dout)``, a new array, which also runs on JAX.

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
        require_forward(self, mask)
        xp = namespace_of(dout, mask, names=("dout", "mask"))
        if dout.shape != mask.shape:
            check_shape("Relu", "dout", dout, mask.shape)
        return zero_where(mask, dout, xp)


class Sigmoid(Layer):
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
        out = self.out
        require_forward(self, out)
        namespace_of(dout, out, names=("dout", "out"))
        check_shape("Sigmoid", "dout", dout, out.shape)
        return dout * (1 - out) * out
