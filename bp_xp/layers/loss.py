"""Loss layers: softmax followed by cross-entropy, with the fused backward."""

from __future__ import annotations

from typing import Any

from .._backend import namespace_of
from ..functions import _label_hits, _nll_with_hits
from ._checks import SCALARS, require_forward
from .base import LossLayer

__all__ = ["SoftmaxWithLoss"]

Array = Any


class SoftmaxWithLoss(LossLayer):
    """Softmax followed by the cross-entropy loss, with the fused backward ``(y - t) / N``.

    ``forward(x, t)`` returns the mean loss as a 0-d array on ``x``'s device (no
    device-to-host read; ``float(loss)`` when you want a number). ``t`` is one-hot
    (``x``'s shape) or integer labels of any integer dtype. The loss is computed from
    the logits by log-sum-exp, so logits of +-1e3 stay finite.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.layers import SoftmaxWithLoss
    >>> layer = SoftmaxWithLoss()
    >>> round(float(layer.forward(np.array([[2.0, 0.0]]), np.array([0]))), 4)
    0.1269
    >>> layer.backward().round(4)
    array([[-0.1192,  0.1192]])
    """

    def __init__(self) -> None:
        self.loss: Array | None = None
        self.y: Array | None = None
        self.t: Array | None = None
        self._hits: Array | None = None  # boolean one-hot of integer labels, reused by backward

    def forward(self, x: Array, t: Array) -> Array:
        xp = namespace_of(x, t, names=("x", "t"))
        if x.ndim != 2:
            raise ValueError(f"SoftmaxWithLoss expects logits of shape (N, C), got {tuple(x.shape)}")
        # log-sum-exp once: the shifted exponentials give both log-probabilities and y
        shifted = x - xp.max(x, axis=-1, keepdims=True)
        e = xp.exp(shifted)
        total = xp.sum(e, axis=-1, keepdims=True)
        logp = shifted - xp.log(total)
        hits = _label_hits(xp, logp, t)
        self.y = e / total
        self.t = t
        self._hits = hits
        self.loss = _nll_with_hits(xp, logp, t, hits)
        return self.loss

    def backward(self, dout: Any = 1) -> Array:
        y = self.y
        require_forward(self, y)
        xp = namespace_of(y)
        if not isinstance(dout, SCALARS):
            namespace_of(dout, y, names=("dout", "y"))
            if dout.ndim != 0:
                raise ValueError(f"dout of a scalar loss must be 0-d, got shape {tuple(dout.shape)}")
            dout = xp.astype(dout, y.dtype, copy=False)
        hits = self._hits
        target = xp.astype(self.t if hits is None else hits, y.dtype, copy=False)
        return (y - target) * (dout / y.shape[0])
