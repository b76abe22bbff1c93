"""The MNIST handwritten-digit dataset, as the book's ``load_mnist`` returns it.

"Deep Learning from Scratch" loads MNIST with
``(x_train, t_train), (x_test, t_test) = load_mnist(normalize, flatten,
one_hot_label)``.  This module keeps that call and its return values, and
adds what the book's helper leaves out:

* the four standard ``*-idx?-ubyte.gz`` files are downloaded with urllib into
  a per-user cache (``data_dir``, else ``$BP_XP_DATA_DIR``, else
  ``$XDG_CACHE_HOME/bp_xp``, else ``~/.cache/bp_xp``; files go to the
  ``mnist`` sub-directory), trying several public mirrors;
* every file, downloaded or already cached, is checked against the SHA-256 of
  the official file, and downloads are atomic (temp file + :func:`os.replace`);
* the IDX content is validated field by field (:mod:`bp_xp.data._idx`);
* without network, errors say what was tried and how to get the data in
  place by hand, or point to the offline subset
  (:func:`bp_xp.data.load_mnist_5k`).

Everything here runs on the host with NumPy; move the arrays to a device with
your array namespace afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Union

import numpy as np

from ._download import data_root, download_file, verify_file
from ._errors import DatasetError
from ._idx import read_idx

__all__ = [
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "MNIST_SHA256",
    "MNIST_SIZES",
    "load_mnist",
    "mnist_dir",
    "one_hot",
]

PathLike = Union[str, "os.PathLike[str]"]
Split = tuple[np.ndarray, np.ndarray]

#: Role -> standard file name, as published with the dataset.
MNIST_FILES: dict[str, str] = {
    "train_img": "train-images-idx3-ubyte.gz",
    "train_label": "train-labels-idx1-ubyte.gz",
    "test_img": "t10k-images-idx3-ubyte.gz",
    "test_label": "t10k-labels-idx1-ubyte.gz",
}

#: Public mirrors holding the four files under their standard names, tried in
#: order.  The original site (last) often refuses automated downloads.
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: SHA-256 of the official gzip files.  Tests may monkeypatch this dict or
#: pass ``checksums=`` to :func:`load_mnist`.
MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

#: Sizes in bytes of the official gzip files: a download of a file whose
#: checksum is the official one stops as soon as a mirror sends more.
MNIST_SIZES: dict[str, int] = {
    "train-images-idx3-ubyte.gz": 9_912_422,
    "train-labels-idx1-ubyte.gz": 28_881,
    "t10k-images-idx3-ubyte.gz": 1_648_877,
    "t10k-labels-idx1-ubyte.gz": 4_542,
}

_NUM_CLASSES = 10
_SIDE = 28
#: Most images a split may hold (the official counts): a header declaring
#: more is refused before anything is allocated.
_MAX_N = {"train": 60_000, "test": 10_000}


def mnist_dir(data_dir: PathLike | None = None) -> Path:
    """Return the directory holding the MNIST files: ``data_root(data_dir) / "mnist"``.

    Examples
    --------
    >>> from bp_xp.data import mnist_dir
    >>> mnist_dir("/tmp/d").as_posix()
    '/tmp/d/mnist'
    """
    return data_root(data_dir) / "mnist"


def one_hot(labels: np.ndarray, num_classes: int = _NUM_CLASSES) -> np.ndarray:
    """Return float32 one-hot rows for integer class labels.

    Every label is checked first: a label outside ``[0, num_classes)`` would
    otherwise wrap around (``-1`` silently becoming the last class) or fail
    deep inside NumPy, and a fractional label (``1.7``) would be truncated.

    Parameters
    ----------
    labels : array_like
        1-D integer labels in ``[0, num_classes)``.  Floating-point arrays are
        refused even when they hold whole numbers: convert them explicitly.
    num_classes : int, optional
        Number of columns (at least 1).

    Returns
    -------
    numpy.ndarray
        ``(len(labels), num_classes)`` float32 array.

    Raises
    ------
    DatasetError
        For labels that are not 1-D, not integers, or out of range; the
        message names the first offending value and the valid range.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.data import one_hot
    >>> one_hot(np.array([2, 0], dtype=np.uint8), 3)
    array([[0., 0., 1.],
           [1., 0., 0.]], dtype=float32)
    >>> one_hot(np.array([2, -1]), 3)
    Traceback (most recent call last):
    ...
    bp_xp.data.DatasetError: one_hot: label -1 at index 1 is out of range 0..2 (num_classes=3)
    """
    if isinstance(num_classes, (bool, np.bool_)) or not isinstance(num_classes, (int, np.integer)):
        raise DatasetError(f"one_hot: num_classes must be an int, got {num_classes!r}")
    if num_classes < 1:
        raise DatasetError(f"one_hot: num_classes must be at least 1, got {num_classes}")
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DatasetError(f"one_hot: labels must be 1-D of shape (N,), got shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        if labels.dtype.kind == "f" and labels.size:
            frac = ~np.isfinite(labels) | (labels != np.trunc(np.nan_to_num(labels)))
            if frac.any():
                i = int(np.flatnonzero(frac)[0])
                raise DatasetError(
                    f"one_hot: label {labels[i].item()!r} at index {i} is not an integer; "
                    f"labels must be integers in 0..{num_classes - 1}"
                )
        raise DatasetError(
            f"one_hot: labels must have an integer dtype, got {labels.dtype} "
            "(convert whole-number labels with labels.astype(np.int64))"
        )
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(
            f"one_hot: label {labels[i].item()} at index {i} is out of range "
            f"0..{num_classes - 1} (num_classes={num_classes})"
        )
    out = np.zeros((labels.shape[0], num_classes), dtype=np.float32)
    out[np.arange(labels.shape[0]), labels.astype(np.intp)] = 1.0
    return out


def _manual_hint(directory: Path) -> str:
    names = ", ".join(MNIST_FILES.values())
    return (
        f"To use MNIST without network, download {names} on a machine that is "
        f"online and copy them into {directory} (or into <dir>/mnist and pass "
        "data_dir=<dir>, or set BP_XP_DATA_DIR=<dir>); or use the offline subset "
        "that ships with bp_xp: bp_xp.data.load_dataset('mnist-5k')."
    )


def _ensure_file(
    directory: Path,
    filename: str,
    *,
    download: bool,
    mirrors: Sequence[str],
    checksums: Mapping[str, str],
    timeout: float,
) -> Path:
    """Return the path of a verified copy of ``filename`` in ``directory``."""
    if filename not in checksums:
        raise DatasetError(f"no SHA-256 checksum known for {filename}")
    path = directory / filename
    if path.exists():
        verify_file(path, checksums[filename], what="cached MNIST file")
        return path
    if not download:
        raise DatasetError(
            f"MNIST file {path} is missing and download=False. " + _manual_hint(directory)
        )
    official = checksums[filename].lower() == MNIST_SHA256.get(filename, "").lower()
    return download_file(
        filename,
        directory,
        mirrors,
        checksums[filename],
        timeout=timeout,
        manual_hint=_manual_hint(directory),
        size=MNIST_SIZES.get(filename) if official else None,
    )


def _load_split(img_path: Path, label_path: Path, max_n: int) -> Split:
    # The known shapes are checked on the header, before anything is allocated.
    images = read_idx(
        img_path, dtype=np.uint8, shape=(None, _SIDE, _SIDE), max_items=max_n * _SIDE**2
    )
    labels = read_idx(label_path, dtype=np.uint8, shape=(None,), max_items=max_n)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (_SIDE, _SIDE):
        raise DatasetError(
            f"{img_path}: expected uint8 images of shape (N, {_SIDE}, {_SIDE}), "
            f"got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetError(
            f"{label_path}: expected a 1-D uint8 label array, got {labels.dtype} {labels.shape}"
        )
    if labels.shape[0] != images.shape[0]:
        raise DatasetError(
            f"{img_path} has {images.shape[0]} images but {label_path} has "
            f"{labels.shape[0]} labels"
        )
    if labels.size and int(labels.max()) >= _NUM_CLASSES:
        raise DatasetError(
            f"{label_path}: label {int(labels.max())} out of range 0..{_NUM_CLASSES - 1}"
        )
    return images, labels


def format_arrays(
    images: np.ndarray, labels: np.ndarray, normalize: bool, flatten: bool, one_hot_label: bool
) -> Split:
    """Apply the book's three flags to uint8 ``(N, 28, 28)`` images and labels."""
    n = images.shape[0]
    x = images.reshape(n, _SIDE * _SIDE) if flatten else images.reshape(n, 1, _SIDE, _SIDE)
    if normalize:
        x = x.astype(np.float32)
        x /= np.float32(255.0)
    else:
        x = np.array(x, dtype=np.uint8, copy=True)
    t = one_hot(labels, _NUM_CLASSES) if one_hot_label else np.array(labels, dtype=np.uint8)
    return x, t


def load_mnist(
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    *,
    data_dir: PathLike | None = None,
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    checksums: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[Split, Split]:
    """Load the full MNIST dataset (60,000 train / 10,000 test images).

    Missing files are downloaded into ``mnist_dir(data_dir)`` from the first
    mirror that serves a copy with the right SHA-256; files already there are
    verified too, so a corrupt cache is reported, never silently used.

    Parameters
    ----------
    normalize : bool, optional
        If True, images are float32 in ``[0, 1]``; else uint8 in ``0..255``.
    flatten : bool, optional
        If True, images are ``(N, 784)``; else ``(N, 1, 28, 28)``.
    one_hot_label : bool, optional
        If True, labels are float32 ``(N, 10)`` one-hot rows; else uint8 ``(N,)``.
    data_dir : str or os.PathLike, optional
        Cache root; the files live in ``<data_dir>/mnist``.  Default: see
        :func:`bp_xp.data.data_root`.
    download : bool, optional
        If False, never touch the network: missing files raise
        :class:`DatasetError`.
    mirrors : sequence of str, optional
        Base URLs to try instead of :data:`MNIST_MIRRORS`.
    checksums : mapping of str to str, optional
        File name -> SHA-256 to use instead of :data:`MNIST_SHA256`.
    timeout : float, optional
        Socket timeout in seconds for each download attempt.

    Returns
    -------
    (x_train, t_train), (x_test, t_test) : tuple of tuples of numpy.ndarray
        New arrays, safe to modify.

    Raises
    ------
    DatasetError
        Missing file with ``download=False``, malformed file, label/image
        count mismatch.
    ChecksumError
        A cached or downloaded file has the wrong SHA-256 (a
        :class:`DatasetError`).
    DownloadError
        No mirror delivered a file, e.g. the machine is offline (a
        :class:`DatasetError`); the message lists the URLs tried.

    Examples
    --------
    >>> from bp_xp.data import load_mnist
    >>> (x_train, t_train), (x_test, t_test) = load_mnist(
    ...     normalize=True, flatten=False)  # doctest: +SKIP
    >>> x_train.shape, x_train.dtype, t_train[:3]  # doctest: +SKIP
    ((60000, 1, 28, 28), dtype('float32'), array([5, 0, 4], dtype=uint8))
    """
    directory = mnist_dir(data_dir)
    mirrors = MNIST_MIRRORS if mirrors is None else tuple(mirrors)
    checksums = MNIST_SHA256 if checksums is None else checksums
    paths = {
        role: _ensure_file(
            directory,
            name,
            download=download,
            mirrors=mirrors,
            checksums=checksums,
            timeout=timeout,
        )
        for role, name in MNIST_FILES.items()
    }
    train = _load_split(paths["train_img"], paths["train_label"], _MAX_N["train"])
    test = _load_split(paths["test_img"], paths["test_label"], _MAX_N["test"])
    return (
        format_arrays(*train, normalize, flatten, one_hot_label),
        format_arrays(*test, normalize, flatten, one_hot_label),
    )
