"""Time per data-parallel step on Dask versus workers and chunks, against plain NumPy.

Run:  python benchmarks/bench_dask.py [--iters 30] [--batch-size 2000]

Prints a Markdown table (the one in docs/dask.md). Each configuration starts a fresh
LocalCluster of worker processes with one thread each, shards a synthetic MNIST-sized
dataset, and times `bp_xp.distributed.train_step` (gradient, SGD update, materialize; it
returns once the new parameters are computed) after a few warm-up steps; the NumPy row is
the same net and step on one process.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

import bp_xp
from bp_xp.distributed import shard, train_step
from bp_xp.optim import SGD



def _time_steps(step, iters: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--hidden", type=int, default=256)
    args = parser.parse_args(argv)

    from dask.distributed import Client, LocalCluster

    rng = np.random.default_rng(0)
    x_host = rng.random((args.rows, 784), dtype=np.float32)
    t_host = rng.integers(0, 10, size=args.rows)
    rows = []
    for batch in args.batch_size:
        net = bp_xp.TwoLayerNet(784, args.hidden, 10, seed=0)
        opt = SGD(0.1)

        def numpy_step():
            idx = np.sort(rng.choice(args.rows, batch, replace=False))
            opt.update(net.params, net.gradient(x_host[idx], t_host[idx]))

        rows.append(("numpy (1 process)", "-", "-", batch, _time_steps(numpy_step, args.iters)))
        for workers in (1, 2):
            with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None,
                              silence_logs=40) as cluster, Client(cluster):
                for chunks in (1, 2, 4, 8):
                    x, t = shard(x_host, chunks=chunks), shard(t_host, chunks=chunks)
                    dnet = bp_xp.TwoLayerNet(784, args.hidden, 10, seed=0, backend="dask")

                    def dask_step():
                        idx = np.sort(rng.choice(args.rows, batch, replace=False))
                        train_step(dnet, opt, x[idx], t[idx])

                    rows.append(("dask", workers, chunks, batch, _time_steps(dask_step, args.iters)))
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"net 784-{args.hidden}-10 float32, dataset {args.rows} rows, median of {args.iters} steps\n")
    print("| backend | workers | chunks | batch | ms / step | vs numpy |")
    print("| --- | --- | --- | --- | --- | --- |")
    base = {r[3]: r[4] for r in rows if r[0].startswith("numpy")}
    for name, workers, chunks, batch, seconds in rows:
        print(f"| {name} | {workers} | {chunks} | {batch} | {seconds * 1e3:.1f} | "
              f"{seconds / base[batch]:.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
