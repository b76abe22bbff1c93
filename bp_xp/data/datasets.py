"""Load a dataset by name: one entry point for examples, CLIs and tests.

``load_dataset("mnist-5k")`` (the default) needs no network and is what
examples and CI use; ``load_dataset("mnist")`` is the full dataset, downloaded
and cached on first use.  Both return the book's
``(x_train, t_train), (x_test, t_test)`` tuple.
"""

from __future__ import annotations

import os
import sys
from typing import Union

import numpy as np

from ._errors import DatasetError
from .mnist import load_mnist
from .mnist5k import load_mnist_5k

__all__ = ["DATASETS", "load_dataset"]

PathLike = Union[str, "os.PathLike[str]"]

#: Names accepted by :func:`load_dataset`; the first is the default.
DATASETS: tuple[str, ...] = ("mnist-5k", "mnist")


def _announce(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_dataset(
    name: str = "mnist-5k",
    *,
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    data_dir: PathLike | None = None,
    download: bool = True,
    announce: bool = True,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load a dataset by name.

    Parameters
    ----------
    name : {"mnist-5k", "mnist"}, optional
        ``"mnist-5k"``: the offline 5,000-digit subset shipped with bp_xp
        (4,000 train / 1,000 test; see :func:`bp_xp.data.load_mnist_5k` and
        its warning: never use it to test a model trained on full MNIST).
        ``"mnist"``: full MNIST, see :func:`bp_xp.data.load_mnist`.
    normalize, flatten, one_hot_label : bool, optional
        As in :func:`bp_xp.data.load_mnist`.
    data_dir : str or os.PathLike, optional
        Cache root for downloaded datasets (ignored by ``"mnist-5k"``).
    download : bool, optional
        Allow downloading (ignored by ``"mnist-5k"``).
    announce : bool, optional
        Print one line to stderr saying which data is used and its size.

    Returns
    -------
    (x_train, t_train), (x_test, t_test) : tuple of tuples of numpy.ndarray

    Raises
    ------
    DatasetError
        Unknown name (the message lists :data:`DATASETS`), or any loading
        problem of the chosen dataset.

    Examples
    --------
    >>> from bp_xp.data import load_dataset
    >>> (x, t), (xt, tt) = load_dataset("mnist-5k", announce=False)
    >>> len(x), len(xt)
    (4000, 1000)
    """
    key = name.strip().lower() if isinstance(name, str) else name
    if key == "mnist-5k":
        train, test = load_mnist_5k(normalize, flatten, one_hot_label)
        if announce:
            _announce(
                "bp_xp: using the offline MNIST 5k subset shipped with bp_xp "
                f"({len(train[0])} train / {len(test[0])} test)"
            )
        return train, test
    if key == "mnist":
        train, test = load_mnist(
            normalize, flatten, one_hot_label, data_dir=data_dir, download=download
        )
        if announce:
            _announce(f"bp_xp: using MNIST ({len(train[0])} train / {len(test[0])} test)")
        return train, test
    raise DatasetError(
        f"unknown dataset {name!r}; known datasets: " + ", ".join(repr(d) for d in DATASETS)
    )
