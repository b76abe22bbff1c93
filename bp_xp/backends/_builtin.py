"""The backends that ship with bp_xp, registered in the order bp_xp prefers them.

Each is one file of this package ending with its ``SPEC``; importing this module puts
them in the registry (:mod:`bp_xp.backends._registry`). Importing a backend file imports
no array library: each imports its library inside the functions that need it.
"""

from __future__ import annotations

from . import array_api_strict, cupy, dask, jax, numpy, torch
from ._registry import register_backend

__all__ = ["BUILTIN_NAMES"]

#: The built-in backends, in the order bp_xp prefers them.
BUILTIN_NAMES: tuple[str, ...] = tuple(
    register_backend(module.SPEC).name
    for module in (numpy, cupy, torch, jax, dask, array_api_strict)
)
