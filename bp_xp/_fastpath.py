"""Backend fast paths of the optimizer update, kept apart from the portable rules.

The portable spelling ``param - lr * grad`` makes two passes over memory and allocates
twice (``lr * grad``, then the difference). PyTorch fuses it into one kernel,
``torch.sub(param, grad, alpha=lr)``, which is what its own eager SGD costs; the
difference is a few percent of a CPU training step of a wide network. The result is a
new tensor, as on every other backend: nothing is updated in place.

This module is the temporary home of the fast path; it belongs with the other PyTorch
specifics in ``bp_xp/backends/torch.py`` once that package has settled.
"""

from __future__ import annotations

from typing import Any

__all__ = ["subtract_scaled"]

Array = Any

# Array types seen so far, by whether they are torch tensors (no torch import needed).
_IS_TORCH: dict[type, bool] = {}


def _is_torch(kind: type) -> bool:
    known = _IS_TORCH.get(kind)
    if known is None:
        known = _IS_TORCH[kind] = kind.__module__.split(".")[0] == "torch"
    return known


def subtract_scaled(a: Array, b: Array, scale: float) -> Array:
    """``a - scale * b`` as a new array; one fused kernel for torch tensors.

    ``scale`` is a Python float, so the result keeps ``a``'s dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp._fastpath import subtract_scaled
    >>> subtract_scaled(np.array([1.0, 2.0]), np.array([2.0, 2.0]), 0.5)
    array([0., 1.])
    """
    kind = type(a)
    if type(b) is kind and _is_torch(kind):
        import torch

        return torch.sub(a, b, alpha=scale)
    return a - scale * b
