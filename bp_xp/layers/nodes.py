"""The computational graph's nodes: each takes two inputs and returns one gradient per input.

These are the chapter's first layers, the ones its apple and orange examples are drawn
with. They work on plain Python numbers as in the book, and on arrays of every backend.
"""

from __future__ import annotations

from typing import Any

from .._backend import namespace_of
from ._checks import SCALARS, require_forward
from .base import Layer

__all__ = ["AddLayer", "MulLayer"]


def _check_operands(x: Any, y: Any) -> None:
    """Refuse mixed backends/devices; plain Python numbers (the apple example) pass."""
    if not isinstance(x, SCALARS) and not isinstance(y, SCALARS):
        namespace_of(x, y, names=("x", "y"))


class MulLayer(Layer):
    """Multiplication node: ``out = x * y``; ``backward`` swaps the inputs.

    Works on arrays of any backend and on plain Python numbers.

    Examples
    --------
    >>> from bp_xp.layers import MulLayer
    >>> apple = MulLayer()
    >>> apple.forward(100, 2)
    200
    >>> apple.backward(1.1)
    (2.2, 110.00000000000001)
    """

    def __init__(self) -> None:
        self.x: Any = None
        self.y: Any = None

    def forward(self, x: Any, y: Any) -> Any:
        _check_operands(x, y)
        self.x = x
        self.y = y
        return x * y

    def backward(self, dout: Any) -> tuple[Any, Any]:
        require_forward(self, self.x)
        return dout * self.y, dout * self.x


class AddLayer(Layer):
    """Addition node: ``out = x + y``; ``backward`` passes ``dout`` to both inputs.

    Examples
    --------
    >>> from bp_xp.layers import AddLayer
    >>> AddLayer().forward(200, 450)
    650
    """

    def forward(self, x: Any, y: Any) -> Any:
        _check_operands(x, y)
        return x + y

    def backward(self, dout: Any) -> tuple[Any, Any]:
        return dout, dout
