"""Which arrays bp_xp may write in place, and how: the book's semantics where they hold.

The book updates and perturbs parameters in place (``params[key] -= lr * grad``,
``x[idx] = tmp + h``), and its networks rely on that: a layer and the ``params`` dict hold
the same array. bp_xp's own code never writes into a caller's array, except in the two
places where the book's code needs it to (``Optimizer.update`` on a plain dict and
``numerical_gradient``), and only on arrays whose backend says they can take it
(:attr:`bp_xp.backends.BackendSpec.writes_in_place`).
"""

from __future__ import annotations

from typing import Any

from .backends import spec_of

__all__ = ["copy_into", "mutable"]


def mutable(array: Any) -> bool:
    """Whether ``array`` can be written in place, as the book writes its parameters.

    Writeable NumPy arrays, torch tensors that do not require grad and are not inference
    tensors, and CuPy arrays. JAX and Dask arrays, array-api-strict arrays (the standard
    leaves mutation optional), read-only NumPy arrays and Python numbers are not.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros(2)
    >>> mutable(a), mutable(1.0)
    (True, False)
    >>> a.flags.writeable = False
    >>> mutable(a)
    False
    """
    spec = spec_of(array)
    return spec is not None and spec.writes_in_place is not None and spec.writes_in_place(array)


def copy_into(target: Any, value: Any) -> None:
    """Write ``value`` (same backend, device, shape and dtype) into ``target``."""
    target[...] = value
