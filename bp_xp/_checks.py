"""Argument checks shared across bp_xp: one wording for "this array must be like that one".

``Params.__setitem__`` (a user replacing a parameter) and ``Optimizer.update`` (a
gradient or state array against its parameter) ask the same question: is ``value`` an
array of the reference's backend, device, shape and dtype? They used to answer it with
two copies of the same code; :func:`check_like` is the one answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np  # host-side only: NumPy integers are integers too

from .backends import BackendMismatchError, dtype_name, namespace_of

__all__ = ["check_integer", "check_like", "describe_array", "is_integer", "require_array",
           "same_kind"]

Array = Any


def is_integer(value: Any) -> bool:
    """Whether ``value`` is an integer bp_xp accepts as a count or a size.

    Python and NumPy integers; not ``bool`` (Python counts it as an int), not ``2.0``.
    """
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_integer(value: Any, name: str, *, low: int = 1, where: str = "") -> int:
    """The one rule for integer arguments (sizes, strides, counts): ``value`` as an ``int``.

    Raises ``TypeError`` for a non-integer and ``ValueError`` below ``low``, both worded
    ``"{where}: {name} must be an integer >= {low}, got {value!r}"``.

    Examples
    --------
    >>> check_integer(np.int64(3), "stride")
    3
    >>> check_integer(0, "stride", where="Pooling")
    Traceback (most recent call last):
    ...
    ValueError: Pooling: stride must be an integer >= 1, got 0
    >>> check_integer(2.0, "pad", low=0)
    Traceback (most recent call last):
    ...
    TypeError: pad must be an integer >= 0, got 2.0
    """
    message = f"{where + ': ' if where else ''}{name} must be an integer >= {low}, got {value!r}"
    if not is_integer(value):
        raise TypeError(message)
    if value < low:
        raise ValueError(message)
    return int(value)


def describe_array(x: Array) -> str:
    """``"float32 array of shape (4, 3)"``: what an array-shaped argument must look like."""
    return f"{dtype_name(x.dtype)} array of shape {tuple(x.shape)}"


def require_array(value: Any, where: str, name: str, expected: str) -> None:
    """Raise ``TypeError`` naming ``expected`` when ``value`` is not an array.

    Python numbers, lists and ``None`` reach layer code through ordinary mistakes
    (``net.loss(x, 3)``, ``params["W1"] = 1.0``); without this they fail later with an
    ``AttributeError`` about ``.shape`` that names neither the argument nor the fix.
    """
    if not (hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "ndim")):
        got = type(value).__name__ if type(value).__module__ == "builtins" else (
            f"{type(value).__module__}.{type(value).__qualname__}")
        raise TypeError(f"{where}: {name} must be {expected}, got {got} {value!r:.60}")


def same_kind(reference: Array, value: Any) -> bool:
    """Whether ``value`` has ``reference``'s array type, shape and dtype: the hot path.

    Every training step replaces each parameter with an array of its own kind; this test
    lets that pass in a few hundred nanoseconds, leaving only the device to check
    (``namespace_of``), while anything else goes through :func:`check_like`'s messages.
    """
    return (type(value) is type(reference) and value.shape == reference.shape
            and value.dtype == reference.dtype)


def check_like(reference: Array, value: Any, *, where: str, ref_name: str, value_name: str,
               hint: str = "", dtype_hint: str = "") -> None:
    """Refuse ``value`` unless it is an array on ``reference``'s backend and device, with
    its shape and dtype.

    Errors start with ``where`` and name both arrays: ``TypeError`` for a non-array or a
    dtype, :class:`bp_xp.BackendMismatchError` for another backend or device,
    ``ValueError`` for a shape. ``hint`` ends every message; ``dtype_hint`` only the
    dtype one.

    Examples
    --------
    >>> import numpy as np
    >>> check_like(np.zeros(2), np.zeros(3), where="update", ref_name="W", value_name="dW")
    Traceback (most recent call last):
    ...
    ValueError: update: dW has shape (3,), expected the shape (2,) of W
    """
    require_array(value, where, value_name,
                  f"an array like {ref_name} ({describe_array(reference)})" + hint)
    try:
        namespace_of(reference, value, names=(ref_name, value_name))
    except (BackendMismatchError, TypeError) as exc:
        raise type(exc)(f"{where}: {exc}{hint}") from exc
    if tuple(value.shape) != tuple(reference.shape):
        raise ValueError(
            f"{where}: {value_name} has shape {tuple(value.shape)}, expected the shape "
            f"{tuple(reference.shape)} of {ref_name}{hint}"
        )
    if value.dtype != reference.dtype:
        raise TypeError(
            f"{where}: {value_name} has dtype {dtype_name(value.dtype)}, expected the dtype "
            f"{dtype_name(reference.dtype)} of {ref_name}{dtype_hint}{hint}"
        )
