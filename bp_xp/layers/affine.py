"""The fully connected layer ``out = x @ W + b``."""

from __future__ import annotations

import math
from typing import Any

from ..backends import DTypeError, namespace_of, weight_gradient
from ._checks import ShapeError, check_shape, require_forward
from ._contract import Sample, bools, contract, floats, ints
from .base import Layer

__all__ = ["Affine"]

Array = Any


def _affine_reference(np: Any, x: Any, W: Any, b: Any) -> Any:
    return np.reshape(x, (x.shape[0], W.shape[0])) @ W + b


@contract(reference=_affine_reference, params={"W": floats(3, 2), "b": floats(2)},
          torch_reference=lambda torch, x, W, b: x.reshape(x.shape[0], W.shape[0]) @ W + b,
          samples=[
              Sample(floats(4, 3)),
              Sample(floats(2, 3, 1), name="image-shaped batch"),
              Sample(ints(4, 3), name="int batch"),
              Sample(floats(1, 3, special="inf"), smooth=False, name="inf"),
              Sample(floats(0, 3), name="empty batch"),
              Sample(floats(4, 5), raises=ShapeError, name="features that do not fit W"),
              Sample(floats(3), raises=ShapeError, name="no batch axis"),
              Sample(bools(4, 3), raises=DTypeError, name="bool batch"),
          ])
class Affine(Layer):
    """Fully connected layer ``out = x @ W + b``.

    ``x`` may have any number of dimensions: it is flattened to ``(N, -1)`` (an image
    batch ``(N, 1, 28, 28)`` works) and ``backward`` returns ``dx`` in ``x``'s shape.
    The layer owns ``params = {"W": W, "b": b}``; ``W`` and ``b`` read and write those
    entries, and after ``backward`` the book's ``dW`` and ``db`` read ``grads``.

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
    >>> layer.grads["W"] is layer.dW
    True
    """

    def __init__(self, W: Array, b: Array) -> None:
        namespace_of(W, b, names=("W", "b"))
        if W.ndim != 2 or b.shape != (W.shape[1],):
            raise ValueError(
                f"Affine needs W of shape (in, out) and b of shape (out,), got W {tuple(W.shape)} "
                f"and b {tuple(b.shape)}"
            )
        if W.dtype != b.dtype:
            raise TypeError(f"Affine needs W and b of one dtype, got {W.dtype} and {b.dtype}")
        self.params["W"] = W
        self.params["b"] = b
        self.x: Array | None = None
        self.original_x_shape: tuple[int, ...] | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any], params: dict[str, Array],
                    state: dict[str, Array]) -> Affine:
        if sorted(params) != ["W", "b"] or state or config:
            raise ValueError(f"Affine is rebuilt from params W and b alone, got params "
                             f"{sorted(params)}, state {sorted(state)}, config {config}")
        return cls(params["W"], params["b"])

    # The book's attribute names, as views of the one owner of each array.
    @property
    def W(self) -> Array:
        return self.params["W"]

    @W.setter
    def W(self, value: Array) -> None:
        self.params["W"] = value

    @property
    def b(self) -> Array:
        return self.params["b"]

    @b.setter
    def b(self, value: Array) -> None:
        self.params["b"] = value

    @property
    def dW(self) -> Array | None:
        return self.grads.get("W")

    @property
    def db(self) -> Array | None:
        return self.grads.get("b")

    def forward(self, x: Array) -> Array:
        W = self.params["W"]
        b = self.params["b"]
        xp = namespace_of(x, W, b, names=("x", "W", "b"))
        if not hasattr(x, "ndim"):
            raise TypeError(f"Affine.forward: x must be an array of W's backend, got "
                            f"{type(x).__name__}")
        if x.ndim < 2:
            raise ShapeError(
                f"Affine expects a batch of shape (N, ...), got shape {tuple(x.shape)}; "
                "reshape a single sample to (1, -1)"
            )
        features = math.prod(x.shape[1:])
        if features != W.shape[0]:
            raise ShapeError(
                f"Affine: x of shape {tuple(x.shape)} has {features} features per sample, "
                f"but W of shape {tuple(W.shape)} expects {W.shape[0]}"
            )
        if x.dtype != W.dtype and not xp.isdtype(x.dtype, "real floating"):
            if xp.isdtype(x.dtype, "bool"):
                raise DTypeError(f"Affine.forward: x is a bool array; expected a real "
                                 f"array (W is {W.dtype}): cast it to W's dtype first")
            x = xp.astype(x, W.dtype)  # an integer batch meets float weights: W's dtype
        shape = tuple(x.shape)
        if x.ndim != 2:
            x = xp.reshape(x, (x.shape[0], features))
        out = x @ W + b
        self.original_x_shape, self.x = shape, x  # committed once forward has succeeded
        return out

    def backward(self, dout: Array, *, need_dx: bool = True) -> Array | None:
        """Set ``grads`` (``dW``, ``db``); return ``dx`` in ``x``'s shape.

        Parameters
        ----------
        dout : array, shape (N, out_features)
        need_dx : bool, keyword-only
            ``False`` skips the product ``dout @ W.T`` and returns ``None``: networks
            pass it to their first layer, whose input gradient nobody uses (it is a
            third of that layer's backward work).
        """
        x = require_forward(self, self.x)
        W = self.params["W"]
        xp = namespace_of(dout, W, names=("dout", "W"))
        if dout.shape != (x.shape[0], W.shape[1]):
            check_shape("Affine", "dout", dout, (x.shape[0], W.shape[1]))
        self.grads["W"] = weight_gradient(x, dout, W)
        self.grads["b"] = xp.sum(dout, axis=0)
        if not need_dx:
            return None
        dx = dout @ W.T
        x_shape = require_forward(self, self.original_x_shape)
        if len(x_shape) != 2:
            dx = xp.reshape(dx, x_shape)
        return dx
