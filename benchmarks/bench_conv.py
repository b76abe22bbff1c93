"""Time a training step of the book's conv nets: bp_xp vs the book's code vs PyTorch vs JAX.

Run:  python benchmarks/bench_conv.py [--net simple|deep] [--rounds 5] [--batch 100] [--dtype float32]
      python benchmarks/bench_conv.py --gpu        # where a GPU is: CuPy, torch:cuda, jax:gpu

One step = forward, loss, backward and an SGD update (lr 0.1) on a batch of MNIST-sized
images (1x28x28). The network is bp_xp's own (``bp_xp.SimpleConvNet``, or
``bp_xp.DeepConvNet`` where this bp_xp has it), and every other implementation is built
from its layer list and starts from its weights:

- ``book``: the book's chapter-7 NumPy layers, re-written here from the book's description
  (``BookConvolution``: im2col with a loop over the filter window writing into a zero
  matrix, col2im by ``+=`` slice by slice; ``BookPooling``: im2col, ``argmax``; in-place
  SGD). The CPU baseline.
- ``bp_xp <backend>``: the network on NumPy, PyTorch and JAX (eager, and ``compile_step``),
  with the backends' native convolution kernels; ``(portable)`` rows switch those off
  (im2col on every backend, the reference the kernels are tested against).
- ``torch eager``: ``F.conv2d``/``F.max_pool2d``/``F.linear`` (oneDNN or cuDNN),
  ``F.cross_entropy``, autograd and a manual SGD update under ``no_grad``.
- ``jax.jit``: the same network hand-written with ``lax.conv_general_dilated`` and
  ``reduce_window``, ``value_and_grad`` and the update jitted as one step (dropout masks
  from ``jax.random``, its key split and kept on the device; bp_xp's ``compile_step``
  copies one seed per dropout layer to the device each step instead).

With ``--gpu`` the rows run on the GPU (bp_xp on CuPy, torch:cuda and jax:gpu, torch eager
CUDA as the baseline, jax.jit on the GPU). Every implementation is first checked: its loss
on the first batch must match bp_xp on NumPy within 1e-4 (relative; nets with dropout are
not checked, their masks differ). Then all rows are timed side by side in one process,
interleaved round by round, each block warmed right before it is timed; the table gives the
median step time, its ratio to the baseline and the ratios of the pairs each target of
issue 22 names, each the median of the within-round ratios. Results: docs/performance.md,
"Convolution".
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _timing import _timed_block, _warm  # noqa: E402  (the shared interleaved-timing pieces)

import bp_xp  # noqa: E402
import bp_xp.layers.conv  # noqa: E402
import bp_xp.optim  # noqa: E402

LR = 0.1

#: (row, its peer, the target) ratios that the table reports, where both rows ran.
PAIRS = [
    ("bp_xp numpy", "book (NumPy)", "<= 0.50"),
    ("bp_xp torch:cpu", "torch eager cpu", "<= 1.25"),
    ("bp_xp jax:cpu compile_step", "jax.jit cpu (lax.conv)", "<= 1.10"),
    ("bp_xp numpy", "bp_xp numpy (portable)", "-"),
    ("bp_xp torch:cpu", "bp_xp torch:cpu (portable)", "-"),
    ("bp_xp torch:cuda", "torch eager cuda", "<= 1.25"),
    ("bp_xp cupy", "torch eager cuda", "-"),
    ("bp_xp jax:gpu compile_step", "jax.jit gpu (lax.conv)", "<= 1.10"),
]


# -- the book's layers (chapter 7), written from its description --------------------------


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


class BookConvolution:
    def __init__(self, W: np.ndarray, b: np.ndarray, stride: int, pad: int) -> None:
        self.W, self.b, self.stride, self.pad = W, b, stride, pad

    def forward(self, x: np.ndarray) -> np.ndarray:
        fn, _, fh, fw = self.W.shape
        n, _, h, w = x.shape
        oh, ow = (h + 2 * self.pad - fh) // self.stride + 1, (w + 2 * self.pad - fw) // self.stride + 1
        self.x, self.col = x, book_im2col(x, fh, fw, self.stride, self.pad)
        self.col_W = self.W.reshape(fn, -1).T
        out = np.dot(self.col, self.col_W) + self.b
        return out.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        fn, c, fh, fw = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, fn)
        self.db = np.sum(dout, axis=0)
        self.dW = np.dot(self.col.T, dout).transpose(1, 0).reshape(fn, c, fh, fw)
        return book_col2im(np.dot(dout, self.col_W.T), self.x.shape, fh, fw, self.stride, self.pad)


class BookPooling:
    def __init__(self, pool_h: int, pool_w: int, stride: int, pad: int) -> None:
        self.pool_h, self.pool_w, self.stride, self.pad = pool_h, pool_w, stride, pad

    def forward(self, x: np.ndarray) -> np.ndarray:
        n, c, h, w = x.shape
        oh = (h + 2 * self.pad - self.pool_h) // self.stride + 1
        ow = (w + 2 * self.pad - self.pool_w) // self.stride + 1
        col = book_im2col(x, self.pool_h, self.pool_w, self.stride, self.pad)
        col = col.reshape(-1, self.pool_h * self.pool_w)
        self.x, self.arg_max = x, np.argmax(col, axis=1)
        return np.max(col, axis=1).reshape(n, oh, ow, c).transpose(0, 3, 1, 2)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dout = dout.transpose(0, 2, 3, 1)
        size = self.pool_h * self.pool_w
        dmax = np.zeros((dout.size, size), dtype=dout.dtype)
        dmax[np.arange(self.arg_max.size), self.arg_max.flatten()] = dout.flatten()
        dcol = dmax.reshape(dout.shape + (size,)).reshape(dout.shape[0] * dout.shape[1] * dout.shape[2], -1)
        return book_col2im(dcol, self.x.shape, self.pool_h, self.pool_w, self.stride, self.pad)


class BookRelu:
    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dout[self.mask] = 0
        return dout


class BookAffine:
    def __init__(self, W: np.ndarray, b: np.ndarray) -> None:
        self.W, self.b = W, b

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return np.dot(self.x, self.W) + self.b

    def backward(self, dout: np.ndarray) -> np.ndarray:
        self.dW, self.db = np.dot(self.x.T, dout), np.sum(dout, axis=0)
        return np.dot(dout, self.W.T).reshape(*self.shape)


class BookDropout:
    def __init__(self, ratio: float) -> None:
        self.ratio = ratio
        self.rng = np.random.default_rng(0)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = self.rng.random(x.shape) > self.ratio
        return x * self.mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self.mask


class BookNetwork:
    """The book's layers in the network's order, its loss, and in-place SGD."""

    def __init__(self, net: Any, params: dict[str, np.ndarray]) -> None:
        self.params = {k: v.copy() for k, v in params.items()}
        self.layers: list[Any] = []
        self.owners: list[tuple[Any, str]] = []  # (layer, parameter index) for the update
        index = 0
        for layer in net.layers.values():
            kind = type(layer).__name__
            if kind in ("Convolution", "Affine"):
                index += 1
                W, b = self.params[f"W{index}"], self.params[f"b{index}"]
                made: Any = (BookConvolution(W, b, layer.stride, layer.pad) if kind == "Convolution"
                             else BookAffine(W, b))
                self.owners.append((made, str(index)))
            elif kind == "Pooling":
                made = BookPooling(layer.pool_h, layer.pool_w, layer.stride, layer.pad)
            elif kind == "Relu":
                made = BookRelu()
            elif kind == "Dropout":
                made = BookDropout(getattr(layer, "dropout_ratio", 0.5))
            else:
                raise SystemExit(f"bench_conv: no book layer for {kind}")
            self.layers.append(made)

    def step(self, x: np.ndarray, t: np.ndarray) -> float:
        for layer in self.layers:
            x = layer.forward(x)
        n = x.shape[0]
        e = np.exp(x - x.max(axis=1, keepdims=True))
        y = e / e.sum(axis=1, keepdims=True)
        loss = -np.sum(np.log(y[np.arange(n), t] + 1e-7)) / n
        dout = y.copy()
        dout[np.arange(n), t] -= 1
        dout /= n
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        for layer, index in self.owners:
            self.params[f"W{index}"] -= LR * layer.dW
            self.params[f"b{index}"] -= LR * layer.db
        return float(loss)


# -- the other implementations -----------------------------------------------------------


def make_net(kind: str, backend: Any, dtype: str) -> Any:
    if kind == "deep":
        return bp_xp.DeepConvNet(backend=backend, dtype=dtype, seed=0)  # type: ignore[attr-defined]
    return bp_xp.SimpleConvNet(backend=backend, dtype=dtype, seed=0)


def _portable(enabled: bool) -> Callable[[], None]:
    """Switch the native convolution kernels off (``enabled``) or back on; returns the undo."""
    conv = bp_xp.layers.conv
    saved = (conv._native_conv2d, conv._native_max_pool2d)
    if enabled:
        conv._native_conv2d = conv._native_max_pool2d = lambda *args: None  # type: ignore[assignment]

    def undo() -> None:
        conv._native_conv2d, conv._native_max_pool2d = saved

    return undo


def bp_xp_step(kind: str, backend: str, params: dict[str, np.ndarray], dtype: str,
               x: np.ndarray, t: np.ndarray, compiled: bool = False,
               portable: bool = False) -> Callable[[], Any]:
    net = make_net(kind, backend, dtype)
    for key, value in params.items():
        net.params[key] = net.backend.asarray(value, dtype=net.dtype)
    xb = net.backend.asarray(x, dtype=net.dtype)
    tb = net.backend.asarray(t, dtype=net.backend.dtype("int32"))
    sync = net.backend.synchronize
    if compiled:
        step = bp_xp.compile_step(net, bp_xp.optim.get_optimizer("sgd", lr=LR))

        def run() -> Any:
            loss = step(xb, tb)
            sync(loss)
            return loss

        return run

    def run_eager() -> Any:
        undo = _portable(portable)
        try:
            loss, grads = net.loss_and_gradient(xb, tb)
        finally:
            undo()
        for key, grad in grads.items():
            net.params[key] = net.params[key] - LR * grad
        sync(loss)
        return loss

    return run_eager


def _layer_plan(net: Any) -> list[tuple[str, Any]]:
    plan = []
    index = 0
    for layer in net.layers.values():
        kind = type(layer).__name__
        if kind in ("Convolution", "Affine"):
            index += 1
            plan.append((kind, (index, getattr(layer, "stride", 1), getattr(layer, "pad", 0))))
        elif kind == "Pooling":
            plan.append((kind, (layer.pool_h, layer.pool_w, layer.stride, layer.pad)))
        else:
            plan.append((kind, None))
    return plan


def torch_step(kind: str, device: str, params: dict[str, np.ndarray], x: np.ndarray,
               t: np.ndarray) -> Callable[[], Any]:
    import torch
    import torch.nn.functional as F

    plan = _layer_plan(make_net(kind, "numpy", "float32"))
    weights = {k: torch.tensor(v if not k.startswith("W") or v.ndim == 4 else v.T.copy(),
                               device=device, requires_grad=True) for k, v in params.items()}
    xt = torch.tensor(x, device=device)
    tt = torch.tensor(t.astype(np.int64), device=device)

    def forward(h: Any) -> Any:
        for what, arg in plan:
            if what == "Convolution":
                i, stride, pad = arg
                h = F.conv2d(h, weights[f"W{i}"], weights[f"b{i}"], stride, pad)
            elif what == "Affine":
                h = F.linear(h.reshape(h.shape[0], -1), weights[f"W{arg[0]}"], weights[f"b{arg[0]}"])
            elif what == "Pooling":
                ph, pw, stride, pad = arg
                h = F.max_pool2d(F.pad(h, (pad,) * 4) if pad else h, (ph, pw), stride)
            elif what == "Relu":
                h = F.relu(h)
            elif what == "Dropout":
                h = F.dropout(h, 0.5)
        return h

    def step() -> Any:
        loss = F.cross_entropy(forward(xt), tt)
        for w in weights.values():
            w.grad = None
        loss.backward()
        with torch.no_grad():
            for w in weights.values():
                w.sub_(w.grad, alpha=LR)
        if xt.is_cuda:
            torch.cuda.synchronize()
        return loss

    return step


def jax_step(kind: str, platform_name: str, params: dict[str, np.ndarray], x: np.ndarray,
             t: np.ndarray) -> Callable[[], Any]:
    import jax
    import jax.numpy as jnp
    from jax import lax

    plan = _layer_plan(make_net(kind, "numpy", "float32"))
    device = jax.devices(platform_name)[0]

    def forward(p: dict[str, Any], h: Any, key: Any) -> Any:
        for what, arg in plan:
            if what == "Dropout":  # the book's dropout, masks from JAX's device generator
                key, sub = jax.random.split(key)
                h = jnp.where(jax.random.uniform(sub, h.shape) > 0.5, h, 0.0)
            elif what == "Convolution":
                i, stride, pad = arg
                h = lax.conv_general_dilated(h, p[f"W{i}"], (stride, stride), [(pad, pad)] * 2,
                                             dimension_numbers=("NCHW", "OIHW", "NCHW"))
                h = h + p[f"b{i}"].reshape(1, -1, 1, 1)
            elif what == "Affine":
                h = h.reshape(h.shape[0], -1) @ p[f"W{arg[0]}"] + p[f"b{arg[0]}"]
            elif what == "Pooling":
                ph, pw, stride, pad = arg
                h = jnp.pad(h, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else h
                h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, ph, pw), (1, 1, stride, stride),
                                      "VALID")
            elif what == "Relu":
                h = jax.nn.relu(h)
        return h

    def loss_fn(p: dict[str, Any], x: Any, t: Any, key: Any) -> Any:
        logp = jax.nn.log_softmax(forward(p, x, key))
        return -jnp.mean(jnp.take_along_axis(logp, t[:, None], axis=1))

    @jax.jit
    def update(p: dict[str, Any], key: Any, x: Any, t: Any) -> tuple[dict[str, Any], Any, Any]:
        key, sub = jax.random.split(key)  # the generator's state stays on the device
        loss, grads = jax.value_and_grad(loss_fn)(p, x, t, sub)
        return jax.tree.map(lambda a, g: a - LR * g, p, grads), key, loss

    state = {"p": {k: jax.device_put(v, device) for k, v in params.items()},
             "key": jax.device_put(jax.random.key(0), device)}
    xj, tj = jax.device_put(x, device), jax.device_put(t.astype(np.int32), device)

    def step() -> Any:
        state["p"], state["key"], loss = update(state["p"], state["key"], xj, tj)
        loss.block_until_ready()
        return loss

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="simple", choices=("simple", "deep"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--block", type=float, default=1.0, help="seconds per timed block")
    parser.add_argument("--gpu", action="store_true", help="the GPU rows instead of the CPU ones")
    parser.add_argument("--only", default=None, help="comma-separated row names to keep")
    parser.add_argument("--torch-device", default=None, help=argparse.SUPPRESS)  # old spelling
    args = parser.parse_args(argv)
    gpu = args.gpu or (args.torch_device not in (None, "cpu"))
    if args.net == "deep" and not hasattr(bp_xp, "DeepConvNet"):
        print("DeepConvNet: not in this bp_xp (no bp_xp.DeepConvNet); skipped.")
        return 0
    try:
        import jax

        jax.config.update("jax_enable_x64", args.dtype == "float64")
    except ImportError:
        pass

    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 1, 28, 28)).astype(args.dtype)
    t = rng.integers(0, 10, size=args.batch)
    reference = make_net(args.net, "numpy", args.dtype)
    params = {k: bp_xp.to_numpy(v) for k, v in reference.params.items()}
    has_dropout = any(type(layer).__name__ == "Dropout" for layer in reference.layers.values())
    makers: dict[str, Callable[[], Callable[[], Any]]] = {}
    if not gpu:
        def book_step() -> Callable[[], Any]:
            book = BookNetwork(reference, params)
            return lambda: book.step(x, t)

        makers["book (NumPy)"] = book_step
        for spec in ("numpy", "torch:cpu"):
            makers[f"bp_xp {spec}"] = lambda spec=spec: bp_xp_step(args.net, spec, params, args.dtype, x, t)
            makers[f"bp_xp {spec} (portable)"] = lambda spec=spec: bp_xp_step(
                args.net, spec, params, args.dtype, x, t, portable=True)
        makers["torch eager cpu"] = lambda: torch_step(args.net, "cpu", params, x, t)
        makers["bp_xp jax:cpu compile_step"] = lambda: bp_xp_step(args.net, "jax:cpu", params, args.dtype,
                                                                  x, t, compiled=True)
        makers["jax.jit cpu (lax.conv)"] = lambda: jax_step(args.net, "cpu", params, x, t)
    else:
        makers["torch eager cuda"] = lambda: torch_step(args.net, "cuda", params, x, t)
        for spec in ("torch:cuda", "cupy"):
            makers[f"bp_xp {spec}"] = lambda spec=spec: bp_xp_step(args.net, spec, params, args.dtype, x, t)
        makers["bp_xp torch:cuda (portable)"] = lambda: bp_xp_step(args.net, "torch:cuda", params,
                                                                   args.dtype, x, t, portable=True)
        makers["bp_xp jax:gpu compile_step"] = lambda: bp_xp_step(args.net, "jax:gpu", params, args.dtype,
                                                                  x, t, compiled=True)
        makers["jax.jit gpu (lax.conv)"] = lambda: jax_step(args.net, "gpu", params, x, t)
    if args.only:
        keep = {name.strip() for name in args.only.split(",")}
        makers = {k: v for i, (k, v) in enumerate(makers.items()) if i == 0 or k in keep}

    expected = float(bp_xp.to_numpy(make_net(args.net, "numpy", "float64").loss(
        x.astype(np.float64), t))) if not has_dropout else None
    impls: dict[str, Callable[[], Any]] = {}
    mismatches: list[str] = []
    for name, make in makers.items():
        try:
            impls[name] = make()
            first = impls[name]()  # correctness first: the first step's loss (before its update)
        except Exception as exc:  # a backend or device missing here: skip the row, say why
            print(f"skipping {name}: {type(exc).__name__}: {str(exc).split('. ')[0][:150]}")
            impls.pop(name, None)
            continue
        got = float(first if isinstance(first, float) else bp_xp.to_numpy(first))
        if expected is not None and abs(got - expected) > 1e-4 * abs(expected) + 1e-6:
            # reported, not fatal: on a GPU, TF32 convolutions (cuDNN's default) move float32
            # losses by about 1e-3, and a one-shot GPU run should still time every row
            mismatches.append(f"{name}: first loss {got:.7g} differs from bp_xp on NumPy's "
                              f"{expected:.7g} (relative {abs(got - expected) / abs(expected):.1e})")

    names = list(impls)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            per_call = _warm(impls[name], 0.15)
            times[name].append(_timed_block(impls[name], per_call, args.block))
    base = times[names[0]]
    title = "DeepConvNet" if args.net == "deep" else "SimpleConvNet"
    where = _gpu_name() if gpu else f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    print(f"{title} step, batch {args.batch}, {args.dtype}, {args.rounds} rounds; {where}; "
          f"torch threads {_torch_threads()}; first losses checked"
          + (" (not: dropout)" if has_dropout else ""))
    print()
    print(f"| implementation | step (ms) | ratio to {names[0]} |")
    print("|---|---:|---:|")
    for name in names:
        ratio = statistics.median(a / b for a, b in zip(times[name], base))
        print(f"| {name} | {statistics.median(times[name]) * 1e3:.2f} | {ratio:.2f} |")
    for line in mismatches:
        print(f"\n**check failed**: {line}")
    pairs = [p for p in PAIRS if p[0] in times and p[1] in times]
    if pairs:
        print()
        print("| row | peer | ratio (median of within-round ratios, IQR) | target |")
        print("|---|---|---:|---:|")
        for row, peer, target in pairs:
            ratios = sorted(a / b for a, b in zip(times[row], times[peer]))
            q = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else [ratios[0]] * 3
            middle = statistics.median(ratios)
            print(f"| {row} | {peer} | **{middle:.2f}** ({q[0]:.2f}-{q[2]:.2f}) | {target} |")
    return 1 if mismatches else 0


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)


def _torch_threads() -> int:
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
