"""The computational graph's two-input nodes: each returns one gradient per input.

These are the chapter's first layers, the ones its apple and orange examples are drawn
with, and the gates of the CS231n lecture on backpropagation: add distributes the
gradient, max routes it, mul swaps its inputs. They work on plain Python numbers as in
the book, and on arrays of every backend; an operand may be broadcast against the other
(a Python number, or an array of fewer or size-1 axes), and ``backward`` returns each
gradient in its own input's shape (summed over the broadcast axes; a Python number for a
Python number). Every gradient is a new object: ``dx += ...`` on one leaves the others.

One-input nodes (``exp``, ``log``, ``1/x``, ``x**p``) are in :mod:`.unary`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import array_api_compat

from ..graph import recordable
from ._checks import SCALARS, require_forward
from ._operands import fresh, known_namespace, operands_namespace, to_input, upstream
from .base import Layer

__all__ = ["AddLayer", "DivLayer", "MatMulLayer", "MaxLayer", "MulLayer", "SubLayer"]


class _TwoInputs(Layer):
    """Keeps ``x``, ``y`` and the output from ``forward``; checks ``dout`` in ``backward``."""

    def __init__(self) -> None:
        self.x: Any = None
        self.y: Any = None
        self.out: Any = None

    def _operands(self, x: Any, y: Any) -> ModuleType | None:
        return operands_namespace(f"{type(self).__name__}.forward", (x, y), ("x", "y"))

    def _upstream(self, dout: Any) -> tuple[Any, ModuleType | None]:
        require_forward(self, self.out)
        return upstream(type(self).__name__, dout, self.out, (self.x, self.y), ("x", "y"))

    def _grads(self, dx: Any, dy: Any, xp: ModuleType | None) -> tuple[Any, Any]:
        return to_input(dx, self.x, xp), to_input(dy, self.y, xp)


@recordable("×")
class MulLayer(_TwoInputs):
    """Multiplication node: ``out = x * y``; ``backward`` swaps the inputs.

    Examples
    --------
    >>> from bp_xp.layers import MulLayer
    >>> apple = MulLayer()
    >>> apple.forward(100, 2)
    200
    >>> apple.backward(1.1)
    (2.2, 110.00000000000001)
    """

    def forward(self, x: Any, y: Any) -> Any:
        self._operands(x, y)
        self.x, self.y = x, y
        self.out = x * y
        return self.out

    def backward(self, dout: Any) -> tuple[Any, Any]:
        dout, xp = self._upstream(dout)
        return self._grads(dout * self.y, dout * self.x, xp)


@recordable("+")
class AddLayer(_TwoInputs):
    """Addition node: ``out = x + y``; ``backward`` passes ``dout`` on to both inputs.

    Each input gets its own copy (the book's ``dout * 1``), never ``dout`` itself.

    Examples
    --------
    >>> from bp_xp.layers import AddLayer
    >>> add = AddLayer()
    >>> add.forward(200, 450)
    650
    >>> add.backward(1.1)
    (1.1, 1.1)
    """

    def forward(self, x: Any, y: Any) -> Any:
        self._operands(x, y)
        self.x, self.y = x, y
        self.out = x + y
        return self.out

    def backward(self, dout: Any) -> tuple[Any, Any]:
        dout, xp = self._upstream(dout)
        return self._grads(fresh(dout), fresh(dout), xp)


@recordable("−")
class SubLayer(_TwoInputs):
    """Subtraction node: ``out = x - y``; ``backward`` gives ``dout`` to ``x``, ``-dout`` to ``y``.

    Examples
    --------
    >>> from bp_xp.layers import SubLayer
    >>> sub = SubLayer()
    >>> sub.forward(5, 3), sub.backward(2.0)
    (2, (2.0, -2.0))
    """

    def forward(self, x: Any, y: Any) -> Any:
        self._operands(x, y)
        self.x, self.y = x, y
        self.out = x - y
        return self.out

    def backward(self, dout: Any) -> tuple[Any, Any]:
        dout, xp = self._upstream(dout)
        return self._grads(fresh(dout), -dout, xp)


@recordable("÷")
class DivLayer(_TwoInputs):
    """Division node: ``out = x / y``; ``dx = dout / y``, ``dy = -dout * out / y``.

    Examples
    --------
    >>> from bp_xp.layers import DivLayer
    >>> div = DivLayer()
    >>> div.forward(3.0, 4.0), div.backward(1.0)
    (0.75, (0.25, -0.1875))
    """

    def forward(self, x: Any, y: Any) -> Any:
        self._operands(x, y)
        self.x, self.y = x, y
        self.out = x / y
        return self.out

    def backward(self, dout: Any) -> tuple[Any, Any]:
        dout, xp = self._upstream(dout)
        dx = dout / self.y
        return self._grads(dx, -dx * self.out, xp)


@recordable("max")
class MaxLayer(_TwoInputs):
    """Max gate: ``out = maximum(x, y)``; ``backward`` routes ``dout`` to the larger input.

    Tie rule: where ``x == y`` the whole gradient goes to ``x``, the first input (as
    Python's ``max(x, y)`` returns its first argument on a tie), and ``y`` gets 0. So each
    element of ``dout`` goes to exactly one input and ``dx + dy == dout``; this is one
    valid subgradient. PyTorch's ``torch.maximum`` instead splits a tie, ``dout / 2`` to
    each. Where an input is NaN the output is NaN and the gradient goes to ``y``.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.layers import MaxLayer
    >>> gate = MaxLayer()
    >>> gate.forward(np.array([1.0, 5.0, 2.0]), np.array([3.0, 4.0, 2.0]))
    array([3., 5., 2.])
    >>> gate.backward(np.array([10.0, 20.0, 30.0]))
    (array([ 0., 20., 30.]), array([10.,  0.,  0.]))
    """

    def __init__(self) -> None:
        super().__init__()
        self.mask: Any = None  # where the gradient goes to x

    def forward(self, x: Any, y: Any) -> Any:
        xp = self._operands(x, y)
        self.x, self.y = x, y
        if xp is None:
            self.mask = x >= y
            self.out = x if self.mask else y
            return self.out
        a, b = _arrays(x, y, xp)
        self.mask = a >= b
        self.out = xp.where(self.mask, a, b)
        return self.out

    def backward(self, dout: Any) -> tuple[Any, Any]:
        dout, xp = self._upstream(dout)
        mask = self.mask
        if isinstance(mask, bool):
            return self._grads(dout * mask, dout * (not mask), xp)
        xp = known_namespace(xp)  # the mask is an array
        return self._grads(xp.where(mask, dout, 0), xp.where(mask, 0, dout), xp)


def _arrays(x: Any, y: Any, xp: ModuleType) -> tuple[Any, Any]:
    """A Python-number operand as a 0-d array of the other's dtype and device."""
    if isinstance(x, SCALARS):
        x = xp.asarray(x, dtype=y.dtype, device=array_api_compat.device(y))
    if isinstance(y, SCALARS):
        y = xp.asarray(y, dtype=x.dtype, device=array_api_compat.device(x))
    return x, y


@recordable("@")
class MatMulLayer(_TwoInputs):
    """Matrix product node ``D = W @ X``: ``dW = dD @ X.T``, ``dX = W.T @ dD``.

    The lecture's vectorised rule; each gradient has the shape of its matrix (check:
    ``dD @ X.T`` is ``(n, m) @ (m, k)``, the shape of ``W``). Both operands are arrays of
    two or more dimensions; extra leading (batch) axes broadcast as in ``@`` and are
    summed back in the gradients. Written ``forward(W, X)``, so ``x``/``y`` are ``W``/``X``.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.layers import MatMulLayer
    >>> node = MatMulLayer()
    >>> W, X = np.array([[1.0, 2.0]]), np.array([[3.0], [4.0]])
    >>> node.forward(W, X)
    array([[11.]])
    >>> node.backward(np.array([[1.0]]))
    (array([[3., 4.]]), array([[1.],
           [2.]]))
    """

    def forward(self, W: Any, X: Any) -> Any:
        xp = operands_namespace("MatMulLayer.forward", (W, X), ("W", "X"))
        if xp is None or isinstance(W, SCALARS) or isinstance(X, SCALARS):
            raise TypeError("MatMulLayer.forward: W and X must both be arrays (D = W @ X); "
                            "use MulLayer for Python numbers")
        if W.ndim < 2 or X.ndim < 2 or W.shape[-1] != X.shape[-2]:
            raise ValueError(
                f"MatMulLayer.forward: W @ X needs W of shape (..., n, m) and X of shape "
                f"(..., m, k), got W {tuple(W.shape)} and X {tuple(X.shape)} (make a vector "
                "a column of shape (m, 1))")
        self.x, self.y = W, X
        self.out = W @ X
        return self.out

    def backward(self, dout: Any) -> tuple[Any, Any]:
        dout, xp = self._upstream(dout)
        xp = known_namespace(xp)  # forward took arrays only
        W, X = self.x, self.y
        return self._grads(dout @ xp.matrix_transpose(X), xp.matrix_transpose(W) @ dout, xp)

    @property
    def W(self) -> Any:
        """The ``W`` of the last forward (stored as ``x``)."""
        return self.x

    @property
    def X(self) -> Any:
        """The ``X`` of the last forward (stored as ``y``)."""
        return self.y
