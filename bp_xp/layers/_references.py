"""Float64 references of the chapter-7 layers and the loss, for their ``@contract`` entries.

They sit apart from :mod:`.conv` and :mod:`.loss` only because they are longer than a
lambda: each is the definition written out plainly, index by index where that is
clearer, with ``np`` (NumPy) handed in by the conformance harness, never imported here.
"""

from __future__ import annotations

from typing import Any

from ..backends import DTypeError
from ._checks import ShapeError
from ._contract import Sample, bools, floats, values

__all__ = ["SOFTMAX_WITH_LOSS", "convolution", "pooling"]


def _windows(np: Any, x: Any, fh: int, fw: int, stride: int, pad: int) -> Any:
    """``(i, j, window)`` for every output pixel: the ``(N, C, fh, fw)`` window of the
    zero-padded ``x`` that it reads, by its definition."""
    _, _, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    for i in range((h + 2 * pad - fh) // stride + 1):
        for j in range((w + 2 * pad - fw) // stride + 1):
            yield i, j, padded[:, :, i * stride:i * stride + fh, j * stride:j * stride + fw]


def _out_hw(x: Any, fh: int, fw: int, stride: int, pad: int) -> tuple[int, int]:
    return (x.shape[2] + 2 * pad - fh) // stride + 1, (x.shape[3] + 2 * pad - fw) // stride + 1


def convolution_reference(np: Any, x: Any, W: Any, b: Any, *, stride: int, pad: int) -> Any:
    """Cross-correlation by its definition: one window at a time."""
    fn, _, fh, fw = W.shape
    out = np.zeros((x.shape[0], fn, *_out_hw(x, fh, fw, stride, pad)))
    for i, j, window in _windows(np, x, fh, fw, stride, pad):
        out[:, :, i, j] = np.tensordot(window, W, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


def pooling_reference(np: Any, x: Any, *, size: tuple[int, int], stride: int, pad: int) -> Any:
    """Max over each window of the zero-padded input (the book's padding); NaN propagates."""
    n, c = x.shape[:2]
    out = np.zeros((n, c, *_out_hw(x, *size, stride, pad)))
    for i, j, window in _windows(np, x, *size, stride, pad):
        out[:, :, i, j] = window.reshape(n, c, -1).max(axis=2) if window.size else 0.0
    return out


def softmax_with_loss_reference(np: Any, x: Any, t: Any) -> Any:
    """Mean cross-entropy of softmax(x): integer labels or target rows."""
    shifted = x - x.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    if np.ndim(t) == 2:
        return -(t * logp).sum() / x.shape[0]
    return -logp[np.arange(x.shape[0]), t.astype(int)].mean()


def convolution(stride: int = 1, pad: int = 0) -> dict[str, Any]:
    """The ``@contract`` keywords of ``Convolution(W, b, stride, pad)`` with 3 filters of
    2 channels, 3x3."""
    return dict(
        reference=lambda np, x, W, b: convolution_reference(np, x, W, b, stride=stride, pad=pad),
        torch_reference=lambda torch, x, W, b: torch.nn.functional.conv2d(
            x, W, b, stride=stride, padding=pad),
        params={"W": floats(3, 2, 3, 3), "b": floats(3)},
        init={"stride": stride, "pad": pad},
        id="Convolution" if (stride, pad) == (1, 0) else f"Convolution(stride={stride}, pad={pad})",
        samples=[
            Sample(floats(2, 2, 5, 5)),
            Sample(floats(1, 2, 5, 5, special="inf"), smooth=False, name="inf"),
            Sample(floats(0, 2, 5, 5), name="empty batch"),
            Sample(floats(2, 3, 5, 5), raises=ShapeError, name="channels that do not fit W"),
            Sample(floats(2, 5, 5), raises=ShapeError, name="no channel axis"),
            *([Sample(floats(1, 2, 2, 2), raises=ShapeError, name="image smaller than W")]
              if not pad else []),
            Sample(bools(1, 2, 5, 5), raises=DTypeError, name="bool image"),
        ],
    )


def pooling(size: int = 2, stride: int = 2, pad: int = 0) -> dict[str, Any]:
    """The ``@contract`` keywords of ``Pooling(size, size, stride, pad)``."""
    def torch_pool(torch: Any, x: Any) -> Any:
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))  # zeros, as the book pads
        return torch.nn.functional.max_pool2d(padded, size, stride)

    return dict(
        reference=lambda np, x: pooling_reference(np, x, size=(size, size), stride=stride, pad=pad),
        torch_reference=torch_pool,
        init={"pool_h": size, "pool_w": size, "stride": stride, "pad": pad},
        id="Pooling" if (size, stride, pad) == (2, 2, 0) else
        f"Pooling({size}x{size}, stride={stride}, pad={pad})",
        samples=[
            Sample(floats(2, 2, 4, 4)),
            Sample(floats(1, 1, 4, 4, special="inf"), smooth=False, name="inf"),
            Sample(floats(0, 2, 4, 4), name="empty batch"),
            Sample(floats(2, 4, 4), raises=ShapeError, name="no channel axis"),
            *([Sample(floats(1, 1, 1, 1), raises=ShapeError, name="image smaller than the window")]
              if size > 1 + 2 * pad else []),
            Sample(bools(1, 1, 4, 4), raises=DTypeError, name="bool image"),
        ],
    )


#: The ``@contract`` keywords of ``SoftmaxWithLoss``: integer labels and one-hot rows.
SOFTMAX_WITH_LOSS: dict[str, Any] = dict(
    reference=softmax_with_loss_reference,
    torch_reference=lambda torch, x, t: -(
        torch.nn.functional.log_softmax(x, dim=1) * t).sum() / x.shape[0] if t.ndim == 2 else
    torch.nn.functional.cross_entropy(x, t.detach().long()),
    samples=[
        Sample(floats(4, 3), values([0, 2, 1, 1], "int"), dout=1.0, name="integer labels"),
        Sample(floats(4, 3), values([[0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0]]), dout=1.0,
               name="one-hot rows"),
        Sample(floats(2, 3), values([0, 1], "int"), dout=0.5, name="Python dout"),
        Sample(floats(2, 3, special="inf"), values([0, 1], "int"), dout=1.0, smooth=False,
               name="inf"),
        Sample(floats(0, 3), values([], "int"), raises=ValueError, name="empty batch"),
        Sample(floats(4), values([0, 1, 2, 0], "int"), raises=ValueError, name="1-d logits"),
    ],
    grads_for=(0,),
)
