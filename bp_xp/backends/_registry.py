"""The registry: which backends bp_xp knows, in the order it prefers them.

It holds :class:`~bp_xp.backends.BackendSpec` objects only; it imports no backend file
(the built-in ones register themselves through :mod:`bp_xp.backends._builtin`), so every
backend file may use it without an import cycle. A backend defined outside bp_xp joins
with :func:`register_backend` and leaves with :func:`unregister_backend`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ._errors import BackendError
from ._spec import BackendSpec

__all__ = ["backend_names", "get_spec", "installed_hint", "on_unregister", "register_backend",
           "spec_of", "unregister_backend"]

_SPECS: dict[str, BackendSpec] = {}
_ALIASES: dict[str, str] = {}
_FORGET: list[Callable[[BackendSpec], None]] = []


def register_backend(spec: BackendSpec, *, replace: bool = False) -> BackendSpec:
    """Make a backend known to bp_xp: ``resolve_backend(spec.name)`` and the matrix find it.

    Returns ``spec``. A name or alias already taken is refused unless ``replace``.

    Examples
    --------
    >>> import bp_xp
    >>> spec = bp_xp.backends.get_spec("numpy")
    >>> register_backend(spec)
    Traceback (most recent call last):
    ...
    bp_xp.BackendError: a backend named 'numpy' is already registered; pass replace=True ...
    """
    if not isinstance(spec, BackendSpec):
        raise TypeError(f"register_backend expects a BackendSpec, got {type(spec).__name__}")
    taken = [n for n in (spec.name, *spec.aliases)
             if (n in _SPECS or n in _ALIASES) and _ALIASES.get(n, n) != spec.name]
    if (spec.name in _SPECS or taken) and not replace:
        raise BackendError(f"a backend named {(taken or [spec.name])[0]!r} is already registered; "
                           "pass replace=True to replace it")
    if spec.name in _SPECS:
        unregister_backend(spec.name)
    _SPECS[spec.name] = spec
    for alias in spec.aliases:
        _ALIASES[alias] = spec.name
    return spec


def unregister_backend(name: str) -> None:
    """Forget a backend registered with :func:`register_backend` (and what was cached about it)."""
    spec = _SPECS.pop(name, None)
    if spec is None:
        raise BackendError(f"no backend named {name!r} is registered")
    for alias in spec.aliases:
        _ALIASES.pop(alias, None)
    for forget in _FORGET:
        forget(spec)


def on_unregister(callback: Callable[[BackendSpec], None]) -> None:
    """Call ``callback(spec)`` when a backend is unregistered (caches drop what they learned)."""
    _FORGET.append(callback)


def backend_names() -> tuple[str, ...]:
    """The names of every registered backend, in the order bp_xp prefers them.

    Examples
    --------
    >>> backend_names()[:3]
    ('numpy', 'cupy', 'torch')
    """
    return tuple(_SPECS)


def get_spec(name: str) -> BackendSpec | None:
    """The spec registered under ``name`` or one of its aliases, or ``None``."""
    return _SPECS.get(_ALIASES.get(name, name))


def spec_of(x: Any) -> BackendSpec | None:
    """The spec of the backend that owns array ``x``, or ``None`` when no registered one does.

    Examples
    --------
    >>> import numpy as np
    >>> spec_of(np.zeros(2)).name, spec_of([1.0])
    ('numpy', None)
    """
    for spec in _SPECS.values():
        if spec.is_array(x):
            return spec
    return None


def installed_hint() -> str:
    """``"Installed here: numpy, torch, ..."``: the backends importable on this machine.

    Backends that say ``probe_in_hints=False`` (CuPy: probing CUDA inside an error message
    would be slow) are left out; :func:`bp_xp.available_backends` tells whether they work.
    """
    names = []
    for spec in _SPECS.values():
        if not spec.probe_in_hints:
            continue
        try:
            importlib.import_module(spec.module)
            names.append(spec.name)
        except ImportError:
            pass
    return f"Installed here: {', '.join(names)}."
