"""PyTorch: CPU, CUDA and MPS devices (``"torch:cpu"``, ``"torch:cuda:1"``), and ``meta``.

``"torch:meta"`` holds tensors without data (shapes and dtypes only): a stand-in for a GPU
in tests, since any read back to the host, or any tensor made on another device, fails.

Its Array API namespace is ``array_api_compat.torch``. It also holds PyTorch's fast
kernels (:data:`KERNELS`), which :mod:`bp_xp.backends` dispatches to for torch tensors:
the bitwise :func:`zero_where` for large CPU tensors and the one-kernel
:func:`subtract_scaled` of the optimizer update. Each gives
what the portable spelling gives (bit for bit, or within one rounding) and returns
``None`` where it does not apply.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import array_api_compat
import numpy as np

from ._errors import BackendError, BackendUnavailableError
from ._registry import installed_hint
from ._spec import BackendSpec
from ._util import require

NAME = "torch"
ALIASES = ("pytorch",)
MODULE = "torch"
NAMESPACE = "array_api_compat.torch"
EXTRA = "torch"

is_array = array_api_compat.is_torch_array
is_namespace = array_api_compat.is_torch_namespace


def parse_device(device: Any) -> Any:
    """A ``torch.device`` that exists here, from ``None`` (CPU), text or a ``torch.device``."""
    torch = require("torch", NAME, EXTRA)
    try:
        dev = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as exc:
        raise BackendUnavailableError(
            f"cannot read torch device {device!r}: {exc}; expected e.g. 'cpu', 'cuda', 'cuda:0'"
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"torch device {str(dev)!r} was asked for but torch.cuda is not available here "
                f"(torch {torch.__version__}). {installed_hint()}"
            )
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        if dev.index >= torch.cuda.device_count():
            raise BackendUnavailableError(
                f"torch device {str(dev)!r} does not exist; this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise BackendUnavailableError("torch device 'mps' was asked for but is not available here")
    elif dev.type not in ("cpu", "cuda", "mps", "meta"):
        raise BackendUnavailableError(f"torch device type {dev.type!r} is not supported by bp_xp")
    return dev


def format_device(device: Any) -> str:
    """``torch.device("cuda", 0)`` -> ``"cuda:0"``."""
    return str(device)


def devices() -> list[Any]:
    """The CPU, then every CUDA device, then MPS where it works."""
    torch = require("torch", NAME, EXTRA)
    found = [torch.device("cpu")]
    found += [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        found.append(torch.device("mps"))
    return found


def dtypes(xp: Any, device: Any) -> dict[str, Any]:
    """The dtypes ``device`` supports."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's info warns about device types it probes
        return dict(xp.__array_namespace_info__().dtypes(device=device))


def from_host(host: np.ndarray, device: Any, chunks: Any) -> Any:
    """A new tensor on ``device`` (``torch.tensor`` always copies)."""
    import torch

    return torch.tensor(host, device=device)


def to_host(x: Any) -> np.ndarray:
    """A NumPy copy; for a CPU tensor ``.numpy()`` alone would share the tensor's memory.

    A tensor on the ``meta`` device has a shape and a dtype but no values: reading it is
    refused with a :class:`bp_xp.BackendError` that says so.
    """
    if x.device.type == "meta":
        raise BackendError(
            f"a torch tensor on the 'meta' device (shape {tuple(x.shape)}, {x.dtype}) holds no "
            "values, so it cannot be read back to the host (evaluation, saving, to_numpy and "
            "printing values need a device with data, e.g. 'torch:cpu')"
        )
    t = x.detach().resolve_conj().resolve_neg()
    t = t.clone() if t.device.type == "cpu" else t.cpu()
    return t.numpy()


def synchronize(device: Any, arrays: Sequence[Any]) -> None:
    """Wait for the queued kernels of ``device`` (CPU work is already done)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# Below this many elements torch.where's fixed cost wins over the bitwise path's three calls.
_BITWISE_MIN_SIZE = 65536


def zero_where(mask: Any, x: Any) -> Any:
    """``where(mask, 0, x)`` by bit operations for large CPU tensors, or ``None`` where it does not apply.

    Same bits as ``torch.where`` (see the NumPy backend's :func:`zero_where`); only for
    float32/float64 tensors that do not require grad, and of at least 65,536 elements,
    below which ``torch.where``'s fixed cost is smaller.
    """
    import torch

    integer = {torch.float32: torch.int32, torch.float64: torch.int64}.get(x.dtype)
    if (integer is None or mask.dtype != torch.bool or x.device.type != "cpu"
            or x.requires_grad or x.numel() < _BITWISE_MIN_SIZE):
        return None
    bits = mask.to(integer)  # 1 where masked
    bits -= 1  # 0 where masked, all ones elsewhere
    bits &= x.view(integer)
    return bits.view(x.dtype)


def subtract_scaled(a: Any, b: Any, scale: float) -> Any:
    """``a - scale * b`` in one kernel, ``torch.sub(a, b, alpha=scale)``: a new tensor.

    The portable spelling makes two passes over memory and allocates twice; this is the
    cost of PyTorch's own eager SGD step. ``None`` when ``b`` is not a tensor.
    """
    import torch

    if type(b) is not type(a):
        return None
    return torch.sub(a, b, alpha=scale)


#: The fast kernels of this backend, by the name :mod:`bp_xp.backends` dispatches on.
KERNELS: dict[str, Callable[..., Any]] = {
    "zero_where": zero_where,
    "subtract_scaled": subtract_scaled,
}


def version_stamp(x: Any) -> Any:
    """PyTorch's count of in-place writes to the tensor."""
    try:
        return x._version
    except RuntimeError:  # an inference-mode tensor: it cannot be changed in place
        return None


#: This backend, declared for the registry (keep it last: it reads the definitions above).
SPEC = BackendSpec(
    name=NAME, aliases=ALIASES, module=MODULE, namespace=NAMESPACE, extra=EXTRA,
    is_array=is_array, is_namespace=is_namespace, parse_device=parse_device,
    format_device=format_device, devices=devices, dtypes=dtypes, from_host=from_host,
    to_host=to_host, synchronize=synchronize,
    kernels=KERNELS, device_attribute=True,
    version_stamp=version_stamp,
    safetensors_framework="pt",
)
