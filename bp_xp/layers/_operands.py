"""What every graph node does with its operands and gradients, in one place.

A node accepts Python numbers (the book's apple example) and arrays of any backend. One
set of rules, applied here and nowhere else, decides what it computes with:

* **Promotion** (the Array API's rules, with NumPy's float semantics where the standard
  leaves a case open): a Python number never changes an array's dtype, except that a
  Python float meeting only integer arrays makes them floating (the backend's default
  float dtype) instead of being truncated; an integer array meeting a float array takes
  the float array's dtype; a node whose math is floating (``/``, ``exp``, ``log``, ``1/x``,
  a non-integer power) computes integer inputs in the default float dtype. Bool arrays
  are refused: the standard defines no arithmetic on them.
* **Shapes** that do not broadcast are a :class:`~bp_xp.layers.ShapeError` (a
  ``ValueError``) naming both, on every backend, before any compute.
* **Gradients are floating**: ``dout`` as a Python number becomes an array of the output's
  dtype, or the default float dtype for an integer output (``MulLayer`` on ``[1, 2]``,
  ``[3, 4]`` with ``backward(0.5)`` gives ``[1.5, 2.]``, ``[0.5, 1.]`` as the book's
  NumPy code does); integer operands are cast to ``dout``'s dtype in ``backward``.
* **Python numbers only**: Python's own arithmetic, as in the book (``1/0`` raises
  ``ZeroDivisionError``, ``log(-1)`` ``ValueError``), except that a negative base to a
  fractional power, which Python answers with a complex number, is a ``ValueError``. Arrays
  follow float semantics instead (``inf``, ``nan``), as NumPy's float arrays do.

Its ``backward`` returns each gradient in the shape of the input it belongs to:

* an array input that was broadcast in ``forward`` gets the gradient summed back over
  the broadcast axes;
* a Python-number input gets a Python number;
* every returned gradient is a new object, never ``dout`` itself nor another input's
  gradient, so the lecture's ``dx += ...`` on one cannot change another.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import array_api_compat

from ..backends import DTypeError, namespace_of
from ._checks import SCALARS, ShapeError, check_shape, dtype_kind

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


def default_float(xp: ModuleType, like: Array) -> Any:
    """The backend's default real floating dtype on ``like``'s device (float32 on PyTorch)."""
    info = xp.__array_namespace_info__()
    return info.default_dtypes(device=array_api_compat.device(like))["real floating"]


def operands(layer: str, values: tuple[Any, ...], names: tuple[str, ...], *,
             floating: bool = False, broadcast: bool = True) -> tuple[ModuleType | None, tuple[Any, ...]]:
    """Check ``values`` and promote them by the module's rules; return the namespace and them.

    ``floating=True`` for a node whose math is floating (integer arrays become the default
    float dtype). Python numbers are returned as they are. Raises before any compute:
    ``TypeError`` for something that is no number nor array, :class:`bp_xp.DTypeError` (a
    ``TypeError``) for a bool array;
    :class:`bp_xp.BackendMismatchError` for mixed backends or devices;
    :class:`~bp_xp.layers.ShapeError` for shapes that do not broadcast.
    """
    xp = operands_namespace(layer, values, names)
    if xp is None:
        return None, values
    arrays = [(n, v) for n, v in zip(names, values) if not isinstance(v, SCALARS)]
    float_dtypes = []
    for name, value in arrays:
        kind = dtype_kind(xp, value.dtype)
        if kind == "bool":
            raise DTypeError(f"{layer}: {name} is a bool array; expected a real (integer or "
                             "floating) array: the Array API defines no arithmetic on bool "
                             "arrays, cast it first (xp.astype(x, xp.float32))")
        if kind == "float":
            float_dtypes.append(value.dtype)
    if broadcast and len(arrays) > 1:
        check_broadcast(layer, [(n, tuple(v.shape)) for n, v in arrays])
    if len(float_dtypes) == len(arrays):  # every array is floating already: the hot path
        return xp, values
    if float_dtypes:
        target = xp.result_type(*float_dtypes)
    elif floating or any(isinstance(v, float) for v in values):
        target = default_float(xp, arrays[0][1])
    else:
        return xp, values  # integer arrays and integer numbers: integer math
    return xp, tuple(v if isinstance(v, SCALARS) or dtype_kind(xp, v.dtype) == "float"
                     else xp.astype(v, target) for v in values)


def check_broadcast(layer: str, named_shapes: list[tuple[str, tuple[int, ...]]]) -> None:
    """Raise :class:`~bp_xp.layers.ShapeError` naming the shapes unless they broadcast."""
    shapes = [s for _, s in named_shapes]
    ndim = max(len(s) for s in shapes)
    for axis in range(1, ndim + 1):
        sizes = {s[-axis] for s in shapes if len(s) >= axis} - {1}
        if len(sizes) > 1:
            described = " and ".join(f"{n} of shape {s}" for n, s in named_shapes)
            raise ShapeError(f"{layer}: {described} do not broadcast together (axis {-axis} "
                             f"has sizes {sorted(sizes)}); reshape one of them")


def upstream(layer: str, dout: Any, out: Any, cached: tuple[Any, ...],
             names: tuple[str, ...]) -> tuple[Any, ModuleType | None]:
    """Check ``dout`` against the forward output ``out``; return it and the namespace.

    ``dout`` is a Python number (the same derivative everywhere, as the book's
    ``backward(1)``) or an array of the output's shape on the inputs' backend and device.
    A Python number for an array output becomes an array of the output's shape and
    device, in the output's dtype if that is floating and the default float dtype if not:
    gradients are floating, a Python number never truncated or demoting them. An integer
    ``dout`` array becomes the default float dtype too.
    """
    xp = operands_namespace(f"{layer}.backward", (dout, *cached), ("dout", *names))
    if not isinstance(dout, SCALARS):
        check_shape(layer, "dout", dout, shape_of(out))
        if xp is not None and dtype_kind(xp, dout.dtype) != "float":
            dout = xp.astype(dout, default_float(xp, dout))
    elif xp is not None and not isinstance(out, SCALARS):
        dtype = out.dtype if dtype_kind(xp, out.dtype) == "float" else default_float(xp, out)
        dout = xp.full(tuple(out.shape), dout, dtype=dtype, device=array_api_compat.device(out))
    return dout, xp


def like_dout(value: Any, dout: Any, xp: ModuleType | None) -> Any:
    """An integer array operand cast to ``dout``'s float dtype, for the gradient's math;
    anything else as it is (float arrays already share ``dout``'s kind)."""
    if xp is None or isinstance(value, SCALARS) or isinstance(dout, SCALARS):
        return value
    if dtype_kind(xp, value.dtype) == "float":
        return value
    return xp.astype(value, dout.dtype)


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


def number_math(op: str, x: Any, p: Any = None) -> Any:
    """``op`` of Python numbers with Python's own arithmetic, the book's semantics for them:
    ``"div"`` (``x / p``), ``"exp"``, ``"log"``, ``"pow"`` (``x ** p``).

    Python raises where a float64 array would give ``inf`` or ``nan`` (``ZeroDivisionError``
    for ``1 / 0``, ``ValueError`` for ``log(-1)``, ``OverflowError`` for ``exp(1000)``): a
    clear error, kept. The one case where Python answers silently with something else, a
    complex number for a negative base to a fractional power, is a ``ValueError`` instead.
    """
    if op == "div":
        return x / p
    if op == "exp":
        return math.exp(x)
    if op == "log":
        return math.log(x)
    if x < 0 and p != int(p):
        raise ValueError(f"PowLayer({p}): the negative base {x} to a fractional power has no real "
                         "value (Python would return a complex number); a float array gives nan")
    return x ** p


def fresh(x: Any) -> Any:
    """A new object with ``x``'s value: the book's ``dout * 1``, kept apart from ``dout``."""
    return x * 1
