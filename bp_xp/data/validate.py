"""Host-side checks of a dataset before training on it.

Array-API training code runs on many backends, some of which (GPU, JAX
tracing) make a NaN in the inputs or a label of 10 in a 10-class problem
surface as a silent wrong loss or a cryptic device error many steps later.
:func:`validate_dataset` checks a NumPy dataset once, on the host, before it
is moved to a device, and says exactly which row or value is wrong.  It only
reads its inputs.

The checks run on the values *as training will see them*: pass the network's
``dtype`` and the inputs are checked after the cast to it (``1e300`` is finite
in float64 but ``inf`` in float32).  Inputs far outside the range networks
expect (raw 0-255 pixels fed where 0-1 is meant) raise a
:class:`DataRangeWarning`, a documented :class:`UserWarning` subclass.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..backends import dtype_name
from ._errors import DataRangeWarning, DatasetError

__all__ = ["DEFAULT_MAX_ABS", "DataRangeWarning", "host_dtype", "validate_dataset"]

#: Default bound of :func:`validate_dataset`'s range warning: inputs with a
#: larger magnitude are "far outside" what a network expects (0..1 pixels,
#: standardised features); raw 0..255 pixels exceed it.
DEFAULT_MAX_ABS = 100.0

# Rows are cast and checked in blocks of about this many bytes, so a float64
# dataset checked for float32 never needs a second full-size copy.
_BLOCK_BYTES = 1 << 22
_MAX_LISTED = 10


def host_dtype(dtype: Any) -> np.dtype:
    """Return the NumPy dtype matching a dtype of any Array API backend.

    Accepts anything :func:`numpy.dtype` accepts (``np.float32``, ``float``,
    ``"float32"``, a JAX dtype) and backend dtype objects whose string form
    ends with the dtype's name (``torch.float32``, ``array_api_strict.float32``).

    Raises
    ------
    TypeError
        If the dtype cannot be interpreted.

    Examples
    --------
    >>> from bp_xp.data import host_dtype
    >>> host_dtype("float32")
    dtype('float32')
    """
    try:
        return np.dtype(dtype_name(dtype))
    except TypeError:
        raise TypeError(f"cannot interpret {dtype!r} as a dtype (e.g. float32)") from None


def _row_blocks(a: np.ndarray, itemsize: int):
    n = a.shape[0]
    row_bytes = max(1, (a.size // max(n, 1)) * itemsize)
    step = max(1, _BLOCK_BYTES // row_bytes)
    for start in range(0, n, step):
        yield start, a[start : start + step]


def _check_x(x: np.ndarray, dtype: np.dtype | None, max_abs: float | None) -> None:
    target = x.dtype if dtype is None else dtype
    cast = dtype is not None and dtype != x.dtype
    n_nan = n_inf = 0
    first_row = -1
    largest = 0.0
    for start, block in _row_blocks(x, target.itemsize):
        if cast:
            with np.errstate(over="ignore", invalid="ignore"):
                block = block.astype(target)  # a copy of one block: x is never written
        if block.size == 0:
            continue
        if target.kind in "fc":
            finite = np.isfinite(block)
            if not finite.all():
                nan = np.isnan(block)
                n_nan += int(nan.sum())
                n_inf += int((~finite).sum()) - int(nan.sum())
                if first_row < 0:
                    bad_rows = (~finite).reshape(block.shape[0], -1).any(axis=1)
                    first_row = start + int(np.flatnonzero(bad_rows)[0])
                continue
        if first_row < 0 and max_abs is not None:
            largest = max(largest, abs(float(block.max())), abs(float(block.min())))
    if first_row >= 0:
        after = ""
        if cast:
            after = (
                f" after conversion from {x.dtype} to {target} (the network's dtype; "
                f"values beyond +-{float(np.finfo(target).max):.3g} become inf)"
            )
        raise DatasetError(
            f"x: contains {n_nan} NaN and {n_inf} inf value(s){after}; first in row {first_row}"
        )
    if max_abs is not None and largest > max_abs:
        warnings.warn(
            f"x: values reach magnitude {largest:g}, far outside the range networks "
            f"expect (|x| <= {max_abs:g}); raw 0..255 pixels? Scale them to 0..1 "
            "(x / 255, or load with normalize=True). Pass max_abs=None to skip this check.",
            DataRangeWarning,
            stacklevel=3,
        )


def _check_labels(t: np.ndarray, num_classes: int) -> None:
    if t.dtype.kind not in "iu":
        if t.dtype.kind == "f" and np.isfinite(t).all() and (np.floor(t) == t).all():
            detail = "the values are whole numbers: convert with t.astype(np.int64)"
        elif t.dtype.kind == "f":
            bad = ~np.isfinite(t) | (np.floor(np.nan_to_num(t)) != t)
            i = int(np.flatnonzero(bad)[0])
            detail = f"t[{i}] = {t[i].item()!r} is not an integer"
        else:
            detail = "class labels must be integers"
        raise DatasetError(f"t: labels must have an integer dtype, got {t.dtype}; {detail}")
    if np.iinfo(t.dtype).max < num_classes - 1:
        raise DatasetError(
            f"t: labels of dtype {t.dtype} hold at most {np.iinfo(t.dtype).max} but "
            f"num_classes={num_classes} needs labels up to {num_classes - 1}; larger "
            "labels have wrapped around: build them with a wider dtype (e.g. int64)"
        )
    out = (t < 0) | (t >= num_classes)
    if out.any():
        where = np.flatnonzero(out)
        i = int(where[0])
        values = np.unique(t[where])
        listed = ", ".join(str(v) for v in values[:_MAX_LISTED].tolist())
        more = ", ..." if values.size > _MAX_LISTED else ""
        raise DatasetError(
            f"t: label {t[i].item()} at index {i} is out of range 0..{num_classes - 1} "
            f"(num_classes={num_classes}); {where.size} label(s) out of range in all, "
            f"values [{listed}{more}]"
        )


def _check_rows(t: np.ndarray, num_classes: int, dtype: np.dtype | None) -> None:
    if t.shape[1] != num_classes:
        raise DatasetError(
            f"t: one-hot targets must have {num_classes} columns (num_classes), "
            f"got shape {t.shape}"
        )
    if t.dtype.kind not in "biuf":
        raise DatasetError(f"t: expected a numeric dtype for one-hot targets, got {t.dtype}")
    if dtype is not None:  # one-hot rows are cast to the network's dtype too
        with np.errstate(over="ignore", invalid="ignore"):
            t = t.astype(dtype)
    tf = t.astype(np.float64, copy=False) if t.dtype.kind != "f" else t
    finite = np.isfinite(tf).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise DatasetError(f"t: one-hot row {row} contains NaN or inf")
    negative = (tf < 0).any(axis=1)
    if negative.any():
        row = int(np.flatnonzero(negative)[0])
        raise DatasetError(f"t: one-hot row {row} has negative entries: {t[row].tolist()}")
    sums = tf.sum(axis=1, dtype=np.float64)
    tol = 1e-3 if t.dtype.itemsize <= 2 and t.dtype.kind == "f" else 1e-5
    off = np.abs(sums - 1.0) > tol
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise DatasetError(
            f"t: one-hot row {row} sums to {float(sums[row]):g}, not 1 "
            f"({int(off.sum())} bad row(s) in all)"
        )


def validate_dataset(
    x: np.ndarray,
    t: np.ndarray,
    num_classes: int,
    *,
    dtype: Any = None,
    max_abs: float | None = DEFAULT_MAX_ABS,
) -> None:
    """Check inputs ``x`` and targets ``t`` of a classification dataset.

    Accepted targets are integer class labels of shape ``(N,)`` or one-hot
    (or other probability) rows of shape ``(N, num_classes)``.

    Parameters
    ----------
    x : numpy.ndarray
        Inputs, shape ``(N, ...)`` with at least 2 dimensions, real numeric
        dtype, all values finite (after the cast to ``dtype``).
    t : numpy.ndarray
        Targets: integer labels in ``[0, num_classes)``, or rows of finite,
        non-negative values that each sum to 1.
    num_classes : int
        Number of classes (at least 1).
    dtype : dtype, optional
        The dtype training casts ``x`` (and one-hot ``t``) to, e.g. the
        network's ``dtype`` on any backend (``torch.float32`` is understood,
        see :func:`host_dtype`).  The checks run on the cast values, block by
        block, so ``1e300`` in a float64 ``x`` is refused for float32.
    max_abs : float or None, optional
        Warn (:class:`DataRangeWarning`) when some ``|x|`` exceeds this
        (default :data:`DEFAULT_MAX_ABS` = 100, which raw 0..255 pixels do).
        ``None`` skips the range check.

    Raises
    ------
    DatasetError
        Describing the first problem found: wrong shape or dtype, ``N``
        mismatch between ``x`` and ``t``, NaN/inf in ``x``, label out of range
        (naming the first one, how many and which values) or not an integer,
        a label dtype too narrow for ``num_classes``, one-hot row not summing
        to one.  (A :class:`ValueError` subclass.)
    TypeError
        If ``num_classes`` is not an integer or ``dtype`` is not a dtype.

    Warns
    -----
    DataRangeWarning
        If ``x`` has values of magnitude above ``max_abs``.

    Notes
    -----
    Never modifies ``x`` or ``t``; extra memory is one block of rows (a few
    MiB) besides boolean masks of ``t``.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.data import validate_dataset
    >>> validate_dataset(np.zeros((2, 4), np.float32), np.array([0, 2]), 3)
    >>> validate_dataset(np.zeros((2, 4)), np.array([0, 3]), 3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    bp_xp.data.DatasetError: t: label 3 at index 1 is out of range 0..2 (num_classes=3); ...
    >>> x = np.full((2, 4), 1e300)  # finite in float64, inf in float32
    >>> validate_dataset(x, np.array([0, 1]), 3, dtype="float32")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    bp_xp.data.DatasetError: x: contains 0 NaN and 8 inf value(s) after conversion from ...
    """
    if isinstance(num_classes, (bool, np.bool_)) or not isinstance(
        num_classes, (int, np.integer)
    ):
        raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
    num_classes = int(num_classes)
    if num_classes < 1:
        raise DatasetError(f"num_classes must be at least 1, got {num_classes}")
    target = None if dtype is None else host_dtype(dtype)

    x = np.asarray(x)
    t = np.asarray(t)

    if x.ndim < 2:
        raise DatasetError(
            f"x: expected shape (N, features...) with at least 2 dimensions, got shape {x.shape}"
        )
    if x.dtype.kind not in "biuf":
        raise DatasetError(f"x: expected a real numeric dtype, got {x.dtype}")
    n = x.shape[0]
    if n == 0:
        raise DatasetError(f"x: the dataset is empty (shape {x.shape})")
    _check_x(x, target, max_abs)

    if t.ndim not in (1, 2):
        raise DatasetError(
            f"t: expected labels of shape (N,) or one-hot rows of shape (N, {num_classes}), "
            f"got shape {t.shape}"
        )
    if t.shape[0] != n:
        raise DatasetError(f"x has {n} samples but t has {t.shape[0]}: N must match")
    if t.ndim == 1:
        _check_labels(t, num_classes)
    else:
        _check_rows(t, num_classes, target)
