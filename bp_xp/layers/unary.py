"""The computational graph's one-input nodes: ``exp``, ``log``, ``1/x`` and ``x ** p``.

With :class:`~bp_xp.layers.MulLayer` and :class:`~bp_xp.layers.AddLayer` they build the
sigmoid node of the chapter from its parts, ``x * -1``, ``exp``, ``+ 1``, ``1 / x``,
whose backward collapses to ``dout * y * (1 - y)``. Like the two-input nodes they take
Python numbers or arrays of any backend, and return a Python number for a Python number.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from ..graph import recordable
from ._checks import require_forward
from ._operands import operands_namespace, to_input, upstream
from .base import Layer

__all__ = ["ExpLayer", "LogLayer", "PowLayer", "ReciprocalLayer"]


class _OneInput(Layer):
    """Keeps ``x`` and the output from ``forward``; checks ``dout`` in ``backward``."""

    def __init__(self) -> None:
        self.x: Any = None
        self.out: Any = None

    def _operand(self, x: Any) -> ModuleType | None:
        return operands_namespace(f"{type(self).__name__}.forward", (x,), ("x",))

    def _upstream(self, dout: Any) -> tuple[Any, ModuleType | None]:
        require_forward(self, self.out)
        return upstream(type(self).__name__, dout, self.out, (self.x,), ("x",))


@recordable("1/x")
class ReciprocalLayer(_OneInput):
    """Reciprocal node: ``out = 1 / x``; ``dx = -dout * out ** 2`` (``-dout / x**2``).

    Examples
    --------
    >>> from bp_xp.layers import ReciprocalLayer
    >>> node = ReciprocalLayer()
    >>> node.forward(4.0), node.backward(1.0)
    (0.25, -0.0625)
    """

    def forward(self, x: Any) -> Any:
        self._operand(x)
        self.x = x
        self.out = 1 / x
        return self.out

    def backward(self, dout: Any) -> Any:
        dout, xp = self._upstream(dout)
        return to_input(-dout * self.out * self.out, self.x, xp)


@recordable("exp")
class ExpLayer(_OneInput):
    """Exponential node: ``out = exp(x)``; ``dx = dout * out``.

    Examples
    --------
    >>> from bp_xp.layers import ExpLayer
    >>> node = ExpLayer()
    >>> node.forward(0.0), node.backward(3.0)
    (1.0, 3.0)
    """

    def forward(self, x: Any) -> Any:
        xp = self._operand(x)
        self.x = x
        self.out = math.exp(x) if xp is None else xp.exp(x)
        return self.out

    def backward(self, dout: Any) -> Any:
        dout, xp = self._upstream(dout)
        return to_input(dout * self.out, self.x, xp)


@recordable("log")
class LogLayer(_OneInput):
    """Natural logarithm node: ``out = log(x)``; ``dx = dout / x``.

    Examples
    --------
    >>> from bp_xp.layers import LogLayer
    >>> node = LogLayer()
    >>> node.forward(1.0), node.backward(2.0)
    (0.0, 2.0)
    """

    def forward(self, x: Any) -> Any:
        xp = self._operand(x)
        self.x = x
        self.out = math.log(x) if xp is None else xp.log(x)
        return self.out

    def backward(self, dout: Any) -> Any:
        dout, xp = self._upstream(dout)
        return to_input(dout / self.x, self.x, xp)


@recordable("**p")
class PowLayer(_OneInput):
    """Power node with a constant exponent: ``out = x ** p``; ``dx = dout * p * x ** (p - 1)``.

    Parameters
    ----------
    p : int or float
        The exponent, a Python number (``PowLayer(2)`` squares, ``PowLayer(-1)`` is 1/x).

    Examples
    --------
    >>> from bp_xp.layers import PowLayer
    >>> square = PowLayer(2)
    >>> square.forward(-1), square.backward(1)
    (1, -2)
    >>> square.config()
    {'p': 2}
    """

    def __init__(self, p: float) -> None:
        if isinstance(p, bool) or not isinstance(p, (int, float)):
            raise TypeError(f"PowLayer: p must be a Python int or float, got {type(p).__name__}")
        super().__init__()
        self.p = p

    def config(self) -> dict[str, Any]:
        return {"p": self.p}

    @property
    def graph_label(self) -> str:
        """What a recorded graph draws in this node's circle: ``**2`` for ``PowLayer(2)``."""
        return f"**{self.p}"

    def forward(self, x: Any) -> Any:
        self._operand(x)
        self.x = x
        self.out = x ** self.p
        return self.out

    def backward(self, dout: Any) -> Any:
        dout, xp = self._upstream(dout)
        p, x = self.p, self.x
        # x ** (p - 1) at p == 0 would be 1/0 at x == 0: the derivative of a constant is 0.
        local = p * x ** (p - 1) if p != 0 else x * 0
        return to_input(dout * local, x, xp)
