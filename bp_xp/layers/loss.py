"""Loss layers: softmax followed by cross-entropy, with the fused backward."""

from __future__ import annotations

from typing import Any

from .._checks import require_array
from ..backends import namespace_of
from ..functions import LABELS_EXPECTED, label_hits, nll_with_hits
from ..functions import fused_softmax_loss as _fused_loss  # issue 22's fused kernel
from ._checks import SCALARS, require_forward
from ._contract import contract
from ._references import SOFTMAX_WITH_LOSS
from .base import LossLayer

__all__ = ["SoftmaxWithLoss"]

Array = Any


@contract(**SOFTMAX_WITH_LOSS)  # the conformance harness's samples and reference
class SoftmaxWithLoss(LossLayer):
    """Softmax followed by the cross-entropy loss, with the fused backward.

    ``forward(x, t)`` returns the mean loss as a 0-d array on ``x``'s device (no
    device-to-host read; ``float(loss)`` when you want a number). ``t`` is integer labels
    of any integer dtype (shape ``(N,)``, or a column ``(N, 1)`` as the book allows),
    one-hot rows, or any target rows of ``x``'s shape. The loss is
    computed from the logits by log-sum-exp, so logits of +-1e3 stay finite.

    ``backward`` is the exact gradient of that loss: ``(y * sum(t, axis=1) - t) / N``,
    the book's ``(y - t) / N`` whenever target rows sum to 1 (one-hot and integer
    labels). An integer label outside ``[0, C)`` gives a NaN loss and a NaN gradient row
    instead of being dropped (the rules are in :mod:`bp_xp.functions`).

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.layers import SoftmaxWithLoss
    >>> layer = SoftmaxWithLoss()
    >>> round(float(layer.forward(np.array([[2.0, 0.0]]), np.array([0]))), 4)
    0.1269
    >>> layer.backward().round(4)
    array([[-0.1192,  0.1192]])
    >>> float(layer.forward(np.array([[2.0, 0.0]]), np.array([2])))  # no class 2
    nan
    >>> layer.backward()
    array([[nan, nan]])
    """

    def __init__(self) -> None:
        self.loss: Array | None = None
        self.y: Array | None = None
        self.t: Array | None = None
        self._hits: Array | None = None  # boolean one-hot of integer labels, reused by backward
        self._nan_rows: Array | None = None  # (N, 1): 0, or NaN for a label out of range
        self._fused_backward: Any = None  # set when the backend's fused kernel ran forward

    def forward(self, x: Array, t: Array) -> Array:
        fused = _fused_loss(x, t, "SoftmaxWithLoss.forward")  # a backend kernel, if any
        if fused is not None:
            self.loss, self.y, self._fused_backward = fused
            self.t, self._hits, self._nan_rows = t, None, None
            return self.loss
        require_array(t, "SoftmaxWithLoss.forward", "t", LABELS_EXPECTED)
        xp = namespace_of(x, t, names=("x", "t"))
        if x.ndim != 2:
            raise ValueError(f"SoftmaxWithLoss expects logits of shape (N, C), got {tuple(x.shape)}")
        if t.ndim == 2 and t.shape[1] == 1 and xp.isdtype(t.dtype, "integral"):
            # a column of integer labels (the book's ch07/gradient_check.py passes (1, 1))
            t = xp.reshape(t, (t.shape[0],))
        # log-sum-exp once: the shifted exponentials give both log-probabilities and y
        shifted = x - xp.max(x, axis=-1, keepdims=True)
        e = xp.exp(shifted)
        total = xp.sum(e, axis=-1, keepdims=True)
        logp = shifted - xp.log(total)
        hits, nan_rows = label_hits(xp, logp, t, "SoftmaxWithLoss.forward")
        loss = nll_with_hits(xp, logp, t, hits, nan_rows)
        # committed only now: a forward that raised above left the layer as it was
        self.y, self.t, self.loss = e / total, t, loss
        self._hits, self._nan_rows, self._fused_backward = hits, nan_rows, None
        return self.loss

    def backward(self, dout: Any = 1) -> Array:
        y = require_forward(self, self.y)
        xp = namespace_of(y)
        if not isinstance(dout, SCALARS):
            namespace_of(dout, y, names=("dout", "y"))
            if dout.ndim != 0:
                raise ValueError(f"dout of a scalar loss must be 0-d, got shape {tuple(dout.shape)}")
            dout = xp.astype(dout, y.dtype, copy=False)
        scale = dout / y.shape[0]
        if self._fused_backward is not None:
            return self._fused_backward(scale)
        hits = self._hits
        if hits is None:  # target rows: d/dx of -sum(t * log softmax(x)) / N
            target = xp.astype(self.t, y.dtype, copy=False)
            mass = xp.sum(target, axis=-1, keepdims=True)
            return (y * mass - target) * scale
        if self._nan_rows is not None:
            scale = self._nan_rows + scale  # (N, 1): NaN rows for labels out of range
        return (y - xp.astype(hits, y.dtype, copy=False)) * scale
