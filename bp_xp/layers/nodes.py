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

from ..backends import DTypeError, zero_where
from ..graph import recordable
from ._checks import SCALARS, ShapeError, require_forward
from ._contract import Sample, bools, contract, floats, values
from ._operands import (
    check_broadcast,
    fresh,
    known_namespace,
    like_dout,
    number_math,
    operands,
    to_input,
    upstream,
)
from .base import Layer

__all__ = ["AddLayer", "DivLayer", "MatMulLayer", "MaxLayer", "MulLayer", "SubLayer"]


def _node_samples(y_away: float = 0.0) -> list[Sample]:
    """The conformance samples every broadcasting two-input node is held to
    (``y_away`` keeps the second operand away from zero, for division)."""
    return [
        Sample(floats(3, 4), floats(3, 4, away=y_away)),
        Sample(floats(3, 1), floats(4, away=y_away), name="broadcast"),
        Sample(floats(), floats(2, 3, away=y_away), name="0-d"),
        Sample(floats(2, 3), 2.5, name="Python float"),
        Sample(-1.5, floats(3, away=y_away), name="Python number first"),
        Sample(2.5, -1.25, name="Python numbers"),
        Sample(values([1, 2], "int"), values([3, 4], "int"), dout=0.5, name="int arrays"),
        Sample(values([1, -2, 3], "int"), 0.5, name="int array and Python float"),
        Sample(values([[1, -2, 3]], "int"), floats(2, 3, away=y_away), name="int and float"),
        Sample(floats(3, special="inf"), floats(3, away=y_away), smooth=False, name="inf"),
        Sample(floats(0, 3), floats(0, 3, away=y_away), name="empty batch"),
        Sample(floats(3), floats(2), raises=ShapeError, name="shapes that do not broadcast"),
        Sample(bools(3), floats(3), raises=DTypeError, name="bool array"),
    ]


def _torch_maximum(torch: Any, x: Any, y: Any) -> Any:
    return torch.maximum(x, y)


class _TwoInputs(Layer):
    """Keeps ``x``, ``y`` and the output from ``forward``; checks ``dout`` in ``backward``.

    Every node's ``forward`` is ``_operands`` (checks and promotion, before any compute),
    the math on local values, then ``_commit``: a forward that raises leaves the cache of
    the last one that succeeded, so the next ``backward`` still answers for that input.
    ``backward`` gets ``dout`` and the operands from ``_upstream``: ``dout`` floating
    (see :mod:`._operands`), integer operands cast to its dtype.
    """

    #: Floating math (``/``): integer inputs are computed in the default float dtype.
    floating = False

    def __init__(self) -> None:
        self.x: Any = None
        self.y: Any = None
        self.out: Any = None

    def _operands(self, x: Any, y: Any) -> tuple[ModuleType | None, Any, Any]:
        xp, (x, y) = operands(f"{type(self).__name__}.forward", (x, y), ("x", "y"),
                              floating=self.floating)
        return xp, x, y

    def _commit(self, x: Any, y: Any, out: Any) -> Any:
        self.x, self.y, self.out = x, y, out
        return out

    def _upstream(self, dout: Any) -> tuple[Any, ModuleType | None, Any, Any]:
        require_forward(self, self.out)
        dout, xp = upstream(type(self).__name__, dout, self.out, (self.x, self.y), ("x", "y"))
        return dout, xp, like_dout(self.x, dout, xp), like_dout(self.y, dout, xp)

    def _grads(self, dx: Any, dy: Any, xp: ModuleType | None) -> tuple[Any, Any]:
        return to_input(dx, self.x, xp), to_input(dy, self.y, xp)


@contract(reference=lambda np, x, y: np.multiply(x, y), samples=_node_samples(),
          torch_reference=lambda torch, x, y: x * y, grads_for=(0, 1))
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
        _, x, y = self._operands(x, y)
        return self._commit(x, y, x * y)

    def backward(self, dout: Any) -> tuple[Any, Any]:
        dout, xp, x, y = self._upstream(dout)
        return self._grads(dout * y, dout * x, xp)


@contract(reference=lambda np, x, y: np.add(x, y), samples=_node_samples(),
          torch_reference=lambda torch, x, y: x + y, grads_for=(0, 1))
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
        _, x, y = self._operands(x, y)
        return self._commit(x, y, x + y)

    def backward(self, dout: Any) -> tuple[Any, Any]:
        dout, xp, _, _ = self._upstream(dout)
        return self._grads(fresh(dout), fresh(dout), xp)


@contract(reference=lambda np, x, y: np.subtract(x, y), samples=_node_samples(),
          torch_reference=lambda torch, x, y: x - y, grads_for=(0, 1))
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
        _, x, y = self._operands(x, y)
        return self._commit(x, y, x - y)

    def backward(self, dout: Any) -> tuple[Any, Any]:
        dout, xp, _, _ = self._upstream(dout)
        return self._grads(fresh(dout), -dout, xp)


@contract(reference=lambda np, x, y: np.divide(x, y), samples=[
    *_node_samples(y_away=0.5),
    Sample(1.0, 0.0, raises=ZeroDivisionError, name="Python numbers, zero divisor")],
    torch_reference=lambda torch, x, y: x / y, grads_for=(0, 1))
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

    floating = True

    def forward(self, x: Any, y: Any) -> Any:
        xp, x, y = self._operands(x, y)
        return self._commit(x, y, number_math("div", x, y) if xp is None else x / y)

    def backward(self, dout: Any) -> tuple[Any, Any]:
        dout, xp, _, y = self._upstream(dout)
        dx = number_math("div", dout, y) if xp is None else dout / y
        return self._grads(dx, -dx * self.out, xp)


@contract(reference=lambda np, x, y: np.maximum(x, y), samples=[
    *_node_samples(),
    Sample(values([1.0, 5.0, 2.0]), values([3.0, 4.0, 2.0]), smooth=False, name="a tie"),
    Sample(float("nan"), 1.0, smooth=False, name="Python NaN")],
    torch_reference=_torch_maximum, grads_for=(0, 1))
@recordable("max")
class MaxLayer(_TwoInputs):
    """Max gate: ``out = maximum(x, y)``; ``backward`` routes ``dout`` to the larger input.

    Tie rule: where ``x == y`` the whole gradient goes to ``x``, the first input (as
    Python's ``max(x, y)`` returns its first argument on a tie), and ``y`` gets 0. So each
    element of ``dout`` goes to exactly one input and ``dx + dy == dout``; this is one
    valid subgradient. PyTorch's ``torch.maximum`` instead splits a tie, ``dout / 2`` to
    each. NaN propagates as in ``numpy.maximum``: where an input is NaN the output is NaN
    and the gradient goes to that input (to ``x`` where both are).

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
        xp, x, y = self._operands(x, y)
        if xp is None:
            mask = x >= y or x != x  # a NaN x wins, as in numpy.maximum
            out = x if mask else y
        else:
            a, b = _arrays(x, y, xp)
            mask = a >= b
            if xp.isdtype(a.dtype, "real floating"):
                mask = mask | xp.isnan(a)
            out = xp.where(mask, a, b)
        self.mask = mask
        return self._commit(x, y, out)

    def backward(self, dout: Any) -> tuple[Any, Any]:
        dout, xp, _, _ = self._upstream(dout)
        mask = self.mask
        if isinstance(mask, bool):
            return self._grads(dout * mask, dout * (not mask), xp)
        xp = known_namespace(xp)  # the mask is an array
        # zero_where keeps an empty dout on its device (JAX's where(mask, 0, dout) does not)
        return self._grads(xp.where(mask, dout, 0), zero_where(mask, dout, xp), xp)


def _arrays(x: Any, y: Any, xp: ModuleType) -> tuple[Any, Any]:
    """A Python-number operand as a 0-d array of the other's dtype and device."""
    if isinstance(x, SCALARS):
        x = xp.asarray(x, dtype=y.dtype, device=array_api_compat.device(y))
    if isinstance(y, SCALARS):
        y = xp.asarray(y, dtype=x.dtype, device=array_api_compat.device(x))
    return x, y


@contract(reference=lambda np, W, X: np.matmul(W, X), samples=[
    Sample(floats(3, 4), floats(4, 2)),
    Sample(floats(2, 3, 4), floats(4, 2), name="batch axes"),
    Sample(values([[1, 2], [3, 4]], "int"), values([[1], [-1]], "int"), dout=0.5,
           name="int arrays"),
    Sample(floats(0, 4), floats(4, 2), name="empty"),
    Sample(floats(3, 4), floats(3, 2), raises=ShapeError, name="inner sizes differ"),
    Sample(floats(2, 3, 4), floats(3, 4, 2), raises=ShapeError, name="batch axes differ"),
    Sample(floats(3), floats(3), raises=ShapeError, name="vectors"),
    Sample(bools(3, 4), floats(4, 2), raises=DTypeError, name="bool array")],
    torch_reference=lambda torch, W, X: W @ X, grads_for=(0, 1))
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
        if isinstance(W, SCALARS) or isinstance(X, SCALARS):
            raise TypeError("MatMulLayer.forward: W and X must both be arrays (D = W @ X); "
                            "use MulLayer for Python numbers")
        _, (W, X) = operands("MatMulLayer.forward", (W, X), ("W", "X"), broadcast=False)
        if W.ndim < 2 or X.ndim < 2 or W.shape[-1] != X.shape[-2]:
            raise ShapeError(
                f"MatMulLayer.forward: W @ X needs W of shape (..., n, m) and X of shape "
                f"(..., m, k), got W {tuple(W.shape)} and X {tuple(X.shape)} (make a vector "
                "a column of shape (m, 1))")
        check_broadcast("MatMulLayer.forward", [("W's batch axes", tuple(W.shape[:-2])),
                                                ("X's batch axes", tuple(X.shape[:-2]))])
        return self._commit(W, X, W @ X)

    def backward(self, dout: Any) -> tuple[Any, Any]:
        dout, xp, W, X = self._upstream(dout)
        xp = known_namespace(xp)  # forward took arrays only
        return self._grads(dout @ xp.matrix_transpose(X), xp.matrix_transpose(W) @ dout, xp)

    @property
    def W(self) -> Any:
        """The ``W`` of the last forward (stored as ``x``)."""
        return self.x

    @property
    def X(self) -> Any:
        """The ``X`` of the last forward (stored as ``y``)."""
        return self.y
