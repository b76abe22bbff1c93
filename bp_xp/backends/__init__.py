"""Backends: the one place that knows concrete array libraries.

Each backend is one file of this package (:mod:`~bp_xp.backends.numpy`,
:mod:`~bp_xp.backends.cupy`, :mod:`~bp_xp.backends.torch`, :mod:`~bp_xp.backends.jax`,
:mod:`~bp_xp.backends.dask`, :mod:`~bp_xp.backends.array_api_strict`) that ends with one
:class:`BackendSpec`: a typed declaration of what the backend can do (find its arrays,
parse and list devices, list dtypes, move data to and from the host, synchronize, its fast
kernels, and the optional capabilities: compiling a training step, settling lazy results,
recognising tracers, switching float64 on). A backend defined outside bp_xp is the same
object, handed to :func:`register_backend` (see ``docs/backends.md``, "A new backend").

Layers, functions and optimizers never name a backend: they ask :func:`namespace_of`
for the namespace of their inputs. Code outside this package asks a backend's spec for a
capability (``backend.spec.settle``) and never compares backend names. Users pick where
arrays live with a string such as ``"torch:cuda:0"`` through :func:`resolve_backend`;
host data crosses with :meth:`Backend.asarray` / :func:`to_device` and comes back with
:func:`to_numpy`.

This module only re-exports. Inside the package, imports go one way:
``_errors`` < ``_spec``, ``_registry``, ``_util`` < the backend files < ``_builtin`` (registers
them) < ``_namespace`` < ``_api``, ``_kernels``.
"""

from ._api import (
    BACKEND_NAMES,
    FLOAT_DTYPES,
    Backend,
    available_backends,
    backend_info,
    backend_of,
    dtype_name,
    enable_float64,
    float_dtype,
    is_tracer,
    resolve_backend,
    settle,
    to_device,
    to_numpy,
)
from ._errors import BackendError, BackendMismatchError, BackendUnavailableError, DTypeError
from ._kernels import (
    column_major,
    fast_kernel,
    matmul_layout,
    relu,
    relu_backward,
    subtract_scaled,
    weight_gradient,
    zero_where,
)
from ._namespace import describe_place, namespace_of
from ._native import conv2d, max_pool2d, softmax_cross_entropy_labels
from ._registry import (
    backend_names,
    get_spec,
    installed_hint,
    register_backend,
    spec_of,
    unregister_backend,
)
from ._spec import BackendSpec

__all__ = [
    "BACKEND_NAMES",
    "FLOAT_DTYPES",
    "Backend",
    "BackendError",
    "BackendMismatchError",
    "BackendSpec",
    "BackendUnavailableError",
    "DTypeError",
    "available_backends",
    "backend_info",
    "backend_names",
    "backend_of",
    "column_major",
    "conv2d",
    "describe_place",
    "dtype_name",
    "enable_float64",
    "fast_kernel",
    "float_dtype",
    "get_spec",
    "installed_hint",
    "is_tracer",
    "matmul_layout",
    "max_pool2d",
    "namespace_of",
    "register_backend",
    "relu",
    "relu_backward",
    "resolve_backend",
    "settle",
    "softmax_cross_entropy_labels",
    "spec_of",
    "subtract_scaled",
    "to_device",
    "to_numpy",
    "unregister_backend",
    "weight_gradient",
    "zero_where",
]
