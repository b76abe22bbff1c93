"""No host synchronisation inside a training step, checked with each GPU library's own guard.

Run by ``benchmarks/gpu_check.py`` (or alone: ``python benchmarks/_sync_check.py [--quick]``).
Every network bp_xp ships (TwoLayerNet, MultiLayerNet with and without batch normalization
and dropout, SimpleConvNet, and DeepConvNet where it exists) takes training steps
(``net.loss_and_gradient`` plus an optimizer's ``update``; on JAX also ``compile_step``)
under the guard of its backend:

- ``torch:cuda``: ``torch.cuda.set_sync_debug_mode("error")``, which raises on any
  synchronising CUDA call (``.item()``, a blocking copy, ``nonzero``...);
- ``cupy``: ``cupyx.allow_synchronize(False)``, which raises when a device
  synchronisation is requested;
- ``jax`` (GPU, and the CPU too): ``jax.transfer_guard_device_to_host("disallow")`` around
  the eager step, which raises when a value is read back to the host (Python scalars such
  as the ``0`` of ``x <= 0`` still travel to the device, asynchronously, as they do on every
  backend), and ``jax.transfer_guard("disallow")`` around ``compile_step``, whose one call
  must move nothing between host and device in either direction.

Data and parameters are moved to the device and one unguarded warm-up step is taken before
the guard is switched on (copying inputs is the one transfer a step needs, done once). Each
line of output is a Markdown table row: backend, network, step, and ``ok`` or the error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bp_xp  # noqa: E402
import bp_xp.compile  # noqa: E402
import bp_xp.optim  # noqa: E402

__all__ = ["main", "networks"]


def networks(quick: bool) -> dict[str, Callable[..., Any]]:
    """Constructors of every network to check, by name (DeepConvNet only where it exists)."""
    hidden = 20 if quick else 100
    nets: dict[str, Callable[..., Any]] = {
        "TwoLayerNet": lambda **kw: bp_xp.TwoLayerNet(784, hidden, 10, **kw),
        "MultiLayerNet": lambda **kw: bp_xp.MultiLayerNet(784, [hidden, hidden], 10,
                                                           weight_decay_lambda=0.01, **kw),
        "MultiLayerNet (batchnorm, dropout)": lambda **kw: bp_xp.MultiLayerNet(
            784, [hidden, hidden], 10, use_batchnorm=True, use_dropout=True, **kw),
        "SimpleConvNet": lambda **kw: bp_xp.SimpleConvNet(**kw),
    }
    deep = getattr(bp_xp, "DeepConvNet", None)
    if deep is not None:
        nets["DeepConvNet"] = lambda **kw: deep(**kw)
    return nets


def _batch(name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    shape = (n, 784) if "Conv" not in name else (n, 1, 28, 28)
    return rng.random(shape).astype(np.float32), rng.integers(0, 10, size=n)


def _guards(spec: str, compiled: bool = False
            ) -> Callable[[], contextlib.AbstractContextManager[Any]] | None:
    """A context manager factory that makes ``spec``'s library raise on a sync, or ``None``."""
    family = spec.partition(":")[0]
    if family == "torch":
        import torch

        @contextlib.contextmanager
        def torch_guard() -> Iterator[None]:
            previous = torch.cuda.get_sync_debug_mode()
            torch.cuda.set_sync_debug_mode("error")
            try:
                yield
            finally:
                torch.cuda.set_sync_debug_mode(previous)

        return torch_guard
    if family == "cupy":
        import cupyx

        return lambda: cupyx.allow_synchronize(False)
    if family == "jax":
        import jax

        if compiled:
            return lambda: jax.transfer_guard("disallow")
        return lambda: jax.transfer_guard_device_to_host("disallow")
    return None


def _check(spec: str, name: str, make: Callable[..., Any], compiled: bool, steps: int,
           batch: int, planted: bool = False) -> str:
    backend = bp_xp.resolve_backend(spec)
    net = make(backend=backend, dtype="float32", seed=0)
    hx, ht = _batch(name, batch)
    x, t = backend.asarray(hx, dtype="float32"), backend.asarray(ht, dtype="int32")
    optimizer = bp_xp.optim.get_optimizer("adam", lr=0.001)
    if compiled:
        frozen = bp_xp.compile.untraceable_layers(net)
        if frozen:
            return f"not compiled: compile_step refuses {', '.join(frozen)} by design (eager step above)"
        step = bp_xp.compile_step(net, optimizer)
    else:
        def step(x: Any, t: Any) -> Any:
            loss, grads = net.loss_and_gradient(x, t)
            optimizer.update(net.params, grads)
            if planted:  # what a logger would do: the guard must catch it
                float(loss)
            return loss

    loss = step(x, t)  # warm-up: traces, allocates, fills caches
    backend.synchronize(loss)
    guard = _guards(spec, compiled)
    assert guard is not None
    with guard():
        for _ in range(steps):
            loss = step(x, t)
    value = float(bp_xp.to_numpy(loss))
    if not np.isfinite(value):
        raise AssertionError(f"the loss is {value}")
    return "ok"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small nets and batches")
    parser.add_argument("--backends", default=None,
                        help="comma-separated specs (default: torch:cuda,cupy,jax:gpu where a GPU "
                             "is, else jax:cpu, the one guard that works without CUDA)")
    args = parser.parse_args(argv)
    try:
        import jax

        jax.config.update("jax_enable_x64", False)
    except ImportError:
        pass
    specs = (args.backends.split(",") if args.backends else
             ["torch:cuda", "cupy", "jax:gpu"] if _has_cuda() else ["jax:cpu"])
    batch = 8 if args.quick else 100
    failures = 0
    print("| backend | network | step | under the guard |")
    print("|---|---|---|---|")
    for spec in specs:
        try:
            bp_xp.resolve_backend(spec)
        except Exception as exc:  # each library reports a missing device its own way
            print(f"| {spec} | - | - | skipped: {str(exc).split('. ')[0]} |")
            continue
        for name, make in networks(args.quick).items():
            for compiled in ((False, True) if spec.startswith("jax") else (False,)):
                label = "compile_step + Adam" if compiled else "loss_and_gradient + Adam.update"
                try:
                    verdict = _check(spec, name, make, compiled, steps=2, batch=batch)
                except Exception as exc:  # the guard's error is the finding: report it
                    failures += 1
                    where = traceback.extract_tb(exc.__traceback__)
                    inside = [f for f in where if "bp_xp" in f.filename and "benchmarks" not in f.filename]
                    at = f" at {os.path.relpath(inside[-1].filename)}:{inside[-1].lineno}" if inside else ""
                    text = " ".join(str(exc).split())[:160].replace("|", "/")
                    verdict = f"**FAILED**: {type(exc).__name__}: {text}{at}"
                print(f"| {spec} | {name} | {label} | {verdict} |", flush=True)
        try:  # the guard can fail: a planted read of the loss must be caught
            _check(spec, "TwoLayerNet", networks(True)["TwoLayerNet"], False, 1, 8, planted=True)
            if "cpu" in spec:  # a CPU device's buffers are host memory: reading one is no transfer
                print(f"| {spec} | TwoLayerNet | a planted `float(loss)` in the step | not observable "
                      "on a CPU device (its buffers are host memory); on a GPU it must be caught |")
            else:
                failures += 1
                print(f"| {spec} | TwoLayerNet | a planted `float(loss)` in the step | **NOT CAUGHT** |")
        except Exception as exc:
            print(f"| {spec} | TwoLayerNet | a planted `float(loss)` in the step | caught "
                  f"({type(exc).__name__}), as it must be |")
    return 1 if failures else 0


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
