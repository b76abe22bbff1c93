"""``im2col`` and ``col2im``: convolution as a matrix product, on every backend.

The book (chapter 7) unrolls every filter window of an image batch into one row of a
matrix, so that a convolution is one ``col @ W`` and its backward one product the other
way, folded back by ``col2im``. Its code fills a zero matrix slice by slice
(``col[:, :, y, x, :, :] = img[...]``) and folds back with ``img[...] += col[...]``:
in-place writes that JAX cannot do and that would write into arrays bp_xp does not own.

Here ``im2col`` *reads* one strided slice of the padded image per filter offset and
stacks them, and ``col2im`` accumulates with :func:`array_api_extra.at` (an in-place
``+=`` on backends that can, a functional ``.at[].add`` on JAX) into an image it created
itself. When the windows do not overlap (stride equal to the filter, as in the book's
2x2 max pooling) both are a single reshape and transpose, with no loop at all.

Shapes follow the book: ``input_data`` is ``(N, C, H, W)``; ``col`` is
``(N * out_h * out_w, C * filter_h * filter_w)`` with rows ordered by sample, output
row, output column, and columns by channel, filter row, filter column.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_extra as xpx
from array_api_compat import device as _device

from ._checks import check_integer
from .backends import namespace_of

__all__ = ["col2im", "conv_output_size", "im2col"]  # and, for the layers: output_hw, windows, fold,
#                                                    reshape, is_empty

Array = Any


def is_empty(x: Array) -> bool:
    """Whether ``x`` holds no element (an empty batch)."""
    return math.prod(int(s) for s in x.shape) == 0


def reshape(xp: Any, x: Array, shape: tuple[int, ...]) -> Array:
    """``xp.reshape(x, shape)``; a zero-size ``x`` (an empty batch) gives a new empty array.

    Dask's reshape fails on a zero-size array (``reduce() of empty iterable`` inside
    ``dask.array.reshape``), and so does its item assignment, which padding and folding use:
    every zero-size intermediate of the convolution and pooling layers is made here, or in
    :func:`pad_image` and :func:`fold`, directly with ``xp.zeros``, on every backend alike.
    """
    if is_empty(x):
        return xp.zeros(shape, dtype=x.dtype, device=_device(x))
    return xp.reshape(x, shape)


def conv_output_size(input_size: int, filter_size: int, stride: int = 1, pad: int = 0, *,
                     what: str = "im2col", axis: str = "height") -> int:
    """``1 + (input_size + 2 pad - filter_size) // stride``: the book's and PyTorch's size.

    When ``stride`` does not divide ``input_size + 2 pad - filter_size``, the division is
    floored, as in the book's ``common/util.py`` and ``torch.nn.Conv2d``: the last rows
    (columns) that no whole window reaches are left out, and get a zero gradient. A filter
    larger than the padded input, or a stride, pad or filter size that is not a
    non-negative integer, is an error naming the sizes (``what`` and ``axis`` say where,
    for the message).

    Examples
    --------
    >>> from bp_xp.functions import conv_output_size
    >>> conv_output_size(28, 5), conv_output_size(24, 2, stride=2), conv_output_size(7, 3, 2, 1)
    (24, 12, 4)
    >>> conv_output_size(6, 3, stride=2)  # floor(3 / 2) + 1: the last row is not reached
    2
    >>> conv_output_size(2, 3)
    Traceback (most recent call last):
    ...
    ValueError: im2col: the filter height 3 is larger than the padded input height 2 + 2*0 = 2
    """
    for name, value, low in (("stride", stride, 1), ("pad", pad, 0), ("filter size", filter_size, 1)):
        check_integer(value, name, low=low, where=what)
    padded = input_size + 2 * pad
    if filter_size > padded:
        raise ValueError(
            f"{what}: the filter {axis} {filter_size} is larger than the padded input {axis} "
            f"{input_size} + 2*{pad} = {padded}"
        )
    return (padded - filter_size) // stride + 1


def _check_image(what: str, shape: tuple[int, ...]) -> None:
    if len(shape) != 4:
        raise ValueError(f"{what}: input must be an image batch of shape (N, C, H, W), got "
                         f"shape {shape}")


def output_hw(what: str, shape: tuple[int, ...], filter_h: int, filter_w: int, stride: int,
               pad: int) -> tuple[int, int]:
    _check_image(what, shape)
    out_h = conv_output_size(shape[2], filter_h, stride, pad, what=what, axis="height")
    out_w = conv_output_size(shape[3], filter_w, stride, pad, what=what, axis="width")
    return out_h, out_w


def _tiles(filter_h: int, filter_w: int, stride: int) -> bool:
    """Whether the windows tile the padded image exactly (no overlap, no gap)."""
    return filter_h == stride and filter_w == stride


def windows(img: Array, filter_h: int, filter_w: int, stride: int, out_h: int,
            out_w: int) -> list[Array]:
    """The ``filter_h * filter_w`` strided views ``img[:, :, y::stride, x::stride]``.

    Entry ``y * filter_w + x`` is ``(N, C, out_h, out_w)``: element ``[n, c, i, j]`` is the
    pixel at offset ``(y, x)`` of window ``(i, j)``. Slices only read ``img`` (on NumPy
    and PyTorch they are views, no copy).
    """
    h_end, w_end = stride * (out_h - 1) + 1, stride * (out_w - 1) + 1
    return [img[:, :, y:y + h_end:stride, x:x + w_end:stride]
            for y in range(filter_h) for x in range(filter_w)]


def fold(xp: Any, pieces: list[Array], padded_shape: tuple[int, int, int, int], filter_h: int,
         filter_w: int, stride: int) -> Array:
    """The adjoint of :func:`windows`: a new ``(N, C, Hp, Wp)`` image, summing overlaps.

    ``pieces[y * filter_w + x]`` is added at the pixels that window offset ``(y, x)``
    reads. Where the windows tile the image, every pixel comes from exactly one piece
    and the image is one stack, reshape and transpose; otherwise the pieces are added
    with :func:`array_api_extra.at` into a zero image created here (in place where the
    backend allows, a functional ``.at[].add`` on JAX).
    """
    N, C, hp, wp = padded_shape
    out_h, out_w = pieces[0].shape[2], pieces[0].shape[3]
    if is_empty(pieces[0]):  # an empty batch: nothing to add (see reshape)
        return xp.zeros(padded_shape, dtype=pieces[0].dtype, device=_device(pieces[0]))
    if _tiles(filter_h, filter_w, stride):
        img = xp.stack(pieces, axis=-1)  # (N, C, oh, ow, fh * fw)
        img = xp.reshape(img, (N, C, out_h, out_w, filter_h, filter_w))
        img = xp.permute_dims(img, (0, 1, 2, 4, 3, 5))
        img = xp.reshape(img, (N, C, out_h * filter_h, out_w * filter_w))
        missing_h, missing_w = hp - out_h * filter_h, wp - out_w * filter_w
        if missing_h or missing_w:  # a floored size: the last rows/columns get no gradient
            img = xpx.pad(img, ((0, 0), (0, 0), (0, missing_h), (0, missing_w)), xp=xp)
        return img
    first = pieces[0]
    img = xp.zeros((N, C, hp, wp), dtype=first.dtype, device=_device(first))
    h_end, w_end = stride * (out_h - 1) + 1, stride * (out_w - 1) + 1
    for k, piece in enumerate(pieces):
        y, x = divmod(k, filter_w)
        img = xpx.at(img)[:, :, y:y + h_end:stride, x:x + w_end:stride].add(piece)
    return img


def im2col(input_data: Array, filter_h: int, filter_w: int, stride: int = 1,
           pad: int = 0) -> Array:
    """Unroll every ``filter_h x filter_w`` window of an image batch into a row.

    Parameters
    ----------
    input_data : array, shape (N, C, H, W)
    filter_h, filter_w : int
    stride, pad : int
        ``pad`` zeros are added on every side. The output size is
        ``1 + (H + 2 pad - filter_h) // stride`` (the same for the width), floored as in
        the book when ``stride`` does not divide.

    Returns
    -------
    array, shape (N * out_h * out_w, C * filter_h * filter_w)
        A new array on ``input_data``'s backend, device and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.functions import im2col
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> im2col(x, 3, 3).shape
    (4, 9)
    >>> im2col(x, 2, 2, stride=2)[0]  # the top-left 2x2 window
    array([0., 1., 4., 5.])
    """
    xp = namespace_of(input_data)
    shape = tuple(input_data.shape)
    out_h, out_w = output_hw("im2col", shape, filter_h, filter_w, stride, pad)
    N, C = shape[0], shape[1]
    img = pad_image(xp, input_data, pad)
    # One strided slice per filter offset, read (never written) and stacked after the
    # channel axis: (N, C, fh*fw, oh, ow) -> (N, oh, ow, C, fh*fw), the book's layout.
    col = xp.stack(windows(img, filter_h, filter_w, stride, out_h, out_w), axis=2)
    col = xp.permute_dims(col, (0, 3, 4, 1, 2))
    return reshape(xp, col, (N * out_h * out_w, C * filter_h * filter_w))


def pad_image(xp: Any, img: Array, pad: int) -> Array:
    """``img`` with ``pad`` zeros on each side of its last two axes (``img`` when 0)."""
    if not pad:
        return img
    if is_empty(img):  # an empty batch (see reshape)
        n, c, h, w = img.shape
        return xp.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=img.dtype, device=_device(img))
    return xpx.pad(img, ((0, 0), (0, 0), (pad, pad), (pad, pad)), xp=xp)


def col2im(col: Array, input_shape: tuple[int, ...], filter_h: int, filter_w: int,
           stride: int = 1, pad: int = 0) -> Array:
    """Fold rows of windows back into an image batch, adding where windows overlap.

    The adjoint of :func:`im2col`: for any ``x`` and ``c`` of matching shapes,
    ``sum(im2col(x) * c) == sum(x * col2im(c, x.shape, ...))``. That is what the
    backward passes of ``Convolution`` and ``Pooling`` need.

    Parameters
    ----------
    col : array, shape (N * out_h * out_w, C * filter_h * filter_w)
    input_shape : tuple (N, C, H, W)
        The shape of the image ``col`` was unrolled from.
    filter_h, filter_w, stride, pad : int
        As given to :func:`im2col`.

    Returns
    -------
    array, shape input_shape
        A new array; ``col`` is not modified.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.functions import col2im
    >>> col2im(np.ones((4, 9)), (1, 1, 4, 4), 3, 3)  # how many windows cover each pixel
    array([[[[1., 2., 2., 1.],
             [2., 4., 4., 2.],
             [2., 4., 4., 2.],
             [1., 2., 2., 1.]]]])
    """
    xp = namespace_of(col)
    shape = tuple(int(s) for s in input_shape)
    out_h, out_w = output_hw("col2im", shape, filter_h, filter_w, stride, pad)
    N, C, H, W = shape
    expected = (N * out_h * out_w, C * filter_h * filter_w)
    if tuple(col.shape) != expected:
        raise ValueError(
            f"col2im: col must have shape {expected} for input shape {shape} and a "
            f"{filter_h}x{filter_w} filter with stride {stride} and pad {pad}, got "
            f"{tuple(col.shape)}"
        )
    # (N*oh*ow, C*fh*fw) -> (N, C, fh*fw, oh, ow): one (N, C, oh, ow) piece per offset.
    pieces = reshape(xp, col, (N, out_h, out_w, C, filter_h * filter_w))
    pieces = xp.permute_dims(pieces, (0, 3, 4, 1, 2))
    img = fold(xp, [pieces[:, :, k, :, :] for k in range(filter_h * filter_w)],
               (N, C, H + 2 * pad, W + 2 * pad), filter_h, filter_w, stride)
    return crop_image(img, pad)


def crop_image(img: Array, pad: int) -> Array:
    """``img`` without ``pad`` pixels on each side of its last two axes."""
    if not pad:
        return img
    return img[:, :, pad:img.shape[2] - pad, pad:img.shape[3] - pad]
