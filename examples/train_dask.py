"""Data-parallel training of the book's two-layer net on a Dask cluster.

Run:  python examples/train_dask.py                       # a local cluster of 2 worker processes
      python examples/train_dask.py --scheduler tcp://scheduler:8786 --chunks 8

The dataset is sharded once along the batch axis (`--chunks` pieces, persisted on the
workers); each step gathers a minibatch from the shards, computes the forward and backward
passes per chunk, reduces the parameter gradients across chunks, and persists the updated
parameters. The loss is read back only every `--log-every` steps.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import bp_xp
from bp_xp.data import load_dataset
from bp_xp.distributed import evaluate, shard, train_step
from bp_xp.optim import get_optimizer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheduler", default=None, help="address of a running scheduler")
    parser.add_argument("--workers", type=int, default=2, help="local cluster size (no --scheduler)")
    parser.add_argument("--chunks", type=int, default=4, help="shards of the dataset")
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--hidden", type=int, default=50)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from dask.distributed import Client, LocalCluster

    cluster = None
    if args.scheduler:
        client = Client(args.scheduler)
    else:
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1,
                               dashboard_address=None, silence_logs=40)
        client = Client(cluster)
    try:
        (x_train, t_train), (x_test, t_test) = load_dataset(args.dataset, data_dir=args.data_dir)
        x, t = shard(x_train, chunks=args.chunks), shard(t_train, chunks=args.chunks)
        xt, tt = shard(x_test, chunks=args.chunks), shard(t_test, chunks=args.chunks)
        net = bp_xp.TwoLayerNet(x_train.shape[1], args.hidden, 10, backend="dask", seed=args.seed)
        optimizer = get_optimizer("sgd", lr=args.lr)
        rng = np.random.default_rng(args.seed)
        print(f"{len(client.scheduler_info()['workers'])} workers, {x.numblocks[0]} chunks")
        start = time.perf_counter()
        for i in range(1, args.iters + 1):
            # sorted indices keep each chunk's rows together: fewer, larger gather tasks
            idx = np.sort(rng.choice(x.shape[0], args.batch_size, replace=False))
            loss = train_step(net, optimizer, x[idx], t[idx])
            if i % args.log_every == 0 or i == args.iters:
                print(f"iter {i}: loss {float(loss):.4f}")
        per_step = (time.perf_counter() - start) / args.iters
        print(f"time per step: {per_step * 1e3:.1f} ms")
        print(f"train acc {evaluate(net, x, t):.4f}, test acc {evaluate(net, xt, tt):.4f}")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
