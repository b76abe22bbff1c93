"""Convolution and max pooling by strided windows: the fast kernels of NumPy and CuPy.

Both libraries can view an image batch as its windows without copying (``as_strided``
with the image's own strides), so the ``(N*OH*OW, C*FH*FW)`` matrix of a convolution is
built by *one* copy of that view, where the portable ``im2col`` stacks ``FH*FW`` strided
slices and then transposes the stack (two copies and ``FH*FW`` calls). Max pooling takes
``argmax`` over the window axis of the same view (the first maximum wins, as the
portable path's strictly-greater comparisons do) and gathers with it; its backward
scatters each gradient to that one pixel.

The functions take the array module (``numpy`` or ``cupy``) as their first argument, so
the one implementation serves both backend files, and the NumPy tests exercise the code
that CuPy runs. Output sizes are floored, as in the book and PyTorch: with a stride that
does not divide ``H + 2 pad - FH``, the last rows of the padded input are not read and
get a zero gradient. Inputs the kernels do not handle (not float32/float64, mixed dtypes)
make them return ``None``: the portable path answers.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

Array = Any


def _applies(xp: ModuleType, *arrays: Array) -> bool:
    dtype = arrays[0].dtype
    return dtype in (xp.float32, xp.float64) and all(a.dtype == dtype for a in arrays)


def _padded(xp: ModuleType, x: Array, pad: int) -> Array:
    if not pad:
        return x
    return xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


def _windows(xp: ModuleType, img: Array, fh: int, fw: int, stride: int, oh: int, ow: int,
             layout: str) -> Array:
    """A read-only view of every ``fh x fw`` window: ``(N, OH, OW, C, FH, FW)`` for
    ``layout="nhwc"``, ``(N, C, OH, OW, FH, FW)`` for ``"nchw"``."""
    sn, sc, sh, sw = img.strides
    n, c = img.shape[0], img.shape[1]
    if layout == "nhwc":
        shape = (n, oh, ow, c, fh, fw)
        strides = (sn, sh * stride, sw * stride, sc, sh, sw)
    else:
        shape = (n, c, oh, ow, fh, fw)
        strides = (sn, sc, sh * stride, sw * stride, sh, sw)
    return xp.lib.stride_tricks.as_strided(img, shape=shape, strides=strides)


def _fold(xp: ModuleType, pieces: Array, padded_shape: tuple[int, ...], stride: int) -> Array:
    """The adjoint of :func:`_windows` (``"nchw"``): a new image summing ``pieces``
    ``(N, C, OH, OW, FH, FW)`` into the pixels each window offset reads."""
    n, c, oh, ow, fh, fw = pieces.shape
    hp, wp = padded_shape[2], padded_shape[3]
    if fh == stride and fw == stride and hp == oh * fh and wp == ow * fw:  # windows tile the image
        return pieces.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, hp, wp)
    img = xp.zeros((n, c, hp, wp), dtype=pieces.dtype)
    h_end, w_end = stride * (oh - 1) + 1, stride * (ow - 1) + 1
    for y in range(fh):
        for x in range(fw):
            img[:, :, y:y + h_end:stride, x:x + w_end:stride] += pieces[:, :, :, :, y, x]
    return img


def _crop(img: Array, pad: int, h: int, w: int) -> Array:
    return img[:, :, pad:pad + h, pad:pad + w] if pad or img.shape[2:] != (h, w) else img


def conv2d(xp: ModuleType, x: Array, W: Array, b: Array, stride: int, pad: int
           ) -> tuple[Array, Callable[[Array, bool], tuple[Array | None, Array, Array]]] | None:
    """``(out, backward)`` of a convolution, or ``None`` where these arrays are not handled.

    ``backward(dout, need_dx)`` returns ``(dx or None, dW, db)``.
    """
    if not _applies(xp, x, W, b):
        return None
    n, c, h, w = x.shape
    fn, _, fh, fw = W.shape
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    img = _padded(xp, x, pad)
    # one copy of the strided view: the rows of the book's im2col matrix, in its order
    col = _windows(xp, img, fh, fw, stride, oh, ow, "nhwc").reshape(n * oh * ow, c * fh * fw)
    col_W = W.reshape(fn, c * fh * fw).T
    out = (col @ col_W + b).reshape(n, oh, ow, fn).transpose(0, 3, 1, 2)
    padded_shape = tuple(img.shape)

    def backward(dout: Array, need_dx: bool) -> tuple[Array | None, Array, Array]:
        d = dout.transpose(0, 2, 3, 1).reshape(n * oh * ow, fn)
        db = d.sum(axis=0)
        dW = (d.T @ col).reshape(fn, c, fh, fw)
        if not need_dx:
            return None, dW, db
        dcol = (d @ col_W.T).reshape(n, oh, ow, c, fh, fw).transpose(0, 3, 1, 2, 4, 5)
        return _crop(_fold(xp, dcol, padded_shape, stride), pad, h, w), dW, db

    return out, backward


def max_pool2d(xp: ModuleType, x: Array, pool_h: int, pool_w: int, stride: int, pad: int
               ) -> tuple[Array, Callable[[Array], Array]] | None:
    """``(out, backward)`` of max pooling over zero-padded windows, or ``None``.

    ``backward(dout)`` returns ``dx``: each gradient goes to the first maximum of its window.
    """
    if not _applies(xp, x):
        return None
    n, c, h, w = x.shape
    oh, ow = (h + 2 * pad - pool_h) // stride + 1, (w + 2 * pad - pool_w) // stride + 1
    img = _padded(xp, x, pad)
    k = pool_h * pool_w
    win = _windows(xp, img, pool_h, pool_w, stride, oh, ow, "nchw").reshape(n, c, oh, ow, k)
    arg = xp.argmax(win, axis=-1)  # the first maximum, as the portable path's strict >
    out = xp.take_along_axis(win, arg[..., None], axis=-1)[..., 0]
    padded_shape = tuple(img.shape)

    def backward(dout: Array) -> Array:
        pieces = xp.zeros((n * c * oh * ow, k), dtype=dout.dtype)
        pieces[xp.arange(n * c * oh * ow), arg.reshape(-1)] = dout.reshape(-1)
        pieces = pieces.reshape(n, c, oh, ow, pool_h, pool_w)
        return _crop(_fold(xp, pieces, padded_shape, stride), pad, h, w)

    return out, backward
