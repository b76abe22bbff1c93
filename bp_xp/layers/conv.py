"""Convolution and max pooling (the book's chapter 7), by ``im2col`` on every backend."""

from __future__ import annotations

import numbers
from typing import Any

from array_api_compat import device as _device

from .._checks import check_integer
from .._im2col import (
    col2im,
    crop_image,
    fold,
    im2col,
    is_empty,
    output_hw,
    pad_image,
    reshape,
    windows,
)
from ..backends import DTypeError, namespace_of
from ..backends import conv2d as _native_conv2d
from ..backends import max_pool2d as _native_max_pool2d
from . import _references
from ._checks import ShapeError, check_shape, dtype_kind, require_forward
from ._contract import contract
from .affine import Affine
from .base import Layer

__all__ = ["Convolution", "Pooling"]

Array = Any


def _refuse_bool(layer: str, x: Array, xp: Any, expected: str) -> None:
    """Bool images are refused, as by the other floating layers: the Array API defines no
    arithmetic or ordering on bool (NumPy would quietly convolve or pool them)."""
    if dtype_kind(xp, x.dtype) == "bool":
        raise DTypeError(f"{layer}.forward: x is a bool array; expected a real floating array "
                         f"({expected}) or an integer one: cast it first "
                         "(xp.astype(x, xp.float32))")


def _output_hw(layer: str, x: Array, filter_h: int, filter_w: int, stride: int,
               pad: int) -> tuple[int, int]:
    """The output's height and width; an image that is not (N, C, H, W) or is smaller than
    the window is a :class:`ShapeError` (a ``ValueError``), the same on every backend."""
    try:
        return output_hw(layer, tuple(x.shape), filter_h, filter_w, stride, pad)
    except ValueError as exc:  # _im2col (below the layers) raises plain ValueError
        raise ShapeError(str(exc)) from None


@contract(**_references.convolution())  # the conformance harness's samples and reference
@contract(**_references.convolution(stride=2, pad=1))
class Convolution(Layer):
    """2-D convolution ``out[n, f] = sum_c x[n, c] * W[f, c] + b[f]`` (cross-correlation).

    As in the book, the input is unrolled by :func:`bp_xp.functions.im2col`, so that the
    convolution is one matrix product ``col @ col_W + b``, and ``backward`` folds the
    input's gradient back with :func:`bp_xp.functions.col2im`. The layer owns
    ``params = {"W": W, "b": b}``; ``W``, ``b``, ``dW`` and ``db`` are the book's names
    for them.

    Parameters
    ----------
    W : array, shape (FN, C, FH, FW)
        ``FN`` filters over ``C`` channels.
    b : array, shape (FN,), or a number
        A number (the book's ``Convolution(W, 0)``) becomes an array of that value, one
        per filter, on ``W``'s backend, device and dtype.
    stride, pad : int
        The output is ``1 + (H + 2 pad - FH) // stride`` high (the same for the width):
        floored when ``stride`` does not divide, as in the book and ``torch.nn.Conv2d``.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.layers import Convolution
    >>> conv = Convolution(np.ones((2, 1, 3, 3)), np.zeros(2), pad=1)
    >>> conv.forward(np.ones((1, 1, 4, 4)))[0, 0]  # how many pixels each window sees
    array([[4., 6., 6., 4.],
           [6., 9., 9., 6.],
           [6., 9., 9., 6.],
           [4., 6., 6., 4.]])
    >>> conv.backward(np.ones((1, 2, 4, 4))).shape, conv.dW.shape, conv.db.shape
    ((1, 1, 4, 4), (2, 1, 3, 3), (2,))
    """

    def __init__(self, W: Array, b: Array, stride: int = 1, pad: int = 0) -> None:
        if isinstance(b, numbers.Real) and not isinstance(b, bool) and hasattr(W, "ndim"):
            # the book's ch07/apply_filter.py: Convolution(W, 0), one bias for every filter
            b = namespace_of(W).full((W.shape[0] if W.ndim else 0,), float(b), dtype=W.dtype,
                                     device=_device(W))
        namespace_of(W, b, names=("W", "b"))
        if W.ndim != 4 or b.shape != (W.shape[0],):
            raise ValueError(
                f"Convolution needs W of shape (FN, C, FH, FW) and b of shape (FN,), got W "
                f"{tuple(W.shape)} and b {tuple(b.shape)}"
            )
        if W.dtype != b.dtype:
            raise TypeError(f"Convolution needs W and b of one dtype, got {W.dtype} and {b.dtype}")
        for name, value, low in (("stride", stride, 1), ("pad", pad, 0)):
            check_integer(value, name, low=low, where="Convolution")
        self.params["W"] = W
        self.params["b"] = b
        self.stride = stride
        self.pad = pad
        self.x_shape: tuple[int, ...] | None = None
        self.out_hw: tuple[int, int] | None = None
        self.col: Array | None = None
        self.col_W: Array | None = None
        self._native_backward: Any = None  # set by a backend's native kernel (see forward)

    def config(self) -> dict[str, Any]:
        return {"stride": self.stride, "pad": self.pad}

    @classmethod
    def from_config(cls, config: dict[str, Any], params: dict[str, Array],
                    state: dict[str, Array]) -> Convolution:
        if sorted(params) != ["W", "b"] or state:
            raise ValueError(f"Convolution is rebuilt from params W and b, got params "
                             f"{sorted(params)} and state {sorted(state)}")
        return cls(params["W"], params["b"], **config)

    # The book's attribute names, as views of the one owner of each array (Affine's).
    W = Affine.W
    b = Affine.b
    dW = Affine.dW
    db = Affine.db

    def forward(self, x: Array) -> Array:
        W, b = self.params["W"], self.params["b"]
        xp = namespace_of(x, W, b, names=("x", "W", "b"))
        _refuse_bool("Convolution", x, xp, f"W's {W.dtype}")
        FN, C, FH, FW = W.shape
        if x.ndim != 4 or x.shape[1] != C:
            raise ShapeError(
                f"Convolution: x must be an image batch (N, {C}, H, W) for W of shape "
                f"{tuple(W.shape)} ({C} channels), got x of shape {tuple(x.shape)}"
            )
        out_h, out_w = _output_hw("Convolution", x, FH, FW, self.stride, self.pad)
        # the backend's own kernel, if any; an empty batch takes the portable path, whose
        # zero-size arrays are made on x's device (JAX's kernel puts dW on the default one)
        native = None if is_empty(x) else _native_conv2d(x, W, b, self.stride, self.pad)
        if native is not None:
            out, self._native_backward = native
            self.x_shape, self.out_hw, self.col, self.col_W = tuple(x.shape), (out_h, out_w), None, None
            return out
        self._native_backward = None
        N = x.shape[0]
        col = im2col(x, FH, FW, self.stride, self.pad)
        col_W = reshape(xp, W, (FN, C * FH * FW)).T
        out = col @ col_W + b
        self.x_shape = tuple(x.shape)
        self.out_hw = (out_h, out_w)
        self.col = col
        self.col_W = col_W
        return xp.permute_dims(reshape(xp, out, (N, out_h, out_w, FN)), (0, 3, 1, 2))

    def backward(self, dout: Array, *, need_dx: bool = True) -> Array | None:
        """Set ``grads`` (``dW``, ``db``); return ``dx`` of ``x``'s shape.

        ``need_dx=False`` skips ``col2im`` and returns ``None``: networks pass it to
        their first layer, whose input gradient nobody uses.
        """
        if self._native_backward is not None:  # forward ran the backend's own kernel
            namespace_of(dout, self.params["W"], names=("dout", "W"))
            check_shape("Convolution", "dout", dout,
                        (require_forward(self, self.x_shape)[0], self.params["W"].shape[0],
                         *require_forward(self, self.out_hw)))
            dx, self.grads["W"], self.grads["b"] = self._native_backward(dout, need_dx)
            return dx
        col = require_forward(self, self.col)
        # forward sets these together with col
        x_shape = require_forward(self, self.x_shape)
        out_hw = require_forward(self, self.out_hw)
        W = self.params["W"]
        xp = namespace_of(dout, W, names=("dout", "W"))
        FN, C, FH, FW = W.shape
        check_shape("Convolution", "dout", dout, (x_shape[0], FN, *out_hw))
        dout = reshape(xp, xp.permute_dims(dout, (0, 2, 3, 1)), (col.shape[0], FN))
        self.grads["b"] = xp.sum(dout, axis=0)
        self.grads["W"] = reshape(xp, dout.T @ col, (FN, C, FH, FW))
        if not need_dx:
            return None
        dcol = dout @ require_forward(self, self.col_W).T
        return col2im(dcol, x_shape, FH, FW, self.stride, self.pad)


@contract(**_references.pooling())
@contract(**_references.pooling(size=3, stride=1, pad=1))
class Pooling(Layer):
    """Max pooling over ``pool_h x pool_w`` windows, channel by channel.

    The book unrolls the windows with ``im2col`` and takes ``max`` and ``argmax`` along
    each row. This layer computes the same thing without building that matrix: it takes
    the element-wise maximum of the window's strided slices (one per offset in the
    window) and remembers, per output pixel, which offset won: the first one, as
    ``argmax`` does on ties. ``backward`` sends each gradient to that one pixel.
    Padding adds zeros, as the book's ``im2col`` does (PyTorch pads max pooling with
    ``-inf``: the two differ only where a padded window holds only negative values).

    Parameters
    ----------
    pool_h, pool_w : int
    stride : int
        2 by default, as in the book's repository.
    pad : int

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.layers import Pooling
    >>> pool = Pooling(2, 2)
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> pool.forward(x)
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    >>> pool.backward(np.ones((1, 1, 2, 2)))[0, 0]
    array([[0., 0., 0., 0.],
           [0., 1., 0., 1.],
           [0., 0., 0., 0.],
           [0., 1., 0., 1.]])
    """

    def __init__(self, pool_h: int, pool_w: int, stride: int = 2, pad: int = 0) -> None:
        for name, value, low in (("pool_h", pool_h, 1), ("pool_w", pool_w, 1),
                                 ("stride", stride, 1), ("pad", pad, 0)):
            check_integer(value, name, low=low, where="Pooling")
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.x_shape: tuple[int, ...] | None = None
        self.arg_max: Array | None = None
        self._native_backward: Any = None  # set by a backend's native kernel (see forward)
        self._native_out: Array | None = None

    def config(self) -> dict[str, Any]:
        return {"pool_h": self.pool_h, "pool_w": self.pool_w, "stride": self.stride,
                "pad": self.pad}

    def forward(self, x: Array) -> Array:
        xp = namespace_of(x)
        _refuse_bool("Pooling", x, xp, "the network's float32 or float64")
        shape = tuple(x.shape)
        out_h, out_w = _output_hw("Pooling", x, self.pool_h, self.pool_w, self.stride, self.pad)
        native = None if is_empty(x) else _native_max_pool2d(x, self.pool_h, self.pool_w,
                                                             self.stride, self.pad)
        if native is not None:  # the backend's own kernel
            out, self._native_backward = native
            self.x_shape, self.arg_max, self._native_out = shape, None, out
            return out
        self._native_backward = None
        pieces = windows(pad_image(xp, x, self.pad), self.pool_h, self.pool_w, self.stride,
                         out_h, out_w)
        out = pieces[0]
        floating = xp.isdtype(x.dtype, "real floating")
        arg_max = xp.zeros(out.shape, dtype=xp.int32, device=_device(x))
        for k, piece in enumerate(pieces[1:], start=1):
            wins = piece > out  # strictly greater: the first maximum wins, as in argmax
            if floating:  # a NaN wins and stays, as in numpy.max (the first NaN)
                wins = wins | (xp.isnan(piece) & ~xp.isnan(out))
            out = xp.where(wins, piece, out)
            arg_max = xp.where(wins, xp.asarray(k, dtype=xp.int32, device=_device(x)), arg_max)
        self.x_shape = shape
        self.arg_max = arg_max
        return out

    def backward(self, dout: Array) -> Array:
        if self._native_backward is not None:  # forward ran the backend's own kernel
            out = require_forward(self, self._native_out)
            namespace_of(dout, out, names=("dout", "out"))
            check_shape("Pooling", "dout", dout, tuple(out.shape))
            return self._native_backward(dout)
        arg_max = require_forward(self, self.arg_max)
        xp = namespace_of(dout, arg_max, names=("dout", "arg_max"))
        check_shape("Pooling", "dout", dout, tuple(arg_max.shape))
        N, C, H, W = require_forward(self, self.x_shape)  # set with arg_max
        zero = xp.zeros((), dtype=dout.dtype, device=_device(dout))
        pieces = [xp.where(arg_max == k, dout, zero)
                  for k in range(self.pool_h * self.pool_w)]
        img = fold(xp, pieces, (N, C, H + 2 * self.pad, W + 2 * self.pad), self.pool_h,
                   self.pool_w, self.stride)
        return crop_image(img, self.pad)
