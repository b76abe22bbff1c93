"""TEMPORARY shim: the backend code now lives in :mod:`bp_xp.backends` (one file per backend).

Modules still importing ``from ._backend import ...`` keep working until they switch to
``from .backends import ...``; then this file is deleted. Nothing new should import it.
"""

from __future__ import annotations

from .backends import *  # noqa: F403
from .backends import (  # noqa: F401  names modules and tests import from here today
    BACKEND_NAMES,
    Backend,
    BackendError,
    BackendMismatchError,
    BackendUnavailableError,
    DTypeError,
    available_backends,
    backend_info,
    backend_of,
    dtype_name,
    float_dtype,
    namespace_of,
    resolve_backend,
    to_device,
    to_numpy,
    zero_where,
)
from .backends import __all__  # noqa: F401

_dtype_name = dtype_name  # the old private normaliser, for code not yet switched
