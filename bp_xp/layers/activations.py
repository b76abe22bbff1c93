"""Activation layers: ReLU and sigmoid, each caching what its backward needs."""

from __future__ import annotations

import math
from typing import Any

from ..backends import DTypeError, namespace_of, relu, relu_backward
from ..functions import sigmoid
from ..graph import recordable
from ._checks import SCALARS, check_shape, dtype_kind, require_forward
from ._contract import Sample, bools, contract, floats, values
from ._operands import default_float, to_input, upstream
from .base import Layer

__all__ = ["Relu", "Sigmoid"]

Array = Any


def _activation_samples(edge: list[float]) -> list[Sample]:
    """The conformance samples of an element-wise activation."""
    return [
        Sample(floats(3, 4, away=0.01)),
        Sample(floats(2, 1, 3, away=0.01), name="3-d"),
        Sample(floats(away=0.01), name="0-d"),
        Sample(2.5, name="Python number"),
        Sample(-1.5, name="negative Python number"),
        Sample(values([-2, 3, 1, -1], "int"), name="int array"),
        Sample(values(edge), smooth=False, name="edges"),
        Sample(floats(0, 3), name="empty batch"),
        Sample(bools(3), raises=DTypeError, name="bool array"),
    ]


@contract(reference=lambda np, x: np.where(x <= 0, 0.0, x) if np.ndim(x) else (0.0 if x <= 0 else x),
          samples=_activation_samples([float("inf"), -float("inf"), 0.0, -0.0]),
          torch_reference=lambda torch, x: torch.relu(x))
@recordable("ReLU")
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
    >>> relu.forward(-2.0), relu.backward(5.0)  # Python numbers, as MulLayer takes them
    (0.0, 0.0)
    """

    def __init__(self) -> None:
        self._mask: Array | bool | None = None
        # Where the backend's ReLU kernel ran (PyTorch), its output stands in for the mask.
        self._out: Array | None = None

    @property
    def mask(self) -> Array | bool | None:
        """The book's ``x <= 0`` of the last forward (``None`` before one)."""
        if self._mask is None and self._out is not None:
            return self._out <= 0  # where x <= 0: NaN stays NaN in out and is not masked
        return self._mask

    def forward(self, x: Array) -> Array:
        try:
            xp = namespace_of(x)
        except TypeError:  # not an array: the Python-number path (off the array hot path)
            return self._forward_number(x)
        _refuse_bool("Relu", x, xp)
        out, mask, kept = relu(x, xp)
        self._mask, self._out = mask, kept  # committed once forward has succeeded
        return out

    def _forward_number(self, x: Any) -> Any:
        if not isinstance(x, SCALARS) or isinstance(x, complex):
            raise TypeError(f"Relu.forward: x must be an array or a real Python number, "
                            f"got {type(x).__module__}.{type(x).__qualname__}")
        self._mask, self._out = x <= 0, None
        return type(x)(0) if self._mask else x

    def backward(self, dout: Array) -> Array:
        saved = require_forward(self, self._out if self._mask is None else self._mask)
        if saved.__class__ is bool:  # forward was given a Python number
            dout, xp = upstream("Relu", dout, saved, (), ())
            return to_input(dout * (not saved), saved, xp)
        xp = namespace_of(dout, saved, names=("dout", "mask"))
        if getattr(dout, "shape", None) != saved.shape:  # also a Python number: TypeError
            check_shape("Relu", "dout", dout, saved.shape)
        if dtype_kind(xp, dout.dtype) != "float":  # gradients are floating
            dout = xp.astype(dout, default_float(xp, dout))
        return relu_backward(dout, self._mask, self._out, xp)


@contract(reference=lambda np, x: 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))
          if np.ndim(x) else 1.0 / (1.0 + np.exp(-x)),
          samples=_activation_samples([float("inf"), -float("inf"), 1000.0, -1000.0]),
          torch_reference=lambda torch, x: torch.sigmoid(x))
@recordable("sigmoid")
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
    >>> s.forward(0.0), s.backward(1.0)  # Python numbers, as MulLayer takes them
    (0.5, 0.25)
    """

    def __init__(self) -> None:
        self.out: Array | None = None

    def forward(self, x: Array) -> Array:
        try:
            xp = namespace_of(x)
        except TypeError:  # not an array: the Python-number path (off the array hot path)
            out = _sigmoid_of_number(x)
        else:
            _refuse_bool("Sigmoid", x, xp)
            if dtype_kind(xp, x.dtype) != "float":  # floating math: the default float
                x = xp.astype(x, default_float(xp, x))
            out = sigmoid(x)
        self.out = out  # committed once forward has succeeded
        return out

    def backward(self, dout: Array) -> Array:
        out = require_forward(self, self.out)
        if out.__class__ is float:  # forward was given a Python number
            dout, xp = upstream("Sigmoid", dout, out, (), ())
            return to_input(dout * (1 - out) * out, out, xp)
        namespace_of(dout, out, names=("dout", "out"))
        check_shape("Sigmoid", "dout", dout, out.shape)
        return dout * (1 - out) * out


def _refuse_bool(layer: str, x: Array, xp: Any) -> None:
    if dtype_kind(xp, x.dtype) == "bool":
        raise DTypeError(f"{layer}.forward: x is a bool array; expected a real (integer or "
                         "floating) array: the Array API defines no arithmetic on bool arrays, "
                         "cast it first (xp.astype(x, xp.float32))")


def _sigmoid_of_number(x: Any) -> float:
    """``1 / (1 + exp(-x))`` of a real Python number, without overflow for large ``|x|``."""
    if not isinstance(x, SCALARS) or isinstance(x, complex):
        raise TypeError(f"Sigmoid.forward: x must be an array or a real Python number, "
                        f"got {type(x).__module__}.{type(x).__qualname__}")
    e = math.exp(-abs(x))
    return 1 / (1 + e) if x >= 0 else e / (1 + e)
