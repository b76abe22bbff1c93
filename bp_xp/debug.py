"""Opt-in debug checks: the value checks a training step cannot afford.

A training step never reads array values back to the host (that would stall a GPU and
force a Dask graph), so an integer label out of range cannot raise an error there. The
rule instead is that such a row gives a NaN loss and a NaN gradient row (see
:func:`bp_xp.functions.softmax_cross_entropy`), on every backend. With debug checks on,
bp_xp also reads the labels back and raises :class:`LabelError` naming the bad value,
its position and the valid range, before anything is computed.

Turn them on for a whole program with ``bp_xp.debug_checks(True)`` or the environment
variable ``BP_XP_DEBUG_CHECKS=1``, or for a block with ``with bp_xp.checking():``. The setting is a
:class:`contextvars.ContextVar`, so threads and asyncio tasks each see their own.
Values being traced by ``jax.jit`` cannot be read and are not checked.

Examples
--------
>>> import numpy as np
>>> from bp_xp.debug import checking
>>> from bp_xp.functions import softmax_cross_entropy
>>> x = np.zeros((2, 3))
>>> float(softmax_cross_entropy(x, np.array([0, 3])))  # label 3 of 3 classes
nan
>>> with checking():
...     softmax_cross_entropy(x, np.array([0, 3]))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
bp_xp.LabelError: softmax_cross_entropy: 1 of 2 integer labels lie outside [0, 3) ...: 3 at index (1,)...
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from typing import Any

import numpy as np  # host-side only: the checks run on a host copy of the labels

from .backends import is_tracer, to_numpy

__all__ = ["LabelError", "checking", "debug_checks"]

_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "bp_xp_debug_checks", default=os.environ.get("BP_XP_DEBUG_CHECKS", "") not in ("", "0"))


class LabelError(ValueError):
    """Integer class labels outside ``[0, num_classes)``, found by a debug check.

    Examples
    --------
    >>> import bp_xp.debug
    >>> issubclass(bp_xp.debug.LabelError, ValueError)
    True
    """

    __module__ = "bp_xp"


def debug_checks(enabled: bool | None = None) -> bool:
    """Whether debug checks are on; with ``enabled``, switch them and return the old setting.

    Examples
    --------
    >>> from bp_xp.debug import debug_checks
    >>> old = debug_checks(True)
    >>> debug_checks()
    True
    >>> _ = debug_checks(old)
    """
    current = _ENABLED.get()
    if enabled is not None:
        _ENABLED.set(bool(enabled))
    return current


@contextlib.contextmanager
def checking(enabled: bool = True) -> Iterator[None]:
    """Debug checks on (or off, with ``enabled=False``) inside a ``with`` block."""
    token = _ENABLED.set(bool(enabled))
    try:
        yield
    finally:
        _ENABLED.reset(token)


def check_labels(t: Any, num_classes: int, where: str) -> None:
    """With debug checks on, raise :class:`LabelError` for labels outside ``[0, num_classes)``.

    Off (the default) this costs one context-variable read and reads nothing back.
    """
    if not _ENABLED.get() or is_tracer(t):
        return
    host = np.asarray(to_numpy(t))
    bad = (host < 0) | (host >= num_classes)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise LabelError(
            f"{where}: {int(bad.sum())} of {host.size} integer labels lie outside "
            f"[0, {num_classes}) for {num_classes} classes: {host[first]} at index {first}; "
            f"labels must be class indices 0..{num_classes - 1}"
        )
