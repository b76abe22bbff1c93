"""What every graph node does with its operands and gradients, in one place.

A node accepts Python numbers (the book's apple example) and arrays of any backend, and
its ``backward`` returns each gradient in the shape of the input it belongs to:

* an array input that was broadcast in ``forward`` gets the gradient summed back over
  the broadcast axes;
* a Python-number input gets a Python number;
* every returned gradient is a new object, never ``dout`` itself nor another input's
  gradient, so the lecture's ``dx += ...`` on one cannot change another.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import array_api_compat

from ..backends import namespace_of
from ._checks import SCALARS, check_shape

Array = Any


def operands_namespace(layer: str, values: tuple[Any, ...],
                       names: tuple[str, ...]) -> ModuleType | None:
    """The namespace shared by the array ``values``, or ``None`` when all are Python numbers.

    Refuses mixed backends and devices (:class:`bp_xp.BackendMismatchError` naming both),
    and anything that is neither a Python number nor an array.
    """
    arrays = []
    for name, value in zip(names, values):
        if isinstance(value, SCALARS):
            continue
        if not array_api_compat.is_array_api_obj(value):
            raise TypeError(
                f"{layer}: {name} must be a Python number or an array of a backend bp_xp "
                f"knows, got {type(value).__module__}.{type(value).__qualname__}"
            )
        arrays.append((name, value))
    if not arrays:
        return None
    return namespace_of(*(a for _, a in arrays), names=tuple(n for n, _ in arrays))


def shape_of(value: Any) -> tuple[int, ...]:
    """``value.shape`` as a tuple; ``()`` for a Python number."""
    return () if isinstance(value, SCALARS) else tuple(value.shape)


def upstream(layer: str, dout: Any, out: Any, cached: tuple[Any, ...],
             names: tuple[str, ...]) -> tuple[Any, ModuleType | None]:
    """Check ``dout`` against the forward output ``out``; return it and the namespace.

    ``dout`` is a Python number (the same derivative everywhere, as the book's
    ``backward(1)``) or an array of the output's shape on the inputs' backend and device.
    A Python number for an array output becomes an array of the output's shape, dtype
    and device, so that every gradient below is an array of the right backend.
    """
    xp = operands_namespace(f"{layer}.backward", (dout, *cached), ("dout", *names))
    if not isinstance(dout, SCALARS):
        check_shape(layer, "dout", dout, shape_of(out))
    elif xp is not None and not isinstance(out, SCALARS):
        dout = xp.full(tuple(out.shape), dout, dtype=out.dtype,
                       device=array_api_compat.device(out))
    return dout, xp


def to_input(grad: Any, operand: Any, xp: ModuleType | None) -> Any:
    """``grad`` in ``operand``'s form: summed over broadcast axes, or a Python number.

    ``grad`` has the forward output's shape; ``operand`` is the input it belongs to.
    """
    if isinstance(operand, SCALARS) and isinstance(grad, SCALARS):
        return grad
    xp = known_namespace(xp)
    if isinstance(operand, SCALARS):
        # A number met an array in forward: its derivative is the sum over the output.
        total = xp.sum(grad) if grad.ndim else grad
        return _python_number(total, xp)
    target = tuple(operand.shape)
    if isinstance(grad, SCALARS):  # both passes were numbers but this input is a 0-d array
        return xp.full(target, grad, dtype=operand.dtype, device=array_api_compat.device(operand))
    have = tuple(grad.shape)
    if have == target:
        return grad
    lead = len(have) - len(target)
    if lead < 0:  # the other operand had fewer axes than this one: cannot happen in forward
        raise ValueError(f"gradient of shape {have} cannot belong to an input of shape {target}")
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(target) if n == 1 and have[lead + i] != 1)
    if axes:
        grad = xp.sum(grad, axis=axes, keepdims=True)
    return xp.reshape(grad, target)


def known_namespace(xp: ModuleType | None) -> ModuleType:
    """``xp`` from :func:`operands_namespace` or :func:`upstream` where arrays are involved.

    ``None`` means every operand was a Python number, so code doing array math always
    has a namespace; this says so to the type checker and fails loudly if it ever did not.
    """
    if xp is None:
        raise TypeError("bp_xp internal error: array math on operands that are all Python numbers")
    return xp


def _python_number(x: Array, xp: ModuleType) -> Any:
    """A 0-d array as the Python number of its kind (this reads the value from the device)."""
    if xp.isdtype(x.dtype, "complex floating"):
        return complex(x)
    if xp.isdtype(x.dtype, "real floating"):
        return float(x)
    if xp.isdtype(x.dtype, "bool"):
        return bool(x)
    return int(x)


def fresh(x: Any) -> Any:
    """A new object with ``x``'s value: the book's ``dout * 1``, kept apart from ``dout``."""
    return x * 1
