"""``BackendSpec``: everything bp_xp may ask of a backend, declared in one typed object.

Each backend file (:mod:`bp_xp.backends.numpy`, ...) ends with one ``SPEC``; a backend
written outside bp_xp builds its own and hands it to :func:`bp_xp.backends.register_backend`.
Code outside ``bp_xp/backends/`` never asks which backend an array lives on: it asks the
backend's spec for a capability (``backend.spec.settle``, ``backend.spec.compile_function``)
and takes ``None`` to mean "this backend has no such thing; do the portable thing".
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["BackendSpec"]


def _no_hint(name: str) -> str:
    return ""


def _never(x: Any) -> bool:
    return False


def _no_errors() -> tuple[type[BaseException], ...]:
    return ()


@dataclasses.dataclass(frozen=True)
class BackendSpec:
    """What a backend can do, declared once: the backend protocol.

    Required fields say how to find, place and move arrays; the optional ones are
    capabilities a backend has or lacks (``None`` or the default: it lacks it).

    Attributes
    ----------
    name : str
        The name users type (``"torch"``), also the first part of ``"torch:cuda:0"``.
    module : str
        The module to import to know it is installed (its ``__version__`` is reported).
    namespace : str or module
        Its Array API namespace: a module path (``"array_api_compat.torch"``), imported
        when first needed, or the module itself.
    extra : str
        The pip extra of bp_xp that installs it (for install hints).
    is_array, is_namespace : callable
        Whether an object is an array of this backend; whether a module is its namespace.
    parse_device : callable
        ``None`` (the default device), text or a device object -> the library's device;
        raises :class:`bp_xp.BackendUnavailableError` for a device that does not exist here.
    format_device : callable
        A device -> its text (``"cuda:0"``), or ``None`` where the backend has one device.
    devices : callable
        ``() -> list`` of the devices that work here.
    dtypes : callable
        ``(xp, device) -> {name: dtype}``: the dtypes ``device`` supports.
    from_host, to_host : callable
        ``(host ndarray, device, chunks) -> array`` and ``array -> ndarray``, both copies.
        A device that holds no data (PyTorch's ``meta``) raises a clear error in ``to_host``.
    synchronize : callable
        ``(device, arrays)``: wait for the device's queued work (or for ``arrays``).
    aliases : tuple of str
        Other names (``"np"``, ``"pytorch"``).
    kernels : mapping
        Its fast kernels by the name :mod:`bp_xp.backends` dispatches on (``zero_where``,
        ``subtract_scaled``); see :func:`bp_xp.backends.fast_kernel`. Usually the backend
        file's own ``KERNELS`` dict.
    single_device : bool
        Every array sits on the one host device: :func:`bp_xp.namespace_of` skips the
        device check.
    device_attribute : bool
        ``x.device`` equals ``array_api_compat.device(x)`` and can be compared directly.
    chunks_of : callable or None
        For a chunked backend (Dask): ``x -> its chunking``, kept by :func:`bp_xp.backend_of`.
    missing_dtype_hint : callable
        ``name -> text`` appended when a dtype is missing (JAX: how to switch float64 on).
    probe_in_hints : bool
        Whether "Installed here: ..." may import it (CuPy: no, probing CUDA is slow).
    compile_function : callable or None
        How a training step is compiled: ``(fn, donate_argnums) -> compiled fn`` over tuples
        of arrays (JAX: ``jax.jit``). ``None``: :func:`bp_xp.compile_step` runs the eager step.
    compiled_kind : str
        What :attr:`bp_xp.CompiledStep.kind` reports for a compiled step (``"jax.jit"``).
    trace_errors : callable
        ``() -> tuple of exception types`` by which tracing says a value was read that
        a compiled function cannot read (JAX's ``ConcretizationTypeError``...).
    is_tracer : callable
        Whether an array is a placeholder of a trace (its values cannot be read).
    settle : callable or None
        How a lazy result is settled: ``arrays -> arrays`` of the same values computed and
        held (Dask). ``None``: arrays are computed when made, nothing to settle.
    enable_float64 : callable or None
        Switch on float64 for the process (JAX's ``jax_enable_x64``); ``None`` where
        float64 needs no switch.
    version_stamp : callable or None
        ``array -> stamp``: a value that changes when the array is changed in place (PyTorch's
        write counter, Dask's graph name, a checksum of host memory), or ``None`` where the
        array cannot change. :meth:`bp_xp.graph.Graph.backward` compares stamps to refuse a
        value changed between its forward and its backward. ``None`` (the field): not
        checked on this backend.
    safetensors_framework : str or None
        The ``framework`` of ``safetensors.safe_open`` that gives this backend's arrays
        straight on its device (``"pt"`` for PyTorch); :mod:`bp_xp.checkpoint` loads
        through it. ``None`` (the field): loaded through the host, as NumPy arrays.
    writes_in_place : callable or None
        ``array -> bool``: whether bp_xp may write this array in place (``x[...] = new``)
        where the book's code does (optimizers on a plain dict of parameters,
        ``numerical_gradient``): writeable NumPy arrays, torch tensors without
        ``requires_grad``, CuPy arrays. ``None`` (the field): never; values are replaced.
    request_host_devices : callable or None
        ``count -> bool``: ask the library, before it is imported, to offer ``count``
        devices on the host CPU (JAX: ``XLA_FLAGS``), so tests can use a device that is not
        the default one; ``False`` when it is too late or already decided otherwise.
    random_uniform : callable or None
        ``(seed, shape) -> array``: float32 numbers uniform in ``[0, 1)`` of ``shape``, drawn
        by a counter-based generator keyed by ``seed``, a 0-d unsigned integer array on the
        device, traced or not (JAX: ``jax.random.uniform(jax.random.key(seed), shape)``). The
        same seed gives the same numbers, compiled or eager. It is how a layer that draws
        random numbers (``Layer.draws_random``: Dropout) is compiled: the compiled step passes
        a new seed per call. ``None`` (the field): no such generator here; on a backend with
        ``compile_function``, :func:`bp_xp.compile_step` then refuses such layers.
    """

    name: str
    module: str
    namespace: str | ModuleType
    extra: str
    is_array: Callable[[Any], bool]
    is_namespace: Callable[[ModuleType], bool]
    parse_device: Callable[[Any], Any]
    format_device: Callable[[Any], str | None]
    devices: Callable[[], list[Any]]
    dtypes: Callable[[Any, Any], dict[str, Any]]
    from_host: Callable[[np.ndarray, Any, Any], Any]
    to_host: Callable[[Any], np.ndarray]
    synchronize: Callable[[Any, Sequence[Any]], None]
    aliases: tuple[str, ...] = ()
    kernels: Mapping[str, Callable[..., Any]] = dataclasses.field(default_factory=dict)
    single_device: bool = False
    device_attribute: bool = False
    chunks_of: Callable[[Any], Any] | None = None
    missing_dtype_hint: Callable[[str], str] = _no_hint
    probe_in_hints: bool = True
    compile_function: Callable[[Callable[..., Any], tuple[int, ...]], Callable[..., Any]] | None = None
    compiled_kind: str = "eager"
    trace_errors: Callable[[], tuple[type[BaseException], ...]] = _no_errors
    is_tracer: Callable[[Any], bool] = _never
    settle: Callable[[Sequence[Any]], list[Any]] | None = None
    enable_float64: Callable[[], None] | None = None
    request_host_devices: Callable[[int], bool] | None = None
    version_stamp: Callable[[Any], Any] | None = None
    safetensors_framework: str | None = None
    writes_in_place: Callable[[Any], bool] | None = None
    random_uniform: Callable[[Any, tuple[int, ...]], Any] | None = None

    def __post_init__(self) -> None:
        for field in ("name", "module", "extra"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value:
                raise TypeError(f"BackendSpec.{field} must be a non-empty string, got {value!r}")
        if ":" in self.name:
            raise ValueError(f"BackendSpec.name must not contain ':', got {self.name!r}")

    def xp(self) -> ModuleType:
        """The Array API namespace (imported on first use when given as a path)."""
        if isinstance(self.namespace, ModuleType):
            return self.namespace
        return importlib.import_module(self.namespace)

    @property
    def chunked(self) -> bool:
        """Whether arrays carry a chunking instead of a device (Dask)."""
        return self.chunks_of is not None
