"""The functions under the layers: activations, softmax and the cross-entropy loss.

Every function takes its namespace from its inputs, names the dtype and device of any
array it creates, and is numerically stable: no overflow (and no overflow warning) for
inputs up to about 1e4 in magnitude in float32 or float64, and no ``+ 1e-7`` fudge in
the logarithm. Nothing here reads values back to the host, so the functions are safe
inside a training step on a GPU or on lazy (Dask) arrays.

Labels
------
The losses take ``t`` as integer class labels (one dimension less than the scores, any
integer dtype) or as target rows of the scores' shape (one-hot or any soft targets).
The rules, the same on every backend:

* An integer label outside ``[0, C)`` for ``C`` classes (``10`` of 10, ``-1``, ``255``)
  makes its row's loss NaN, so the mean loss is NaN, and :class:`SoftmaxWithLoss` gives
  that row a NaN gradient: a bad label is never silently dropped, and no value is read
  back to find it. Turn on :func:`bp_xp.debug.checking` to get a
  :class:`bp_xp.LabelError` naming the label instead; the Trainer's data check refuses
  such datasets before training.
* A label dtype that cannot hold ``C - 1`` (uint8 labels for 300 classes) is refused
  with a ``TypeError`` (a dtype check: nothing is read).
* Target rows need not sum to 1: the loss is ``-sum(t * log softmax(x)) / N`` and the
  gradient is exactly its derivative, ``(softmax(x) * sum(t, axis=-1) - t) / N``, which
  is the book's ``(y - t) / N`` when rows sum to 1.
* An empty batch is a ``ValueError`` (the mean over 0 samples is undefined).
"""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import device as _device

from ._checks import require_array
from ._im2col import col2im, conv_output_size, im2col
from .backends import DTypeError, dtype_name, namespace_of, zero_where
from .backends import fast_kernel as _fast_kernel
from .backends import softmax_cross_entropy_labels as _fused_loss_kernel
from .debug import check_labels

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
    """Rectified linear unit ``max(x, 0)``, in ``x``'s dtype; NaN stays NaN.

    The same computation as :class:`bp_xp.layers.Relu` (zero where ``x <= 0``), so the
    function and the layer agree everywhere, NaN included.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.functions import relu
    >>> relu(np.array([-1.0, 2.0, np.nan]))
    array([ 0.,  2., nan])
    """
    xp = namespace_of(x)
    return zero_where(x <= 0, x, xp)


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
    host, when the dataset is loaded (:func:`bp_xp.data.one_hot` does), or turn on
    :func:`bp_xp.debug.checking`, which raises :class:`bp_xp.LabelError` here. A label
    dtype that cannot hold ``num_classes - 1`` is refused.

    (``array_api_extra.one_hot`` was measured as a replacement and not taken: its result
    for labels out of range is undefined (torch raises ``IndexError``), and for the
    boolean rows the loss uses it was slower at a training batch of 100: 8.0 vs 5.2 us
    on NumPy, 19.6 vs 7.8 us on torch CPU.)

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
    _require_integer_labels(xp, t, num_classes)
    check_labels(t, num_classes, "one_hot")
    classes = xp.arange(num_classes, dtype=t.dtype, device=_device(t))
    hits = xp.expand_dims(t, axis=-1) == classes
    if dtype is None:
        dtype = xp.asarray(0.0, device=_device(t)).dtype
    return xp.astype(hits, dtype)


def softmax_cross_entropy(x: Array, t: Array) -> Array:
    """Mean cross-entropy of ``softmax(x)`` against labels ``t``, from logits ``x``.

    Computed with :func:`log_softmax`, so logits of +-1e4 give a finite loss. ``t`` is
    either one-hot (or any target rows), with ``x``'s shape, or integer class labels
    with one dimension less; an integer label out of range makes the loss NaN (see
    "Labels" in :mod:`bp_xp.functions`). Returns a 0-d array on ``x``'s device.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.functions import softmax_cross_entropy
    >>> float(softmax_cross_entropy(np.array([[0.0, 0.0]]), np.array([1])))  # log 2
    0.6931471805599453
    """
    require_array(t, "softmax_cross_entropy", "t", LABELS_EXPECTED)
    xp = namespace_of(x, t, names=("x", "t"))
    return _mean_nll(xp, log_softmax(x), t, "softmax_cross_entropy")


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
    require_array(t, "cross_entropy_error", "t", LABELS_EXPECTED)
    xp = namespace_of(y, t, names=("y", "t"))
    if y.ndim == 1:
        y = xp.reshape(y, (1, y.shape[0]))
        t = xp.reshape(t, (1, -1) if t.ndim == 1 else (1,))
    tiny = xp.finfo(y.dtype).smallest_normal
    return _mean_nll(xp, xp.log(xp.clip(y, tiny, None)), t, "cross_entropy_error")


#: What the losses' ``t`` must be, for the ``TypeError`` of a Python number or a list.
LABELS_EXPECTED = "an array of integer labels (N,) or target rows (N, C) on the scores' backend"


def _mean_nll(xp: Any, logp: Array, t: Array, where: str) -> Array:
    """Mean over the batch of ``-sum(t * logp)``, for target rows or integer ``t``."""
    hits, nan_rows = label_hits(xp, logp, t, where)
    return nll_with_hits(xp, logp, t, hits, nan_rows)


def label_hits(xp: Any, logp: Array, t: Array,
               where: str) -> tuple[Array | None, Array | None]:
    """Validate labels ``t`` against ``logp``; for integer labels, their boolean one-hot
    ``hits`` and ``nan_rows``, of shape ``t.shape + (1,)`` in ``logp``'s dtype: 0 for a
    label in range, NaN for one out of range (``None`` when the dtype cannot hold one).

    Returns ``(None, None)`` for target rows, which need no conversion. Only shapes and
    dtypes are checked (no value is read back) unless debug checks are on.
    """
    if logp.ndim == 0 or logp.shape[0] == 0:
        raise ValueError(f"{where}: the scores have shape {tuple(logp.shape)}; the mean loss of "
                         "an empty batch is undefined (pass at least one sample)")
    if t.ndim == logp.ndim:
        if t.shape != logp.shape:
            raise ValueError(
                f"{where}: one-hot labels must have the predictions' shape {tuple(logp.shape)}, "
                f"got {tuple(t.shape)}"
            )
        return None, None
    if t.ndim == logp.ndim - 1:
        if t.shape != logp.shape[:-1]:
            raise ValueError(
                f"{where}: integer labels must have shape {tuple(logp.shape[:-1])} for "
                f"predictions of shape {tuple(logp.shape)}, got {tuple(t.shape)}"
            )
        num_classes = logp.shape[-1]
        info = _require_integer_labels(xp, t, num_classes)
        check_labels(t, num_classes, where)
        classes = xp.arange(num_classes, dtype=t.dtype, device=_device(t))
        hits = t[..., None] == classes
        bad = t >= num_classes if num_classes <= info.max else None
        if info.min < 0:
            bad = t < 0 if bad is None else bad | (t < 0)
        if bad is None:  # e.g. uint8 labels and 256 classes: every value is a class
            return hits, None
        column = bad[..., None]
        return hits, xp.where(column, math.nan, xp.astype(column, logp.dtype))
    raise ValueError(
        f"{where}: labels must be one-hot with shape {tuple(logp.shape)} or integer with shape "
        f"{tuple(logp.shape[:-1])}, got shape {tuple(t.shape)}"
    )


def nll_with_hits(xp: Any, logp: Array, t: Array, hits: Array | None,
                   nan_rows: Array | None) -> Array:
    """``_mean_nll`` once :func:`label_hits` has checked ``t``; one reduction, no row sums.

    A row with a label out of range contributes NaN (``nan_rows``) instead of nothing.
    """
    if hits is None:
        total = xp.sum(xp.astype(t, logp.dtype, copy=False) * logp)
    else:
        total = xp.sum(xp.where(hits, logp, 0 if nan_rows is None else nan_rows))
    return total * (-1.0 / logp.shape[0])  # one operation on the 0-d array, not two


#: ``(namespace, label dtype, num_classes) -> iinfo``: labels that passed once pass again
#: without the two namespace calls (about 2 us of every step on NumPy).
_CHECKED_LABELS: dict[tuple[Any, Any, int], Any] = {}


def _require_integer_labels(xp: Any, t: Array, num_classes: int) -> Any:
    """Refuse non-integer labels and integer dtypes too narrow for ``num_classes``;
    return ``xp.iinfo(t.dtype)``."""
    try:
        return _CHECKED_LABELS[(xp, t.dtype, num_classes)]
    except (KeyError, TypeError):  # not seen yet, or a dtype that cannot be a dict key
        pass
    info = _checked_label_info(xp, t, num_classes)
    try:
        _CHECKED_LABELS[(xp, t.dtype, num_classes)] = info
    except TypeError:
        pass
    return info


def _checked_label_info(xp: Any, t: Array, num_classes: int) -> Any:
    if not xp.isdtype(t.dtype, "integral"):
        raise TypeError(
            f"integer class labels must have an integer dtype (uint8, int32, int64...), "
            f"got {t.dtype}; pass one-hot labels with the predictions' shape instead"
        )
    info = xp.iinfo(t.dtype)
    if num_classes - 1 > info.max:
        raise DTypeError(
            f"integer labels of dtype {dtype_name(t.dtype)} hold at most {info.max}, too few "
            f"for {num_classes} classes (labels 0..{num_classes - 1} would wrap around); "
            "cast the labels to int32 or int64"
        )
    return info


# --------------------------------------------------------------------------------------
# The fused loss kernel (issue 22): one backend call where the backend has one
# --------------------------------------------------------------------------------------


def fused_softmax_loss(x: Array, t: Array, where: str) -> Any:
    """``(loss, y, backward)`` by the backend's fused kernel for integer labels, or ``None``.

    Called first, before any check: ``None`` for anything but logits ``(N, C)`` and labels
    ``(N,)`` of one backend with a kernel (Python data, target rows, an empty batch, mixed
    backends or devices...), which sends the caller down the portable path and its errors.
    The labels' dtype and the debug checks are applied here exactly as :func:`_label_hits`
    applies them, so the kernel only computes. ``backward(scale)`` gives
    ``(y - onehot(t)) * scale`` with NaN rows for labels out of range.
    """
    if type(t) is not type(x) or _fast_kernel("softmax_cross_entropy_labels", x) is None:
        return None
    if x.ndim != 2 or t.ndim != 1 or x.shape[0] == 0 or t.shape[0] != x.shape[0]:
        return None
    num_classes = x.shape[1]
    _require_integer_labels(namespace_of(x, t, names=("x", "t")), t, num_classes)
    check_labels(t, num_classes, where)
    return _fused_loss_kernel(x, t)
