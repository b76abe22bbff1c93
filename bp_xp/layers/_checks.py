"""Argument checks shared by the layers: one wording for every layer's shape errors."""

from __future__ import annotations

from typing import Any, TypeVar

Array = Any
#: Python numbers, which the book's apple example feeds to MulLayer and AddLayer.
SCALARS = (bool, int, float, complex)

_Cached = TypeVar("_Cached")


def check_shape(layer: str, name: str, x: Array, expected: tuple[int, ...]) -> None:
    """Raise ``ValueError`` naming the layer when ``x`` (a backward input) has the wrong shape,
    ``TypeError`` when it is not an array at all (``Relu.backward(1.0)`` after an array forward).
    """
    if not hasattr(x, "shape"):
        raise TypeError(
            f"{layer}.backward: {name} must be an array of the forward output's shape "
            f"{tuple(expected)} (forward was given an array), got {type(x).__name__} {x!r:.40}"
        )
    if tuple(x.shape) != tuple(expected):
        raise ValueError(
            f"{layer}.backward: {name} must have the forward output's shape {tuple(expected)}, "
            f"got {tuple(x.shape)}"
        )


def require_forward(layer: Any, cached: _Cached | None) -> _Cached:
    """Return ``cached``; raise ``RuntimeError`` when it is ``None``: ``backward`` came
    before any ``forward``.

    Returning the value lets a caller write ``x = require_forward(self, self.x)`` and
    have ``x`` typed without ``None`` from there on.
    """
    if cached is None:
        raise RuntimeError(f"{type(layer).__name__}.backward called before forward")
    return cached
