"""Does ``torch.compile`` make bp_xp's PyTorch step faster on this machine?

``bp_xp.compile_step`` uses ``jax.jit`` on JAX; on PyTorch it keeps the eager step unless
``torch.compile`` measurably wins. This script is that measurement: the same network's
``loss_and_gradient`` eager and through ``torch.compile`` (default inductor backend), the
update outside both, interleaved in rounds, reporting the median within-round ratio
compiled / eager (below 1: compiled is faster) and the first call's compile time.

    python benchmarks/bench_torch_compile.py            # CPU
    python benchmarks/bench_torch_compile.py --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np

import bp_xp
from bp_xp.optim import SGD


def measure(name: str, make_net, batch: int, device: str, rounds: int) -> None:
    import torch

    rng = np.random.default_rng(0)
    net, optimizer = make_net(), SGD(lr=0.1)
    backend = f"torch:{device}"
    x = bp_xp.to_device(rng.random((batch, 784), dtype=np.float32), backend)
    t = bp_xp.to_device(rng.integers(0, 10, batch), backend)

    def forward_backward(x, t):
        return net.loss_and_gradient(x, t)

    compiled = torch.compile(forward_backward)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dynamo's notes on the graph breaks it takes
        compiled(x, t)
    compile_s = time.perf_counter() - start

    def eager() -> None:
        _, grads = forward_backward(x, t)
        optimizer.update(net.params, grads)

    def through_compile() -> None:
        _, grads = compiled(x, t)
        optimizer.update(net.params, grads)

    calls = 50 if batch <= 100 else 5
    for step in (eager, through_compile):
        for _ in range(10):
            step()
    ratios, eager_ms = [], []
    for _ in range(rounds):
        times = {}
        for label, step in (("eager", eager), ("compiled", through_compile)):
            start = time.perf_counter()
            for _ in range(calls):
                step()
            bp_xp.backend_of(net.params["W1"]).synchronize(net.params["W1"])
            times[label] = (time.perf_counter() - start) / calls
        ratios.append(times["compiled"] / times["eager"])
        eager_ms.append(times["eager"] * 1e3)
    print(f"{name}: compiled / eager step = {statistics.median(ratios):.2f} "
          f"(eager {statistics.median(eager_ms):.3f} ms; first call, compiling: {compile_s:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    measure("book net 784-50-10, batch 100",
            lambda: bp_xp.TwoLayerNet(784, 50, 10, backend=f"torch:{args.device}", seed=0),
            100, args.device, args.rounds)
    measure("wide net 784-1024-1024-10, batch 512",
            lambda: bp_xp.MultiLayerNet(784, [1024, 1024], 10, backend=f"torch:{args.device}", seed=0),
            512, args.device, args.rounds)


if __name__ == "__main__":
    main()
