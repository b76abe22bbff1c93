"""Small helpers the backend files share: importing a backend with an install hint, device text."""

from __future__ import annotations

import importlib
from types import ModuleType

from ._errors import BackendUnavailableError
from ._registry import installed_hint

__all__ = ["install_hint", "require", "split_index"]


def install_hint(extra: str) -> str:
    """The one phrasing bp_xp uses to say how to install an optional backend.

    Examples
    --------
    >>> install_hint("torch")
    'install it from a bp_xp checkout with: pip install -e ".[torch]"'
    """
    return f'install it from a bp_xp checkout with: pip install -e ".[{extra}]"'


def require(module: str, backend: str, extra: str) -> ModuleType:
    """Import ``module`` for ``backend``, or explain how to install it.

    Examples
    --------
    >>> require("numpy", "numpy", "numpy").__name__
    'numpy'
    >>> require("no_such_module_here", "nosuch", "nosuch")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    bp_xp.BackendUnavailableError: backend 'nosuch' is not installed (No module named ...
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend {backend!r} is not installed ({exc}); {install_hint(extra)}. {installed_hint()}"
        ) from exc


def split_index(text: str) -> tuple[str, int | None]:
    """``"gpu:1"`` -> ``("gpu", 1)``; ``"1"`` -> ``("", 1)``; ``"cpu"`` -> ``("cpu", None)``.

    Examples
    --------
    >>> split_index("gpu:1"), split_index("1"), split_index("cpu")
    (('gpu', 1), ('', 1), ('cpu', None))
    """
    head, _, tail = text.rpartition(":")
    if tail.isdigit():
        return head, int(tail)
    return text, None
