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


def matmul_layout(W: Any) -> Any:
    """``W`` (in, out) stored column-major: the layout of ``torch.nn.Linear``'s weight.

    ``torch.nn.Linear`` keeps its weight as (out, in) rows, which is bp_xp's (in, out)
    matrix in column-major order, and PyTorch's matrix products are tuned for that
    operand: measured on the CPU (MKL), ``x @ W`` of the book's 784x50 layer in float64
    took about 0.7x the time with this layout, and a whole step of the book's net 0.84x
    PyTorch's eager step against 1.21x with row-major weights. A copy; the values are
    the same. ``None`` for what is not a 2-D float tensor or is already column-major.
    """
    if not _plain(W):
        return None
    return column_major(W)


def column_major(x: Any) -> Any:
    """A 2-D tensor stored column by column (same values); ``None`` when it already is."""
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2 or x.stride() == (1, x.shape[0]):
        return None
    return x.t().contiguous().t()


def weight_gradient(x: Any, dout: Any, W: Any) -> Any:
    """``x.T @ dout`` in the layout of ``W``: ``(dout.T @ x).T`` for column-major weights.

    PyTorch's own Linear backward computes the weight gradient this way round, so the
    gradient matches its weight's layout and the optimizer's update reads both in order.
    ``None`` (the portable ``x.T @ dout``) for row-major weights.
    """
    if W.ndim != 2 or W.stride() != (1, W.shape[0]) or type(x) is not type(W):
        return None
    return (dout.T @ x).T


def relu(x: Any) -> Any:
    """``torch.relu(x)``: one pass, no boolean mask (the ReLU layer keeps the output).

    ``None`` for what is not a float32/float64 tensor without grad (integers: the portable
    mask path).
    """
    import torch

    return torch.relu(x) if _plain(x) else None


def relu_backward(dout: Any, out: Any) -> Any:
    """``dout`` zeroed where ``out <= 0``: ATen's ``threshold_backward``, PyTorch's own ReLU
    backward. ``None`` unless ``dout`` is a tensor of ``out``'s dtype (else the portable
    ``where``, which follows the Array API's promotion)."""
    import torch

    if type(dout) is not type(out) or dout.dtype != out.dtype or not _plain(dout):
        return None
    return torch.ops.aten.threshold_backward(dout, out, 0)


#: The fast kernels of this backend, by the name :mod:`bp_xp.backends` dispatches on.
KERNELS: dict[str, Callable[..., Any]] = {
    "relu": relu,
    "relu_backward": relu_backward,
    "zero_where": zero_where,
    "subtract_scaled": subtract_scaled,
    "matmul_layout": matmul_layout,
    "column_major": column_major,
    "weight_gradient": weight_gradient,
}


def version_stamp(x: Any) -> Any:
    """PyTorch's count of in-place writes to the tensor."""
    try:
        return x._version
    except RuntimeError:  # an inference-mode tensor: it cannot be changed in place
        return None


def writes_in_place(x: Any) -> bool:
    """Autograd forbids writing into a tensor that requires grad, and inference tensors."""
    return not x.requires_grad and not x.is_inference()


#: This backend, declared for the registry (keep it last: it reads the definitions above).
SPEC = BackendSpec(
    name=NAME, aliases=ALIASES, module=MODULE, namespace=NAMESPACE, extra=EXTRA,
    is_array=is_array, is_namespace=is_namespace, parse_device=parse_device,
    format_device=format_device, devices=devices, dtypes=dtypes, from_host=from_host,
    to_host=to_host, synchronize=synchronize,
    kernels=KERNELS, device_attribute=True,
    version_stamp=version_stamp,
    safetensors_framework="pt",
    writes_in_place=writes_in_place,
)

# --------------------------------------------------------------------------------------
# Native convolution, pooling and loss kernels (issue 22)
# --------------------------------------------------------------------------------------
#
# PyTorch's own kernels (oneDNN on the CPU, cuDNN on CUDA) called directly: bp_xp's tensors
# never require grad, so no autograd graph is built; the backward passes are ATen's
# backward kernels. Each returns ``None`` where it does not apply (a dtype other than
# float32/float64, mixed dtypes, a tensor that requires grad): the portable path answers.


def _plain(*tensors: Any) -> bool:
    import torch

    dtype = tensors[0].dtype
    return (dtype in (torch.float32, torch.float64)
            and all(t.dtype == dtype and not t.requires_grad for t in tensors))


def conv2d(x: Any, W: Any, b: Any, stride: int, pad: int) -> Any:
    """``(out, backward)`` by ``torch.nn.functional.conv2d`` and ATen's ``convolution_backward``.

    ``backward(dout, need_dx)`` gives ``(dx or None, dW, db)`` in one call, which skips
    ``dx`` when it is not needed. Output sizes are floored, as the book's and PyTorch's.
    On CUDA, float32 convolutions follow ``torch.backends.cudnn.allow_tf32`` (PyTorch's
    default lets cuDNN use TF32 tensor cores).
    """
    import torch

    if not _plain(x, W, b):
        return None
    out = torch.nn.functional.conv2d(x, W, b, stride, pad)

    def backward(dout: Any, need_dx: bool) -> tuple[Any, Any, Any]:
        dx, dW, db = torch.ops.aten.convolution_backward(
            dout, x, W, [W.shape[0]], [stride, stride], [pad, pad], [1, 1], False, [0, 0], 1,
            [need_dx, True, True])
        return dx, dW, db

    return out, backward


def max_pool2d(x: Any, pool_h: int, pool_w: int, stride: int, pad: int) -> Any:
    """``(out, backward)`` by ATen's ``max_pool2d_with_indices`` and its backward on GPUs;
    on the CPU by strided slices (:mod:`bp_xp.backends._strided`), which measured several
    times faster than ATen's CPU kernel for the book's 2x2 pooling.

    bp_xp pads pooling windows with zeros, as the book's ``im2col`` does (PyTorch pads
    with ``-inf``), so the input is zero-padded first and pooled without padding. The
    first maximum of a window wins, as in the portable path (PyTorch's kernels compare
    with ``>``).
    """
    import torch

    if not _plain(x):
        return None
    if x.device.type == "cpu":  # strided slices: several times faster than ATen's CPU kernel
        from . import _strided

        return _strided.max_pool2d(torch, x, pool_h, pool_w, stride, pad)
    h, w = x.shape[2], x.shape[3]
    img = torch.nn.functional.pad(x, (pad, pad, pad, pad)) if pad else x
    kernel, strides = [pool_h, pool_w], [stride, stride]
    out, indices = torch.ops.aten.max_pool2d_with_indices(img, kernel, strides, [0, 0], [1, 1],
                                                          False)

    def backward(dout: Any) -> Any:
        dimg = torch.ops.aten.max_pool2d_with_indices_backward(
            dout, img, kernel, strides, [0, 0], [1, 1], False, indices)
        return dimg[:, :, pad:pad + h, pad:pad + w] if pad else dimg

    return out, backward


def softmax_cross_entropy_labels(x: Any, t: Any) -> Any:
    """``(loss, y, backward)`` of softmax cross-entropy with integer labels, fused.

    ``torch.log_softmax`` and one ``gather`` of the labels' log-probabilities, instead of
    the portable log-sum-exp, one-hot and masked sum (about twenty small calls). The
    caller has checked the labels' shape and dtype. The NaN rule is kept without reading
    labels back: a label outside ``[0, C)`` is clamped for the gather and its row made NaN
    in the loss and in the gradient. ``backward(scale)`` returns ``(y - onehot) * scale``
    with those NaN rows (``scale`` is ``dout / N``).
    """
    import math

    import torch

    if not _plain(x) or x.ndim != 2 or t.device != x.device:
        return None
    n, c = x.shape
    logp = torch.log_softmax(x, dim=1)
    clamped = t.clamp(0, c - 1)
    index = clamped.to(torch.int64).unsqueeze(1)
    bad = (clamped != t).unsqueeze(1)  # (N, 1): labels out of range
    picked = logp.gather(1, index)
    loss = picked.masked_fill(bad, math.nan).sum() * (-1.0 / n)
    y = logp.exp()

    def backward(scale: Any) -> Any:
        import math

        grad = y.scatter(1, index, y.gather(1, index) - 1)  # y - onehot, one kernel each
        grad = grad * scale
        return grad.masked_fill_(bad, math.nan)

    return loss, y, backward


# Registered in place into this file's fast-kernel table: the dict its ``KERNELS`` names or,
# where the file declares its backend as a ``SPEC``, that spec's ``kernels`` (never replaced,
# so that whatever already holds the table sees these kernels too).
_TABLE: dict[str, Any] = (globals()["SPEC"].kernels if "SPEC" in globals()
                          else globals().setdefault("KERNELS", {}))
_TABLE.update({"conv2d": conv2d, "max_pool2d": max_pool2d,
               "softmax_cross_entropy_labels": softmax_cross_entropy_labels})
KERNELS = _TABLE
