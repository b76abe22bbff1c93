"""Host-side checks of a dataset before training on it.

Array-API training code runs on many backends, some of which (GPU, JAX
tracing) make a NaN in the inputs or a label of 10 in a 10-class problem
surface as a silent wrong loss or a cryptic device error many steps later.
:func:`validate_dataset` checks a NumPy dataset once, on the host, before it
is moved to a device, and says exactly which row or value is wrong.  It only
reads its inputs.
"""

from __future__ import annotations

import numpy as np

from ._errors import DatasetError

__all__ = ["validate_dataset"]


def validate_dataset(x: np.ndarray, t: np.ndarray, num_classes: int) -> None:
    """Check inputs ``x`` and targets ``t`` of a classification dataset.

    Accepted targets are integer class labels of shape ``(N,)`` or one-hot
    (or other probability) rows of shape ``(N, num_classes)``.

    Parameters
    ----------
    x : numpy.ndarray
        Inputs, shape ``(N, ...)`` with at least 2 dimensions, real numeric
        dtype, all values finite.
    t : numpy.ndarray
        Targets: integer labels in ``[0, num_classes)``, or rows of finite,
        non-negative values that each sum to 1.
    num_classes : int
        Number of classes (at least 1).

    Raises
    ------
    DatasetError
        Describing the first problem found: wrong shape or dtype, ``N``
        mismatch between ``x`` and ``t``, NaN/inf in ``x``, label out of range
        or not an integer, one-hot row not summing to one.  (A
        :class:`ValueError` subclass.)
    TypeError
        If ``num_classes`` is not an integer.

    Notes
    -----
    Never modifies ``x`` or ``t``.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.data import validate_dataset
    >>> validate_dataset(np.zeros((2, 4), np.float32), np.array([0, 2]), 3)
    >>> validate_dataset(np.zeros((2, 4)), np.array([0, 3]), 3)
    Traceback (most recent call last):
    ...
    bp_xp.data.DatasetError: t: label 3 at index 1 is out of range 0..2 (num_classes=3)
    """
    if isinstance(num_classes, (bool, np.bool_)) or not isinstance(
        num_classes, (int, np.integer)
    ):
        raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
    num_classes = int(num_classes)
    if num_classes < 1:
        raise DatasetError(f"num_classes must be at least 1, got {num_classes}")

    x = np.asarray(x)
    t = np.asarray(t)

    # --- x -----------------------------------------------------------------
    if x.ndim < 2:
        raise DatasetError(
            f"x: expected shape (N, features...) with at least 2 dimensions, got shape {x.shape}"
        )
    if x.dtype.kind not in "biuf":
        raise DatasetError(f"x: expected a real numeric dtype, got {x.dtype}")
    n = x.shape[0]
    if n == 0:
        raise DatasetError(f"x: the dataset is empty (shape {x.shape})")
    if x.dtype.kind == "f":
        finite = np.isfinite(x)
        if not finite.all():
            bad = ~finite
            n_nan = int(np.isnan(x).sum())
            n_inf = int(bad.sum()) - n_nan
            row = int(np.flatnonzero(bad.reshape(n, -1).any(axis=1))[0])
            raise DatasetError(
                f"x: contains {n_nan} NaN and {n_inf} inf value(s); first in row {row}"
            )

    # --- t -----------------------------------------------------------------
    if t.ndim not in (1, 2):
        raise DatasetError(
            f"t: expected labels of shape (N,) or one-hot rows of shape (N, {num_classes}), "
            f"got shape {t.shape}"
        )
    if t.shape[0] != n:
        raise DatasetError(f"x has {n} samples but t has {t.shape[0]}: N must match")

    if t.ndim == 1:
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
        out = (t < 0) | (t >= num_classes)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise DatasetError(
                f"t: label {t[i]} at index {i} is out of range 0..{num_classes - 1} "
                f"(num_classes={num_classes})"
            )
        return

    # one-hot / probability rows
    if t.shape[1] != num_classes:
        raise DatasetError(
            f"t: one-hot targets must have {num_classes} columns (num_classes), "
            f"got shape {t.shape}"
        )
    if t.dtype.kind not in "biuf":
        raise DatasetError(f"t: expected a numeric dtype for one-hot targets, got {t.dtype}")
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
