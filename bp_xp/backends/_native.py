"""Dispatchers of the native kernels for convolution, pooling and the loss (issue 22).

Unlike ``zero_where`` and ``subtract_scaled``, these have no portable spelling here: the
portable path is the layers' own (``im2col`` in :mod:`bp_xp.layers.conv`; the log-sum-exp
loss in :mod:`bp_xp.layers.loss`). Each returns the backend's result, or ``None`` when the
backend file lists no such kernel in its ``KERNELS`` or its kernel declines these arrays;
the caller then runs the portable path. ``tests/test_fast_kernels.py`` holds every kernel to
the portable path in float64. Re-exported by :mod:`bp_xp.backends`.
"""

from __future__ import annotations

from typing import Any

from ._namespace import FAST_KERNELS, namespace_of

__all__ = ["conv2d", "max_pool2d", "softmax_cross_entropy_labels"]


def _kernel(name: str, x: Any) -> Any:
    """The fast function that ``x``'s backend file lists as ``name``, or ``None``.

    The lookup of :func:`bp_xp.backends.fast_kernel`, written here against the kernel table
    of :mod:`bp_xp.backends._namespace` alone: a type not met yet is learned first.
    """
    table = FAST_KERNELS.get(name)
    fast = None if table is None else table.get(type(x))
    if fast is None and hasattr(x, "shape"):
        try:
            namespace_of(x)  # learns the type's backend and its kernels (cached after once)
        except TypeError:
            return None
        table = FAST_KERNELS.get(name)
        fast = None if table is None else table.get(type(x))
    return fast


def conv2d(x: Any, W: Any, b: Any, stride: int, pad: int) -> Any:
    """``(out, backward)`` of a 2-D convolution by the backend's own kernel, or ``None``.

    ``out[n, f] = sum_c x[n, c] (*) W[f, c] + b[f]`` (cross-correlation), output sizes
    floored; ``backward(dout, need_dx)`` returns ``(dx or None, dW, db)``.

    Examples
    --------
    >>> import numpy as np
    >>> out, backward = conv2d(np.ones((1, 1, 4, 4)), np.ones((2, 1, 3, 3)), np.zeros(2), 1, 0)
    >>> out[0, 0]
    array([[9., 9.],
           [9., 9.]])
    >>> [a.shape for a in backward(np.ones((1, 2, 2, 2)), True)]
    [(1, 1, 4, 4), (2, 1, 3, 3), (2,)]
    """
    fast = _kernel("conv2d", x)
    if fast is None or type(W) is not type(x) or type(b) is not type(x):
        return None
    return fast(x, W, b, stride, pad)


def max_pool2d(x: Any, pool_h: int, pool_w: int, stride: int, pad: int) -> Any:
    """``(out, backward)`` of max pooling over zero-padded windows by the backend's kernel, or ``None``.

    The first maximum of a window wins; ``backward(dout)`` returns ``dx``.

    Examples
    --------
    >>> import numpy as np
    >>> out, backward = max_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2, 2, 2, 0)
    >>> out[0, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """
    fast = _kernel("max_pool2d", x)
    return None if fast is None else fast(x, pool_h, pool_w, stride, pad)


def softmax_cross_entropy_labels(x: Any, t: Any) -> Any:
    """``(loss, y, backward)`` of softmax cross-entropy against checked integer labels, or ``None``.

    The caller has checked ``t`` (integer dtype wide enough, shape ``(N,)``); a label
    out of range gives NaN loss and gradient rows, as on the portable path.
    ``backward(scale)`` returns ``(y - onehot(t)) * scale``.
    """
    fast = _kernel("softmax_cross_entropy_labels", x)
    if fast is None or type(t) is not type(x):
        return None
    return fast(x, t)

