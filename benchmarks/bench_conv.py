"""Time one training step of the book's SimpleConvNet: bp_xp vs the book's NumPy code vs PyTorch.

Run:  python benchmarks/bench_conv.py [--rounds 5] [--batch 100] [--dtype float32]
      python benchmarks/bench_conv.py --torch-device cuda     # where a GPU is lent (adds CuPy)

One step = forward, loss, backward and an SGD update (lr 0.1) on a batch of MNIST-sized
images (1x28x28), with the book's network: conv 30 filters 5x5 - ReLU - 2x2 max pool -
affine 100 - ReLU - affine 10 - softmax cross-entropy. It times, side by side in one
process and interleaved round by round:

- ``book``: the book's chapter-7 NumPy implementation, re-written here from the book's
  description (``BookConvNet`` below: im2col with a loop over the filter window writing
  into a zero matrix, col2im by ``+=`` slice by slice, argmax pooling) - the baseline;
- ``bp_xp <backend>``: :class:`bp_xp.SimpleConvNet` on NumPy and PyTorch (CPU), and on
  the GPU (CuPy, torch:cuda) when ``--torch-device cuda`` is given;
- ``torch eager``: ``nn.Conv2d``/``MaxPool2d``/``Linear``, ``F.cross_entropy``,
  ``backward`` and a hand-written SGD update (``torch.no_grad``), on the same device.

Every implementation starts from the same weights and is first checked: its loss on the
first batch must match the book's within 1e-4 (relative). The table gives the median
step time and its ratio to the book's. Results: docs/performance.md, "Convolution".
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import _timed_block, _warm  # noqa: E402  (the shared interleaved-timing pieces)

import bp_xp  # noqa: E402

LR = 0.1


# -- the book's implementation (chapter 7), written from its description ------------------


def book_im2col(img: np.ndarray, fh: int, fw: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    n, c, h, w = img.shape
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    padded = np.pad(img, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((n, c, fh, fw, oh, ow), dtype=img.dtype)
    for y in range(fh):
        for x in range(fw):
            col[:, :, y, x, :, :] = padded[:, :, y:y + stride * oh:stride, x:x + stride * ow:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, -1)


def book_col2im(col: np.ndarray, shape: tuple[int, ...], fh: int, fw: int, stride: int = 1,
                pad: int = 0) -> np.ndarray:
    n, c, h, w = shape
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    col = col.reshape(n, oh, ow, c, fh, fw).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((n, c, h + 2 * pad + stride - 1, w + 2 * pad + stride - 1), dtype=col.dtype)
    for y in range(fh):
        for x in range(fw):
            img[:, :, y:y + stride * oh:stride, x:x + stride * ow:stride] += col[:, :, y, x, :, :]
    return img[:, :, pad:h + pad, pad:w + pad]


class BookConvNet:
    """The book's SimpleConvNet step in plain NumPy, layer by layer, with in-place SGD."""

    def __init__(self, params: dict[str, np.ndarray]) -> None:
        self.p = {k: v.copy() for k, v in params.items()}

    def step(self, x: np.ndarray, t: np.ndarray) -> float:
        p = self.p
        n = x.shape[0]
        W1 = p["W1"]
        fn, _, fh, fw = W1.shape
        # conv
        col = book_im2col(x, fh, fw)
        col_W = W1.reshape(fn, -1).T
        oh, ow = x.shape[2] - fh + 1, x.shape[3] - fw + 1
        c1 = (np.dot(col, col_W) + p["b1"]).reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)
        # relu
        mask1 = c1 <= 0
        r1 = c1.copy()
        r1[mask1] = 0
        # pool 2x2 stride 2
        pcol = book_im2col(r1, 2, 2, 2).reshape(-1, 4)
        arg_max = np.argmax(pcol, axis=1)
        ph, pw = oh // 2, ow // 2
        p1 = np.max(pcol, axis=1).reshape(n, ph, pw, fn).transpose(0, 3, 1, 2)
        # affine - relu - affine
        f = p1.reshape(n, -1)
        a2 = np.dot(f, p["W2"]) + p["b2"]
        mask2 = a2 <= 0
        r2 = a2.copy()
        r2[mask2] = 0
        a3 = np.dot(r2, p["W3"]) + p["b3"]
        # softmax with loss
        e = np.exp(a3 - a3.max(axis=1, keepdims=True))
        y = e / e.sum(axis=1, keepdims=True)
        loss = -np.sum(np.log(y[np.arange(n), t] + 1e-7)) / n
        dy = y.copy()
        dy[np.arange(n), t] -= 1
        dy /= n
        # backward
        g = {"W3": np.dot(r2.T, dy), "b3": dy.sum(axis=0)}
        dr2 = np.dot(dy, p["W3"].T)
        dr2[mask2] = 0
        g["W2"], g["b2"] = np.dot(f.T, dr2), dr2.sum(axis=0)
        dp1 = np.dot(dr2, p["W2"].T).reshape(p1.shape).transpose(0, 2, 3, 1)
        dmax = np.zeros((dp1.size, 4), dtype=x.dtype)
        dmax[np.arange(arg_max.size), arg_max.flatten()] = dp1.flatten()
        dr1 = book_col2im(dmax.reshape(dp1.shape + (4,)).reshape(n * ph * pw, -1), r1.shape, 2, 2, 2)
        dr1[mask1] = 0
        dc1 = dr1.transpose(0, 2, 3, 1).reshape(-1, fn)
        g["b1"] = dc1.sum(axis=0)
        g["W1"] = np.dot(col.T, dc1).transpose(1, 0).reshape(W1.shape)
        for key in p:
            p[key] -= LR * g[key]
        return float(loss)


# -- the implementations ---------------------------------------------------------------


def initial_params(seed: int, dtype: str) -> dict[str, np.ndarray]:
    net = bp_xp.SimpleConvNet(seed=seed, dtype="float64")
    return {k: bp_xp.to_numpy(v).astype(dtype) for k, v in net.params.items()}


def bp_xp_step(backend: str, params: dict[str, np.ndarray], dtype: str,
               x: np.ndarray, t: np.ndarray) -> Callable[[], Any]:
    net = bp_xp.SimpleConvNet(backend=backend, dtype=dtype, seed=0)
    for key, value in params.items():
        net.params[key] = net.backend.asarray(value, dtype=net.dtype)
    xb = net.backend.asarray(x, dtype=net.dtype)
    tb = net.backend.asarray(t, dtype=net.backend.dtype("int64"))
    sync = _sync_of(net.backend)

    def step() -> Any:
        loss, grads = net.loss_and_gradient(xb, tb)
        for key, grad in grads.items():
            net.params[key] = net.params[key] - LR * grad
        sync(loss)
        return loss

    return step


def torch_step(device: str, params: dict[str, np.ndarray], x: np.ndarray,
               t: np.ndarray) -> Callable[[], Any]:
    import torch
    from torch import nn

    fn, c, fs, _ = params["W1"].shape
    conv, pool = nn.Conv2d(c, fn, fs), nn.MaxPool2d(2, 2)
    fc1, fc2 = nn.Linear(*params["W2"].shape), nn.Linear(*params["W3"].shape)
    dtype = torch.float64 if params["W1"].dtype == np.float64 else torch.float32
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(params["W1"]))
        conv.bias.copy_(torch.from_numpy(params["b1"]))
        fc1.weight.copy_(torch.from_numpy(params["W2"].T.copy()))
        fc1.bias.copy_(torch.from_numpy(params["b2"]))
        fc2.weight.copy_(torch.from_numpy(params["W3"].T.copy()))
        fc2.bias.copy_(torch.from_numpy(params["b3"]))
    model = nn.Sequential(conv, nn.ReLU(), pool, nn.Flatten(), fc1, nn.ReLU(), fc2).to(device, dtype)
    xt = torch.from_numpy(x).to(device)
    tt = torch.from_numpy(t.astype(np.int64)).to(device)
    weights = list(model.parameters())

    def step() -> Any:
        loss = torch.nn.functional.cross_entropy(model(xt), tt)
        for w in weights:
            w.grad = None
        loss.backward()
        with torch.no_grad():
            for w in weights:
                w -= LR * w.grad
        if xt.is_cuda:
            torch.cuda.synchronize()
        return loss

    return step


def _sync_of(backend: Any) -> Callable[[Any], None]:
    if backend.name == "torch" and "cuda" in str(backend.device):
        import torch

        return lambda _: torch.cuda.synchronize()
    if backend.name == "cupy":
        import cupy

        return lambda _: cupy.cuda.get_current_device().synchronize()
    return lambda _: None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--block", type=float, default=1.0, help="seconds per timed block")
    parser.add_argument("--torch-device", default="cpu")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 1, 28, 28)).astype(args.dtype)
    t = rng.integers(0, 10, size=args.batch)
    params = initial_params(0, args.dtype)
    impls: dict[str, Callable[[], Any]] = {}
    book = BookConvNet(params)
    impls["book (NumPy)"] = lambda: book.step(x, t)
    backends = ["numpy", "torch:cpu"]
    if args.torch_device != "cpu":
        backends += ["cupy", f"torch:{args.torch_device}"]
    for spec in backends:
        try:
            impls[f"bp_xp {spec}"] = bp_xp_step(spec, params, args.dtype, x, t)
        except bp_xp.BackendUnavailableError as exc:
            print(f"skipping bp_xp {spec}: {exc}", file=sys.stderr)
    impls["torch eager cpu"] = torch_step("cpu", params, x, t)
    if args.torch_device != "cpu":
        impls[f"torch eager {args.torch_device}"] = torch_step(args.torch_device, params, x, t)

    # correctness first: every first-step loss equals the book's
    reference = BookConvNet(params).step(x, t)
    for name in impls:  # a fresh copy of each takes the first step
        if name.startswith("bp_xp"):
            fresh = bp_xp_step(name.split(" ", 1)[1], params, args.dtype, x, t)
            got = float(bp_xp.to_numpy(fresh()))
        elif name.startswith("torch"):
            got = float(torch_step(name.rsplit(" ", 1)[1], params, x, t)().item())
        else:
            continue
        if abs(got - reference) > 1e-4 * abs(reference) + 1e-6:
            raise SystemExit(f"{name}: first loss {got} differs from the book's {reference}")

    names = list(impls)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            per_call = _warm(impls[name], 0.15)
            times[name].append(_timed_block(impls[name], per_call, args.block))
    base = times[names[0]]
    print(f"SimpleConvNet step, batch {args.batch}, {args.dtype}, {args.rounds} rounds; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch threads {_torch_threads()}")
    print("| implementation | step (ms) | ratio to the book |")
    print("|---|---:|---:|")
    for name in names:
        ratio = statistics.median(a / b for a, b in zip(times[name], base))
        print(f"| {name} | {statistics.median(times[name]) * 1e3:.1f} | {ratio:.2f} |")
    return 0


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    raise SystemExit(main())
