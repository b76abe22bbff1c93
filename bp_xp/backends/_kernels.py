"""Fast kernels: a portable spelling, and a backend's own faster way where it has one."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ._namespace import FAST_KERNELS, known_type, namespace_of

__all__ = ["column_major", "fast_kernel", "matmul_layout", "relu", "relu_backward", "subtract_scaled",
           "weight_gradient", "zero_where"]

# --------------------------------------------------------------------------------------
# Fast kernels: a portable spelling, and a backend's own faster way where it has one
# --------------------------------------------------------------------------------------
#
# Layers, functions and optimizers call the dispatchers below instead of spelling these
# few operations themselves. Each dispatcher looks up the fast function that the array's
# backend file lists under the kernel's name in its ``KERNELS`` (learned per array type by
# namespace_of, so the lookup is one dict access) and falls back to the portable Array API
# spelling, which is the default: when the backend has no such kernel, when its kernel
# returns ``None`` (it does not apply to these arrays), or when the array type is not yet
# known. A fast kernel gives what the portable spelling gives, bit for bit or within one
# rounding (tests/test_backend.py checks each on every backend of the test matrix).


def fast_kernel(name: str, x: Any) -> Any:
    """The fast function the backend of ``x`` has for kernel ``name``, or ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> fast_kernel("zero_where", np.zeros(2)).__module__
    'bp_xp.backends.numpy'
    >>> fast_kernel("subtract_scaled", np.zeros(2)) is None  # NumPy: the portable spelling
    True
    """
    table = FAST_KERNELS.get(name)
    fast = None if table is None else table.get(type(x))
    if fast is None and not known_type(type(x)) and hasattr(x, "shape"):
        try:
            namespace_of(x)  # a type not met yet: learn its backend's kernels, then look again
        except TypeError:
            return None
        table = FAST_KERNELS.get(name)
        fast = None if table is None else table.get(type(x))
    return fast


def _run_fast(name: str, key: Any, *args: Any) -> Any:
    """The result of ``key``'s backend kernel ``name`` on ``args``, or ``None`` where the
    backend has none or its kernel declines (the caller then takes the portable path)."""
    fast = fast_kernel(name, key)
    return None if fast is None else fast(*args)


def subtract_scaled(a: Any, b: Any, scale: float) -> Any:
    """``a - scale * b`` as a new array: the SGD update.

    ``scale`` is a Python float, so the result keeps ``a``'s dtype. PyTorch does it in one
    kernel (``torch.sub(a, b, alpha=scale)``) instead of two passes and two allocations.

    Examples
    --------
    >>> import numpy as np
    >>> subtract_scaled(np.array([1.0, 2.0]), np.array([2.0, 2.0]), 0.5)
    array([0., 1.])
    """
    out = _run_fast("subtract_scaled", a, a, b, scale)
    return a - scale * b if out is None else out


def zero_where(mask: Any, x: Any, xp: ModuleType | None = None) -> Any:
    """``where(mask, 0, x)``: ``x`` with zeros where ``mask`` is true (a new array).

    The ReLU layer's forward and backward. The portable path is ``xp.where``. On the
    CPU, NumPy's and PyTorch's ``where`` are branchy and slow when the mask is random
    (about 2-4 ns per element: for a wide network, more than all other element-wise work
    of a step), so the NumPy and torch backend files supply a bitwise path (their
    ``zero_where``) that gives the same bits, used when ``mask`` has ``x``'s type and
    shape and the backend's conditions hold.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.backends import zero_where
    >>> x = np.array([1.5, -2.0, np.inf, np.nan])
    >>> zero_where(x < 0, x)
    array([1.5, 0. , inf, nan])
    >>> zero_where(np.isinf(x), x)
    array([ 1.5, -2. ,  0. ,  nan])
    """
    kind = type(x)
    fast = FAST_KERNELS["zero_where"].get(kind)
    if fast is not None and type(mask) is kind and mask.shape == x.shape:
        out = fast(mask, x)
        if out is not None:
            return out
    if xp is None:
        xp = namespace_of(mask, x, names=("mask", "x"))
    return xp.where(mask, 0, x)


def matmul_layout(W: Any) -> Any:
    """``W`` in the memory layout its backend's ``x @ W`` is fastest with (same values).

    For the weight matrices bp_xp creates itself (networks' initial weights, parameters
    replaced by ``load_params``), never for arrays a caller passed in, which layers keep as
    given (the book's layers share them with ``params``). Portable: ``W`` unchanged
    (row-major on NumPy, whose OpenBLAS products prefer it). PyTorch: column-major,
    ``torch.nn.Linear``'s layout. Optimizer updates, ``.to()`` and checkpoints keep a
    layout once chosen (see :func:`column_major`), so a resumed run repeats its bits.

    Examples
    --------
    >>> import numpy as np
    >>> W = np.ones((3, 2))
    >>> matmul_layout(W) is W
    True
    """
    out = _run_fast("matmul_layout", W, W)
    return W if out is None else out


def weight_gradient(x: Any, dout: Any, W: Any) -> Any:
    """``x.T @ dout``, the gradient of ``x @ W`` with respect to ``W``, laid out like ``W``.

    Examples
    --------
    >>> import numpy as np
    >>> weight_gradient(np.ones((4, 3)), np.ones((4, 2)), np.zeros((3, 2)))
    array([[4., 4.],
           [4., 4.],
           [4., 4.]])
    """
    out = _run_fast("weight_gradient", W, x, dout, W)
    return x.T @ dout if out is None else out


def column_major(x: Any) -> Any:
    """A 2-D array with the same values stored column by column, where the backend controls
    memory layout (NumPy, PyTorch); ``x`` itself elsewhere and when it already is.

    Checkpoints record which matrices were held so (safetensors stores rows) and restore
    them with this, since a matrix product's rounding can depend on its operands' layout.

    Examples
    --------
    >>> import numpy as np
    >>> column_major(np.ones((2, 3))).flags.f_contiguous
    True
    """
    out = _run_fast("column_major", x, x)
    return x if out is None else out


def relu(x: Any, xp: ModuleType) -> tuple[Any, Any, Any]:
    """``(out, mask, out_kept)``: the ReLU of ``x`` and what its backward needs.

    Portable: the book's mask ``x <= 0`` and ``where(mask, 0, x)`` (:func:`zero_where`);
    ``out_kept`` is ``None``. A backend with a ``relu`` kernel (PyTorch: ``torch.relu``,
    one pass and no boolean tensor) returns its output as ``out_kept`` and no mask; the
    backward then zeroes the gradient where that output is ``<= 0``, which is where
    ``x <= 0`` (NaN stays NaN in ``out`` and passes its gradient, as with the mask).

    Examples
    --------
    >>> import numpy as np
    >>> out, mask, kept = relu(np.array([-1.0, 2.0]), np)
    >>> out, mask, kept
    (array([0., 2.]), array([ True, False]), None)
    """
    out = _run_fast("relu", x, x)
    if out is not None:
        return out, None, out
    mask = x <= 0
    return zero_where(mask, x, xp), mask, None


def relu_backward(dout: Any, mask: Any, out: Any, xp: ModuleType) -> Any:
    """``dout`` with zeros where the forward's input was ``<= 0`` (see :func:`relu`).

    Examples
    --------
    >>> import numpy as np
    >>> relu_backward(np.array([5.0, 5.0]), np.array([True, False]), None, np)
    array([0., 5.])
    """
    if mask is None:
        grad = _run_fast("relu_backward", out, dout, out)
        if grad is not None:
            return grad
        mask = out <= 0
    return zero_where(mask, dout, xp)
