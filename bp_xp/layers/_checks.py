"""Argument checks shared by the layers: one wording for every layer's shape errors."""

from __future__ import annotations

from typing import Any, TypeVar

Array = Any
#: Python numbers, which the book's apple example feeds to MulLayer and AddLayer.
SCALARS = (bool, int, float, complex)

_Cached = TypeVar("_Cached")


class ShapeError(ValueError):
    """Arrays whose shapes do not fit a layer: one exception type on every backend.

    Raised by bp_xp's own checks before any compute, so that the same mistake gives the
    same error on NumPy (whose own would be ``ValueError``), PyTorch (``RuntimeError``) and
    JAX (``TypeError``). A subclass of ``ValueError``.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.layers import MulLayer
    >>> MulLayer().forward(np.ones(3), np.ones(2))
    Traceback (most recent call last):
    ...
    bp_xp.layers.ShapeError: MulLayer.forward: x of shape (3,) and y of shape (2,) do not ...
    """

    __module__ = "bp_xp.layers"


#: The attribute a train/eval layer sets in an inference forward (``train_flg=False``):
#: such a forward keeps nothing to differentiate, and :func:`require_forward` says so.
INFERENCE = "_inference_forward"


#: Keyed by ``(type(dtype), dtype)``: dtypes of different libraries are never compared
#: (array-api-strict warns when its dtypes meet NumPy's).
_KINDS: dict[tuple[type, Any], str] = {}


def dtype_kind(xp: Any, dtype: Any) -> str:
    """``"float"``, ``"int"``, ``"bool"`` or ``"other"`` (complex): ``xp.isdtype`` once per
    dtype, then a dict lookup. ``isdtype`` costs about 2 us per call through
    array-api-compat, too much for a check in every ``Relu.forward``.
    """
    key = (type(dtype), dtype)
    try:
        return _KINDS[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable dtype object: no caching
        return _kind(xp, dtype)
    kind = _KINDS[key] = _kind(xp, dtype)
    return kind


def _kind(xp: Any, dtype: Any) -> str:
    for kind, name in (("float", "real floating"), ("int", "integral"), ("bool", "bool")):
        if xp.isdtype(dtype, name):
            return kind
    return "other"


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
        raise ShapeError(
            f"{layer}.backward: {name} must have the forward output's shape {tuple(expected)}, "
            f"got {tuple(x.shape)}"
        )


def require_forward(layer: Any, cached: _Cached | None) -> _Cached:
    """Return ``cached``; raise ``RuntimeError`` when it is ``None``: ``backward`` came
    before any ``forward``, or after an inference forward (``train_flg=False``), which
    keeps no cache (so that backward never answers for an older training batch).

    Returning the value lets a caller write ``x = require_forward(self, self.x)`` and
    have ``x`` typed without ``None`` from there on.
    """
    if cached is None:
        name = type(layer).__name__
        if getattr(layer, INFERENCE, False):
            raise RuntimeError(
                f"{name}.backward after forward(x, train_flg=False): an inference forward keeps "
                f"nothing to differentiate; run forward(x, train_flg=True) before backward")
        raise RuntimeError(f"{name}.backward called before forward")
    return cached
