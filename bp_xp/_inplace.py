"""Which arrays bp_xp may write in place, and how: the book's semantics where they hold.

The book updates and perturbs parameters in place (``params[key] -= lr * grad``,
``x[idx] = tmp + h``), and its networks rely on that: a layer and the ``params`` dict hold
the same array. bp_xp's own code never writes into a caller's array, except in the two
places where the book's code needs it to (``Optimizer.update`` on a plain dict and
``numerical_gradient``), and only on arrays that can take it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["copy_into", "mutable"]


def mutable(array: Any) -> bool:
    """Whether ``array`` can be written in place, as the book writes its parameters.

    Writeable NumPy arrays, torch tensors that do not require grad (autograd forbids
    writing into those) and are not inference tensors, and CuPy arrays. JAX and Dask
    arrays, array-api-strict arrays (the standard leaves mutation optional) and read-only
    NumPy arrays are not.

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
    module = type(array).__module__
    if module == "numpy":
        flags = getattr(array, "flags", None)
        return bool(flags is not None and flags.writeable)
    if module.startswith("torch"):
        return not array.requires_grad and not array.is_inference()
    return module.startswith("cupy")


def copy_into(target: Any, value: Any) -> None:
    """Write ``value`` (same backend, device, shape and dtype) into ``target``."""
    if type(target).__module__.startswith("torch"):
        target.copy_(value)
    else:
        target[...] = value
