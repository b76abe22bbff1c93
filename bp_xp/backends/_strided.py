"""Convolution and max pooling by strided windows: the fast kernels of NumPy and CuPy.

Both libraries can view an image batch as its windows without copying (``as_strided``
with the image's own strides), so the unrolled matrix of a convolution is built by *one*
copy of that view (transposed, ``(C*FH*FW, N*OH*OW)``, so that the copy reads memory in
order), where the portable ``im2col`` stacks ``FH*FW`` strided slices and then transposes
the stack (two copies and ``FH*FW`` calls). Max pooling is
an element-wise ``maximum`` of the window's strided slices; the first offset holding a
window's maximum (the portable path's strictly-greater comparisons pick the same one) is
found with boolean operations, and the backward sends each gradient to that one pixel.

The functions take the array module (``numpy`` or ``cupy``; ``torch`` for pooling on the
CPU, where it beats PyTorch's own ``max_pool2d``) as their first argument, so the one
implementation serves several backend files, and the NumPy tests exercise the code that
CuPy runs. Output sizes are floored, as in the book and PyTorch: with a stride that
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
    if xp.__name__ == "torch":
        return xp.nn.functional.pad(x, (pad, pad, pad, pad))
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


def _unrolled(xp: ModuleType, x: Array, fh: int, fw: int, stride: int, pad: int, oh: int,
              ow: int) -> tuple[Array, tuple[int, ...]]:
    """``(col, padded shape)``: the windows of ``x`` as one ``(C*FH*FW, N*OH*OW)`` copy.

    The copy is of the strided view ``(C, FH, FW, N, OH, OW)`` of the padded image, whose
    innermost axis walks along image rows, so it reads memory in order.
    """
    n, c = x.shape[0], x.shape[1]
    img = _padded(xp, x, pad)
    sn, sc, sh, sw = img.strides
    view = xp.lib.stride_tricks.as_strided(
        img, shape=(c, fh, fw, n, oh, ow), strides=(sc, sh, sw, sn, sh * stride, sw * stride))
    return view.reshape(c * fh * fw, n * oh * ow), tuple(img.shape)  # one copy


def conv2d(xp: ModuleType, x: Array, W: Array, b: Array, stride: int, pad: int
           ) -> tuple[Array, Callable[[Array, bool], tuple[Array | None, Array, Array]]] | None:
    """``(out, backward)`` of a convolution, or ``None`` where these arrays are not handled.

    The unrolled windows are built *transposed*, as one ``(C*FH*FW, N*OH*OW)`` copy of the
    strided view ``(C, FH, FW, N, OH, OW)`` of the padded image: its innermost axis walks
    along image rows, so the copy reads memory in order (the book's row layout
    ``(N*OH*OW, C*FH*FW)`` would read ``FW`` elements at a time). The products are then
    ``W @ col`` and its transposes. ``backward(dout, need_dx)`` returns ``(dx or None, dW, db)``.

    ``dx`` is the unrolled gradient ``W.T @ dout`` folded back (``FH*FW`` strided sums into
    the padded image), except for square filters at stride 1 with ``pad < FH`` where
    unrolling ``dout`` is the smaller copy (``FN*H*W <= C*OH*OW``: DeepConvNet's ``pad=2``
    layer, and layers that do not widen the channels): there ``dx`` is the convolution of
    ``dout``, zero-padded by ``FH - 1 - pad``, with the filters flipped and their two channel
    axes swapped (the adjoint of a stride-1 convolution), one copy and one product.
    """
    if not _applies(xp, x, W, b):
        return None
    n, c, h, w = x.shape
    fn, _, fh, fw = W.shape
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    col, padded_shape = _unrolled(xp, x, fh, fw, stride, pad, oh, ow)
    W_mat = W.reshape(fn, c * fh * fw)
    out = (W_mat @ col).reshape(fn, n, oh, ow) + b.reshape(fn, 1, 1, 1)
    out = out.transpose(1, 0, 2, 3)
    as_convolution = (stride == 1 and fh == fw and pad < fh and fn * h * w <= c * oh * ow)

    def backward(dout: Array, need_dx: bool) -> tuple[Array | None, Array, Array]:
        d = dout.transpose(1, 0, 2, 3).reshape(fn, n * oh * ow)
        db = d.sum(axis=1)
        dW = (d @ col.T).reshape(fn, c, fh, fw)
        if not need_dx:
            return None, dW, db
        if as_convolution:  # the adjoint convolution: flipped filters, channels swapped
            dcol, _ = _unrolled(xp, dout, fh, fw, 1, fh - 1 - pad, h, w)
            flipped = W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(c, fn * fh * fw)
            return (flipped @ dcol).reshape(c, n, h, w).transpose(1, 0, 2, 3), dW, db
        dcol = (W_mat.T @ d).reshape(c, fh, fw, n, oh, ow).transpose(3, 0, 4, 5, 1, 2)
        return _crop(_fold(xp, dcol, padded_shape, stride), pad, h, w), dW, db

    return out, backward


def _keep(xp: ModuleType, mask: Array, x: Array) -> Array:
    """``where(mask, x, +0.0)`` by ANDing ``x``'s bits with all-ones/all-zeros (NumPy's
    ``where`` is branchy and slow on random masks; see ``bp_xp.backends.zero_where``)."""
    if xp.__name__ == "torch":  # the same on CPU tensors (two's complement: -1 is all ones)
        integer = xp.int32 if x.dtype == xp.float32 else xp.int64
        bits = mask.to(integer)
        bits.neg_()
        bits &= x.view(integer)
        return bits.view(x.dtype)
    if xp.__name__ != "numpy":
        return xp.where(mask, x, xp.zeros((), dtype=x.dtype))
    uint = xp.uint32 if x.dtype == xp.float32 else xp.uint64
    bits = mask.astype(uint)
    xp.negative(bits, out=bits)  # 0 -> 0, 1 -> all ones
    bits &= x.view(uint)
    return bits.view(x.dtype)


def max_pool2d(xp: ModuleType, x: Array, pool_h: int, pool_w: int, stride: int, pad: int
               ) -> tuple[Array, Callable[[Array], Array]] | None:
    """``(out, backward)`` of max pooling over zero-padded windows, or ``None``.

    The maximum is an element-wise ``maximum`` of the window's strided slices (one per
    offset, read in place), and each window's gradient goes to the first offset that holds
    it, as on the portable path (found with boolean operations, no ``where``). NaN
    propagates to the output here (the portable path keeps a window's first value when a
    later one is NaN); finite inputs give the portable path's bits. ``backward(dout)``
    returns ``dx``.
    """
    if not _applies(xp, x):
        return None
    n, c, h, w = x.shape
    oh, ow = (h + 2 * pad - pool_h) // stride + 1, (w + 2 * pad - pool_w) // stride + 1
    img = _padded(xp, x, pad)
    h_end, w_end = stride * (oh - 1) + 1, stride * (ow - 1) + 1
    offsets = [(y, x_) for y in range(pool_h) for x_ in range(pool_w)]
    pieces = [img[:, :, y:y + h_end:stride, x_:x_ + w_end:stride] for y, x_ in offsets]
    out = xp.maximum(pieces[0], pieces[1]) if len(pieces) > 1 else pieces[0] * 1  # a new array
    for piece in pieces[2:]:
        xp.maximum(out, piece, out=out)
    hits = []  # hits[k]: windows whose first maximum is at offset k
    free = None  # windows whose maximum has not been met yet
    for piece in pieces:
        equal = piece == out
        hits.append(equal if free is None else equal & free)
        free = ~equal if free is None else free & ~equal
    padded_shape = tuple(img.shape)
    tiles = (pool_h == stride and pool_w == stride and padded_shape[2] == oh * pool_h
             and padded_shape[3] == ow * pool_w)

    def backward(dout: Array) -> Array:
        # every pixel read by exactly one window when they tile the image: plain writes
        dimg = (xp.empty if tiles else xp.zeros)(padded_shape, dtype=dout.dtype)
        for (y, x_), hit in zip(offsets, hits):
            target = (slice(None), slice(None), slice(y, y + h_end, stride),
                      slice(x_, x_ + w_end, stride))
            if tiles:
                dimg[target] = _keep(xp, hit, dout)
            else:
                dimg[target] += _keep(xp, hit, dout)
        return _crop(dimg, pad, h, w)

    return out, backward
