"""Datasets for bp_xp: MNIST loading, an offline subset, and input checks.

All code here is host-only NumPy: it produces NumPy arrays that the training
code moves to its array namespace/device afterwards.

* :func:`load_dataset` -- by name; ``"mnist-5k"`` (default, offline, shipped
  with bp_xp) or ``"mnist"``.
* :func:`load_mnist` -- full MNIST with the book's
  ``load_mnist(normalize, flatten, one_hot_label)`` API, downloaded into a
  per-user cache with SHA-256 verification and atomic writes.
* :func:`load_mnist_5k` -- the offline 5,000-digit subset, stratified split.
* :func:`validate_dataset` -- one-time host-side sanity checks (after the
  cast to the network's dtype); :class:`DataRangeWarning` for inputs far
  outside the expected range.
* :func:`read_idx` / :func:`parse_idx` / :func:`write_idx` -- IDX format.
* :class:`DatasetError` (a :class:`ValueError`) and its subclasses
  :class:`ChecksumError` and :class:`DownloadError`.

Examples
--------
>>> from bp_xp.data import load_dataset, validate_dataset
>>> (x, t), (xt, tt) = load_dataset("mnist-5k")  # doctest: +SKIP
>>> validate_dataset(x, t, num_classes=10)  # doctest: +SKIP
"""

from __future__ import annotations

from ._download import (
    DATA_DIR_ENV,
    DOWNLOAD_MAX_BYTES,
    data_root,
    download_file,
    sha256_file,
    verify_file,
)
from ._errors import ChecksumError, DataRangeWarning, DatasetError, DownloadError
from ._idx import IDX_DTYPES, IDX_MAX_NDIM, parse_idx, read_idx, write_idx
from .datasets import DATASETS, load_dataset
from .mnist import (
    MNIST_FILES,
    MNIST_MIRRORS,
    MNIST_SHA256,
    MNIST_SIZES,
    load_mnist,
    mnist_dir,
    one_hot,
)
from .mnist5k import MNIST5K_SEED, MNIST5K_TEST_FRACTION, load_mnist_5k, mnist_5k_path
from .validate import DEFAULT_MAX_ABS, host_dtype, validate_dataset

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "DEFAULT_MAX_ABS",
    "DOWNLOAD_MAX_BYTES",
    "IDX_DTYPES",
    "IDX_MAX_NDIM",
    "MNIST5K_SEED",
    "MNIST5K_TEST_FRACTION",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "MNIST_SHA256",
    "MNIST_SIZES",
    "ChecksumError",
    "DataRangeWarning",
    "DatasetError",
    "DownloadError",
    "data_root",
    "download_file",
    "host_dtype",
    "load_dataset",
    "load_mnist",
    "load_mnist_5k",
    "mnist_5k_path",
    "mnist_dir",
    "one_hot",
    "parse_idx",
    "read_idx",
    "sha256_file",
    "validate_dataset",
    "verify_file",
    "write_idx",
]
