"""Checks shared by the chapter-6/7 layer tests: loop references and numerical gradients.

The loop references are the definitions written out index by index, in float64 NumPy,
deliberately unlike bp_xp's vectorised code so that a shared mistake is unlikely.
"""

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import bp_xp


def _window_pixels(shape, fh, fw, stride, pad):
    """Every (col row, col column, n, c, padded row, padded column) of the unrolling."""
    n, c, h, w = shape
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    for y in range(fh):
                        for xx in range(fw):
                            yield ((b * oh + i) * ow + j, (ch * fh + y) * fw + xx, b, ch,
                                   i * stride + y, j * stride + xx)


def loop_im2col(x, fh, fw, stride, pad):
    """Row ``(n, i, j)``, column ``(c, y, x)`` = padded ``x[n, c, i*stride + y, j*stride + x]``."""
    n, c, h, w = x.shape
    padded = np.zeros((n, c, h + 2 * pad, w + 2 * pad))
    padded[:, :, pad:pad + h, pad:pad + w] = x
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    col = np.zeros((n * oh * ow, c * fh * fw))
    for row, column, b, ch, py, px in _window_pixels(x.shape, fh, fw, stride, pad):
        col[row, column] = padded[b, ch, py, px]
    return col


def loop_col2im(col, shape, fh, fw, stride, pad):
    """Each ``col`` entry added back at the padded pixel :func:`loop_im2col` read it from."""
    n, c, h, w = shape
    img = np.zeros((n, c, h + 2 * pad, w + 2 * pad))
    for row, column, b, ch, py, px in _window_pixels(shape, fh, fw, stride, pad):
        img[b, ch, py, px] += col[row, column]
    return img[:, :, pad:pad + h, pad:pad + w]


def loop_conv(x, W, b, stride, pad):
    """Cross-correlation by its definition."""
    n, c, h, w = x.shape
    fn, _, fh, fw = W.shape
    xp_ = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    out = np.zeros((n, fn, oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = xp_[:, :, i * stride:i * stride + fh, j * stride:j * stride + fw]
            out[:, :, i, j] = np.tensordot(window, W, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


def loop_max_pool(x, ph, pw, stride, pad):
    """Max over each window of the zero-padded input (the book's padding)."""
    n, c, h, w = x.shape
    xp_ = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - ph) // stride + 1, (w + 2 * pad - pw) // stride + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = xp_[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw]
            out[:, :, i, j] = window.max(axis=(2, 3))
    return out


def numeric_grad(xb: Any, f: Callable[[Any], Any], host: np.ndarray) -> np.ndarray:
    """Central-difference gradient of scalar ``f`` at ``host`` (moved to ``xb`` in float64)."""
    x = xb.asarray(host, "float64")
    return xb.to_numpy(bp_xp.numerical_gradient(f, x, h=1e-5))


def rel_error(a, b) -> float:
    return bp_xp.relative_error(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


def torch_or_skip():
    import pytest

    return pytest.importorskip("torch")


#: The matrix rows that repeat another row's work for a numerical check (``numpy_readonly``
#: is ``numpy`` with read-only inputs, ``strict_device1`` is ``strict`` on a second device):
#: tests of many gradient evaluations leave them to the slow lane with this marker. Writes into
#: callers' arrays and a wrong device stay caught in the fast lane by the tests that look for
#: them on ``numpy`` and ``strict`` (the conformance checks compare inputs before and after, and
#: refuse arrays of another device) and in the full suite on every row.
REPEATING_ROWS = pytest.mark.slow_rows("numpy_readonly", "strict_device1")
