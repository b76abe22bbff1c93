"""The computational graph's one-input nodes: ``exp``, ``log``, ``1/x`` and ``x ** p``.

With :class:`~bp_xp.layers.MulLayer` and :class:`~bp_xp.layers.AddLayer` they build the
sigmoid node of the chapter from its parts, ``x * -1``, ``exp``, ``+ 1``, ``1 / x``,
whose backward collapses to ``dout * y * (1 - y)``. Like the two-input nodes they take
Python numbers or arrays of any backend, and return a Python number for a Python number.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ..backends import DTypeError
from ..graph import recordable
from ._checks import require_forward
from ._contract import Sample, bools, contract, floats, values
from ._operands import like_dout, number_math, operands, to_input, upstream
from .base import Layer

__all__ = ["ExpLayer", "LogLayer", "PowLayer", "ReciprocalLayer"]


class _OneInput(Layer):
    """Keeps ``x`` and the output from ``forward``; checks ``dout`` in ``backward``.

    As the two-input nodes: checks and promotion first (:mod:`._operands`; these nodes'
    math is floating, so integer inputs are computed in the default float dtype), the math
    on local values, then ``_commit``, so that a forward that raises changes nothing.
    """

    floating = True

    def __init__(self) -> None:
        self.x: Any = None
        self.out: Any = None

    def _operand(self, x: Any) -> tuple[ModuleType | None, Any]:
        xp, (x,) = operands(f"{type(self).__name__}.forward", (x,), ("x",),
                            floating=self.floating)
        return xp, x

    def _commit(self, x: Any, out: Any) -> Any:
        self.x, self.out = x, out
        return out

    def _upstream(self, dout: Any) -> tuple[Any, ModuleType | None, Any]:
        require_forward(self, self.out)
        dout, xp = upstream(type(self).__name__, dout, self.out, (self.x,), ("x",))
        return dout, xp, like_dout(self.x, dout, xp)


def _unary_samples(x: Any, *, ints: Any, number: float, edge: Any, edge_number: float,
                   edge_error: type[Exception]) -> list[Sample]:
    """The conformance samples of a one-input node: ``x`` a float input in its smooth domain,
    ``ints`` integer values there, ``edge`` values at its edges (inf, 0, outside the domain),
    where an array gives inf or nan and the Python number ``edge_number`` ``edge_error``."""
    return [
        Sample(x),
        Sample(floats(), name="0-d") if x.low is None and not x.away else
        Sample(floats(low=x.low, high=x.high, away=x.away), name="0-d"),
        Sample(number, name="Python number"),
        Sample(values(ints, "int"), name="int array"),
        Sample(values(ints, "int"), dout=0.5, name="int array, Python dout"),
        Sample(values(edge), smooth=False, name="edges"),
        Sample(edge_number, raises=edge_error, name="Python number at an edge"),
        Sample(floats(0, 3), name="empty batch"),
        Sample(bools(3), raises=DTypeError, name="bool array"),
    ]


@contract(reference=lambda np, x: np.divide(1.0, x),
          samples=_unary_samples(floats(3, 4, away=0.5), ints=[1, -2, 4], number=4.0,
                                 edge=[0.0, -0.0, float("inf")], edge_number=0.0,
                                 edge_error=ZeroDivisionError),
          torch_reference=lambda torch, x: 1 / x)
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
        xp, x = self._operand(x)
        return self._commit(x, number_math("div", 1.0, x) if xp is None else 1 / x)

    def backward(self, dout: Any) -> Any:
        dout, xp, _ = self._upstream(dout)
        return to_input(-dout * self.out * self.out, self.x, xp)


@contract(reference=lambda np, x: np.exp(x),
          samples=_unary_samples(floats(3, 4), ints=[0, 1, -2], number=0.5,
                                 edge=[float("inf"), -float("inf"), 800.0], edge_number=800.0,
                                 edge_error=OverflowError),
          torch_reference=lambda torch, x: torch.exp(x))
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
        xp, x = self._operand(x)
        return self._commit(x, number_math("exp", x) if xp is None else xp.exp(x))

    def backward(self, dout: Any) -> Any:
        dout, xp, _ = self._upstream(dout)
        return to_input(dout * self.out, self.x, xp)


@contract(reference=lambda np, x: np.log(x),
          samples=_unary_samples(floats(3, 4, low=0.5, high=2.0), ints=[1, 2, 5], number=2.0,
                                 edge=[0.0, -1.0, float("inf")], edge_number=-1.0,
                                 edge_error=ValueError),
          torch_reference=lambda torch, x: torch.log(x))
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
        xp, x = self._operand(x)
        return self._commit(x, number_math("log", x) if xp is None else xp.log(x))

    def backward(self, dout: Any) -> Any:
        dout, xp, x = self._upstream(dout)
        return to_input(number_math("div", dout, x) if xp is None else dout / x, self.x, xp)


@contract(reference=lambda np, x: np.power(x, 2.0), init={"p": 2}, id="PowLayer(2)",
          samples=_unary_samples(floats(3, 4), ints=[1, -2, 3], number=-1.5,
                                 edge=[float("inf"), -float("inf")], edge_number=1e200,
                                 edge_error=OverflowError),
          torch_reference=lambda torch, x: x ** 2)
@contract(reference=lambda np, x: np.power(x, 0.5), init={"p": 0.5},
          id="PowLayer(0.5)",
          samples=_unary_samples(floats(3, 4, low=0.5, high=2.0), ints=[1, 4, 9], number=4.0,
                                 edge=[-4.0, 0.0, float("inf")], edge_number=-4.0,
                                 edge_error=ValueError),
          torch_reference=lambda torch, x: x ** 0.5)
@contract(reference=lambda np, x: np.power(x, -1.0), init={"p": -1}, id="PowLayer(-1)",
          samples=_unary_samples(floats(3, 4, away=0.5), ints=[1, -2, 4], number=-2.0,
                                 edge=[0.0, float("inf")], edge_number=0.0,
                                 edge_error=ZeroDivisionError),
          torch_reference=lambda torch, x: x ** -1)
@recordable("**p")
class PowLayer(_OneInput):
    """Power node with a constant exponent: ``out = x ** p``; ``dx = dout * p * x ** (p - 1)``.

    Arrays follow float semantics, as NumPy's float arrays do: a negative base with a
    non-integer exponent gives NaN, ``0 ** negative`` gives ``inf``. Python numbers follow
    Python's arithmetic, except that ``PowLayer(0.5).forward(-4.0)`` is a ``ValueError``
    saying so, never the complex number Python would return. An integer array stays integer
    only for a non-negative integer ``p``; otherwise it is computed in the default float dtype.

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

    @property
    def floating(self) -> bool:  # type: ignore[override]
        """Integer inputs stay integer only for a non-negative integer exponent."""
        return not (isinstance(self.p, int) and self.p >= 0)

    def forward(self, x: Any) -> Any:
        xp, x = self._operand(x)
        if xp is None:
            return self._commit(x, number_math("pow", x, self.p))
        if self.p == int(self.p) or not xp.isdtype(x.dtype, "real floating"):
            return self._commit(x, x ** self.p)
        # a negative base to a fractional power is NaN, whatever the backend's own rule (x as
        # where's first array: JAX places an empty result on that array's device)
        return self._commit(x, xp.where(x >= 0, x, xp.nan) ** self.p)

    def backward(self, dout: Any) -> Any:
        dout, xp, x = self._upstream(dout)
        p = self.p
        # x ** (p - 1) at p == 0 would be 1/0 at x == 0: the derivative of a constant is 0.
        if p == 0:
            local = x * 0
        elif xp is None:
            local = p * number_math("pow", x, p - 1)
        else:
            local = p * x ** (p - 1)
        return to_input(dout * local, self.x, xp)
