"""The functions under the layers: activations, softmax and the cross-entropy loss.

Every function takes its namespace from its inputs, names the dtype and device of any
array it creates, and is numerically stable: no overflow (and no overflow warning) for
inputs up to about 1e4 in magnitude in float32 or float64, and no ``+ 1e-7`` fudge in
the logarithm. Nothing here reads values back to the host, so the functions are safe
inside a training step on a GPU or on lazy (Dask) arrays.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import device as _device

from ._backend import namespace_of
from ._im2col import col2im, conv_output_size, im2col

__all__ = [
    "col2im",
    "conv_output_size",
    "cross_entropy_error",
    "im2col",
    "log_softmax",
    "one_hot",
    "relu",
    "sigmoid",
    "softmax",
    "softmax_cross_entropy",
]

Array = Any


def sigmoid(x: Array) -> Array:
    """Logistic function ``1 / (1 + exp(-x))``, without overflow for large ``|x|``.

    ``exp`` is only ever taken of ``-|x|``, which lies in (0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.functions import sigmoid
    >>> sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    array([0. , 0.5, 1. ])
    """
    xp = namespace_of(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def relu(x: Array) -> Array:
    """Rectified linear unit ``max(x, 0)``, in ``x``'s dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.functions import relu
    >>> relu(np.array([-1.0, 2.0]))
    array([0., 2.])
    """
    xp = namespace_of(x)
    return xp.where(x > 0, x, 0)


def softmax(x: Array, axis: int = -1) -> Array:
    """Softmax along ``axis``, shifted by the maximum so that ``exp`` never overflows.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.functions import softmax
    >>> softmax(np.array([[1000.0, 1000.0]]))
    array([[0.5, 0.5]])
    """
    xp = namespace_of(x)
    shifted = x - xp.max(x, axis=axis, keepdims=True)
    e = xp.exp(shifted)
    return e / xp.sum(e, axis=axis, keepdims=True)


def log_softmax(x: Array, axis: int = -1) -> Array:
    """``log(softmax(x))`` by log-sum-exp: finite wherever ``x`` is finite.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.functions import log_softmax
    >>> log_softmax(np.array([[0.0, -2000.0]]))
    array([[    0., -2000.]])
    """
    xp = namespace_of(x)
    shifted = x - xp.max(x, axis=axis, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


def one_hot(t: Array, num_classes: int, dtype: Any = None) -> Array:
    """One-hot rows for integer labels ``t`` of shape ``(N,)``: shape ``(N, num_classes)``.

    Built by comparison with ``arange`` (no scatter, no in-place write), so it runs on
    immutable backends too. Labels outside ``[0, num_classes)`` give an all-zero row:
    checking them would need a device-to-host read, so validate labels once, on the
    host, when the dataset is loaded.

    Parameters
    ----------
    t : array of an integer dtype (any: uint8, int32, int64...)
    num_classes : int
    dtype : dtype, optional
        Of the result; defaults to the namespace's default floating dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.functions import one_hot
    >>> one_hot(np.array([2, 0], dtype=np.uint8), 3)
    array([[0., 0., 1.],
           [1., 0., 0.]])
    """
    xp = namespace_of(t)
    _require_integer_labels(xp, t)
    classes = xp.arange(num_classes, dtype=t.dtype, device=_device(t))
    hits = xp.expand_dims(t, axis=-1) == classes
    if dtype is None:
        dtype = xp.asarray(0.0, device=_device(t)).dtype
    return xp.astype(hits, dtype)


def softmax_cross_entropy(x: Array, t: Array) -> Array:
    """Mean cross-entropy of ``softmax(x)`` against labels ``t``, from logits ``x``.

    Computed with :func:`log_softmax`, so logits of +-1e4 give a finite loss. ``t`` is
    either one-hot (or any probability rows), with ``x``'s shape, or integer class
    labels with one dimension less. Returns a 0-d array on ``x``'s device.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.functions import softmax_cross_entropy
    >>> float(softmax_cross_entropy(np.array([[0.0, 0.0]]), np.array([1])))  # log 2
    0.6931471805599453
    """
    xp = namespace_of(x, t, names=("x", "t"))
    return _mean_nll(xp, log_softmax(x), t)


def cross_entropy_error(y: Array, t: Array) -> Array:
    """The book's cross-entropy of probabilities ``y`` (softmax output) against ``t``.

    ``t`` is one-hot (same shape as ``y``) or integer labels (one dimension less). A
    1-D ``y`` is treated as a batch of one, as in the book. Probabilities are clipped at
    the dtype's smallest normal number instead of adding ``1e-7``, so a correct
    prediction of 1.0 costs exactly 0 and a prediction of exactly 0 costs a large but
    finite amount. Prefer :func:`softmax_cross_entropy` when you have logits.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.functions import cross_entropy_error
    >>> y = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
    >>> round(float(cross_entropy_error(y, np.array(2))), 4)
    0.5108
    """
    xp = namespace_of(y, t, names=("y", "t"))
    if y.ndim == 1:
        y = xp.reshape(y, (1, y.shape[0]))
        t = xp.reshape(t, (1, -1) if t.ndim == 1 else (1,))
    tiny = xp.finfo(y.dtype).smallest_normal
    return _mean_nll(xp, xp.log(xp.clip(y, tiny, None)), t)


def _mean_nll(xp: Any, logp: Array, t: Array) -> Array:
    """Mean over the batch of ``-sum(t * logp)``, for one-hot or integer ``t``."""
    return _nll_with_hits(xp, logp, t, _label_hits(xp, logp, t))


def _label_hits(xp: Any, logp: Array, t: Array) -> Array | None:
    """Validate labels ``t`` against ``logp``; the boolean one-hot of integer labels.

    Returns ``None`` for one-hot (probability) labels, which need no conversion.
    """
    if t.ndim == logp.ndim:
        if t.shape != logp.shape:
            raise ValueError(
                f"one-hot labels must have the predictions' shape {tuple(logp.shape)}, "
                f"got {tuple(t.shape)}"
            )
        return None
    if t.ndim == logp.ndim - 1:
        if t.shape != logp.shape[:-1]:
            raise ValueError(
                f"integer labels must have shape {tuple(logp.shape[:-1])} for predictions "
                f"of shape {tuple(logp.shape)}, got {tuple(t.shape)}"
            )
        _require_integer_labels(xp, t)
        classes = xp.arange(logp.shape[-1], dtype=t.dtype, device=_device(t))
        return t[..., None] == classes
    raise ValueError(
        f"labels must be one-hot with shape {tuple(logp.shape)} or integer with shape "
        f"{tuple(logp.shape[:-1])}, got shape {tuple(t.shape)}"
    )


def _nll_with_hits(xp: Any, logp: Array, t: Array, hits: Array | None) -> Array:
    """``_mean_nll`` once :func:`_label_hits` has checked ``t``; one reduction, no row sums."""
    if hits is None:
        total = xp.sum(xp.astype(t, logp.dtype, copy=False) * logp)
    else:
        total = xp.sum(xp.where(hits, logp, 0))
    return total * (-1.0 / logp.shape[0])  # one operation on the 0-d array, not two


def _require_integer_labels(xp: Any, t: Array) -> None:
    if not xp.isdtype(t.dtype, "integral"):
        raise TypeError(
            f"integer class labels must have an integer dtype (uint8, int32, int64...), "
            f"got {t.dtype}; pass one-hot labels with the predictions' shape instead"
        )
