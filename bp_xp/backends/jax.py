"""JAX: CPU, GPU and TPU devices (``"jax:cpu"``, ``"jax:gpu:1"``).

Its namespace is ``jax.numpy`` (Array API conforming since JAX 0.4.32). 64-bit dtypes
exist only after ``jax.config.update("jax_enable_x64", True)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import array_api_compat
import numpy as np

from ._errors import BackendUnavailableError
from ._registry import installed_hint
from ._spec import BackendSpec
from ._util import require, split_index

NAME = "jax"
ALIASES: tuple[str, ...] = ()
MODULE = "jax"
NAMESPACE = "jax.numpy"
EXTRA = "jax"

is_array = array_api_compat.is_jax_array
is_namespace = array_api_compat.is_jax_namespace

_X64 = ("float64", "int64", "uint64", "complex128")


def parse_device(device: Any) -> Any:
    """A JAX device of this process from ``None`` (the default), ``"cpu"``, ``"gpu:1"`` or a device."""
    jax = require("jax", NAME, EXTRA)
    if device is None:
        return jax.devices()[0]
    if not isinstance(device, str):
        if device in jax.devices() or device in jax.devices("cpu"):
            return device
        raise BackendUnavailableError(f"{device!r} is not a JAX device of this process")
    platform, index = split_index(device)
    platform = {"": "gpu", "cuda": "gpu"}.get(platform, platform)
    try:
        found = jax.devices(platform)
    except RuntimeError as exc:
        raise BackendUnavailableError(
            f"JAX has no {platform!r} devices here ({exc}). {installed_hint()}"
        ) from exc
    index = 0 if index is None else index
    if index >= len(found):
        raise BackendUnavailableError(
            f"JAX device {device!r} does not exist; {platform!r} has {len(found)} device(s)"
        )
    return found[index]


def format_device(device: Any) -> str:
    """A JAX device -> ``"cpu:0"``, ``"gpu:1"``."""
    return f"{device.platform}:{device.id}"


def devices() -> list[Any]:
    """The devices of JAX's default platform."""
    return list(require("jax", NAME, EXTRA).devices())


def dtypes(xp: Any, device: Any) -> dict[str, Any]:
    """The dtypes of ``device``, without the 64-bit ones unless ``jax_enable_x64`` is on."""
    import jax

    found = dict(xp.__array_namespace_info__().dtypes(device=device))
    config: Any = jax.config  # JAX adds its options as attributes at run time: no stub has them
    if not config.jax_enable_x64:
        for name in _X64:
            found.pop(name, None)
    return found


def missing_dtype_hint(name: str) -> str:
    """What to do when ``name`` is not among :func:`dtypes`."""
    if name in _X64:
        return " Enable it with jax.config.update('jax_enable_x64', True) before creating arrays."
    return ""


def from_host(host: np.ndarray, device: Any, chunks: Any) -> Any:
    """A new array on ``device``, by an explicit copy (``jax.device_put``).

    Explicit, so that ``jax.transfer_guard("disallow")`` lets it through: a compiled step
    copies its dropout seeds this way in every call (see :func:`random_uniform`).
    """
    import jax

    return jax.device_put(host, device, may_alias=False)


def to_host(x: Any) -> np.ndarray:
    """A writeable NumPy copy (``np.asarray`` alone may be a read-only view of a CPU buffer)."""
    return np.array(x, copy=True)


def synchronize(device: Any, arrays: Sequence[Any]) -> None:
    """Wait for ``arrays`` (or, with none given, for the work queued on ``device``)."""
    import jax
    import jax.numpy as jnp

    if arrays:
        jax.block_until_ready(arrays)
    else:  # a device runs its work in order: when a new kernel is done, all earlier ones are
        (jnp.zeros((), device=device) + 1).block_until_ready()



def compile_function(fn: Callable[..., Any], donate_argnums: tuple[int, ...]) -> Callable[..., Any]:
    """``jax.jit(fn)``: a training step traced once per input signature, compiled by XLA.

    The arguments at ``donate_argnums`` are donated: XLA may write the results into their
    buffers, and the caller must not use them after the call.
    """
    import jax

    return jax.jit(fn, donate_argnums=donate_argnums)


def trace_errors() -> tuple[type[BaseException], ...]:
    """The errors by which JAX says traced code tried to read a value it cannot know."""
    import jax

    return (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
            jax.errors.TracerBoolConversionError, jax.errors.TracerIntegerConversionError)


def is_tracer(x: Any) -> bool:
    """Whether ``x`` is a tracer of ``jax.jit`` (its values cannot be read)."""
    import jax

    return isinstance(x, jax.core.Tracer)


def random_uniform(seed: Any, shape: tuple[int, ...]) -> Any:
    """float32 numbers uniform in ``[0, 1)``: ``jax.random.uniform(jax.random.key(seed), shape)``.

    ``seed`` is a 0-d integer array (a tracer inside ``jax.jit``): the numbers are a pure
    function of it (JAX's counter-based threefry generator), so a compiled step and an eager
    call given the same seed draw the same numbers, on the seed's device.
    """
    import jax
    import jax.numpy as jnp

    return jax.random.uniform(jax.random.key(seed), shape, dtype=jnp.float32)


def request_host_devices(count: int) -> bool:
    """Ask XLA for ``count`` CPU devices (``XLA_FLAGS``); possible only before jax is imported.

    Leaves ``XLA_FLAGS`` alone when it already names a device count.
    """
    import os
    import sys

    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return f"xla_force_host_platform_device_count={count}" in flags
    if "jax" in sys.modules:
        return False
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()
    return True


def enable_float64() -> None:
    """``jax_enable_x64``: switch JAX's 64-bit dtypes on, before any array is made."""
    import jax

    jax.config.update("jax_enable_x64", True)


def zero_where(mask: Any, x: Any) -> Any:
    """``where(mask, 0, x)`` for an empty ``x``, kept on ``x``'s device; ``None`` otherwise.

    JAX places ``jnp.where(mask, 0, x)`` of a zero-size ``x`` on its *default* device, so an
    empty batch on ``jax:cpu:1`` (or a second GPU) would leave its device after a ReLU;
    ``where(~mask, x, 0)`` gives the same (no) values and stays. Non-empty arrays take the
    portable spelling (``None``).
    """
    if x.size:
        return None
    import jax.numpy as jnp

    return jnp.where(~mask, x, 0)


#: The kernels of this backend, by the name :mod:`bp_xp.backends` dispatches on.
KERNELS: dict[str, Callable[..., Any]] = {"zero_where": zero_where}


#: This backend, declared for the registry (keep it last: it reads the definitions above).
SPEC = BackendSpec(
    name=NAME, aliases=ALIASES, module=MODULE, namespace=NAMESPACE, extra=EXTRA,
    is_array=is_array, is_namespace=is_namespace, parse_device=parse_device,
    format_device=format_device, devices=devices, dtypes=dtypes, from_host=from_host,
    to_host=to_host, synchronize=synchronize,
    kernels=KERNELS, missing_dtype_hint=missing_dtype_hint, compile_function=compile_function,
    compiled_kind="jax.jit", trace_errors=trace_errors, is_tracer=is_tracer,
    enable_float64=enable_float64, request_host_devices=request_host_devices,
    random_uniform=random_uniform,
)

# --------------------------------------------------------------------------------------
# Native convolution and pooling kernels (issue 22): XLA's convolution and reduce_window
# --------------------------------------------------------------------------------------
#
# The backward passes are JAX's own derivatives (``jax.vjp``) of XLA's convolution and
# max ``reduce_window``, so under ``compile_step`` the whole step is one XLA program with
# native convolutions, and an input gradient nobody uses is removed by XLA.


def _floats(*arrays: Any) -> bool:
    import jax.numpy as jnp

    dtype = arrays[0].dtype
    return dtype in (jnp.float32, jnp.float64) and all(a.dtype == dtype for a in arrays)


def conv2d(x: Any, W: Any, b: Any, stride: int, pad: int) -> Any:
    """``(out, backward)`` by ``lax.conv_general_dilated`` (NCHW, OIHW) and its ``jax.vjp``.

    ``backward(dout, need_dx)`` gives ``(dx or None, dW, db)``. Output sizes are floored.
    """
    import jax
    from jax import lax

    if not _floats(x, W, b):
        return None

    def convolve(x: Any, W: Any) -> Any:
        return lax.conv_general_dilated(x, W, (stride, stride), [(pad, pad), (pad, pad)],
                                        dimension_numbers=("NCHW", "OIHW", "NCHW"))

    out, pullback = jax.vjp(convolve, x, W)
    out = out + b.reshape(1, -1, 1, 1)

    def backward(dout: Any, need_dx: bool) -> tuple[Any, Any, Any]:
        dx, dW = pullback(dout)
        return (dx if need_dx else None), dW, dout.sum(axis=(0, 2, 3))

    return out, backward


def max_pool2d(x: Any, pool_h: int, pool_w: int, stride: int, pad: int) -> Any:
    """``(out, backward)`` by ``lax.reduce_window`` (max) over the zero-padded input and its
    ``jax.vjp``, which sends each gradient to the first maximum of its window."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    if not _floats(x):
        return None

    def pool(x: Any) -> Any:
        img = jnp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
        # a concrete NumPy -inf: JAX then sees max pooling (a differentiable primitive)
        return lax.reduce_window(img, np.array(-np.inf, dtype=x.dtype), lax.max,
                                 (1, 1, pool_h, pool_w), (1, 1, stride, stride), "VALID")

    out, pullback = jax.vjp(pool, x)
    return out, lambda dout: pullback(dout)[0]


# Registered in place into this file's fast-kernel table: the dict its ``KERNELS`` names or,
# where the file declares its backend as a ``SPEC``, that spec's ``kernels`` (never replaced,
# so that whatever already holds the table sees these kernels too).
_TABLE: dict[str, Any] = (globals()["SPEC"].kernels if "SPEC" in globals()
                          else globals().setdefault("KERNELS", {}))
_TABLE.update({"conv2d": conv2d, "max_pool2d": max_pool2d})
KERNELS = _TABLE
