"""The errors of backend and device choice.

They are defined here and re-exported as ``bp_xp.BackendError`` etc.; their
``__module__`` is ``"bp_xp"`` so that a traceback names them as users import them.
"""

from __future__ import annotations

__all__ = ["BackendError", "BackendMismatchError", "BackendUnavailableError", "DTypeError"]


class BackendError(ValueError):
    """Base class of bp_xp's backend and device errors.

    Examples
    --------
    >>> import bp_xp
    >>> issubclass(bp_xp.BackendMismatchError, bp_xp.BackendError)
    True
    """

    __module__ = "bp_xp"


class BackendUnavailableError(BackendError):
    """A backend, device or dtype was named that is unknown, not installed, or not working here.

    Examples
    --------
    >>> import bp_xp
    >>> bp_xp.resolve_backend("numpy:cuda")
    Traceback (most recent call last):
    ...
    bp_xp.BackendUnavailableError: backend 'numpy' has only the device 'cpu', not 'cuda'
    """

    __module__ = "bp_xp"


class BackendMismatchError(BackendError, TypeError):
    """Arrays from different backends, or on different devices, met in one computation.

    Examples
    --------
    >>> import bp_xp
    >>> a = bp_xp.to_device([1.0], "array_api_strict")
    >>> b = bp_xp.to_device([1.0], "array_api_strict:device1")
    >>> bp_xp.namespace_of(a, b, names=("a", "b"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    bp_xp.BackendMismatchError: bp_xp: arrays on different devices met in one computation: a is on ...
    """

    __module__ = "bp_xp"


class DTypeError(BackendError, TypeError):
    """A dtype was given where bp_xp needs another kind (an integer where a float must be).

    Examples
    --------
    >>> import bp_xp
    >>> bp_xp.resolve_backend("numpy").float_dtype("int32")
    Traceback (most recent call last):
    ...
    bp_xp.DTypeError: dtype 'int32' is not a float dtype; a network's dtype must be one of float32, ...
    """

    __module__ = "bp_xp"
