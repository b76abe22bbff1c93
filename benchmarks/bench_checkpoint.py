"""Save and load time of checkpoint format 3 (safetensors) against format 2 (.npz), side by side.

Run:  python benchmarks/bench_checkpoint.py [--rounds 7] [--net wide] [--dir /tmp]

The network is the benchmarks' ``wide`` net (784-1024-1024-10, float32, see
``_problems.py``) with Adam's state after one step, so a checkpoint holds the parameters
and two optimizer slots (about 22 MB). Timed, in one process, interleaved round by round:

- save: ``bp_xp.checkpoint.save`` (format 3) against the format-2 writer bp_xp used
  before (``tests/checkpoint_helpers.py``: ``np.savez`` of the same arrays), both through
  the same atomic, fsync'ed write (:mod:`bp_xp._atomic`), so only the format differs;
- load: ``bp_xp.checkpoint.load`` of each file onto NumPy, and onto CPU torch if installed
  (format 3 hands torch its tensors straight from safetensors; format 2 goes through NumPy).

Each cell is the median over the rounds, with the fastest and slowest round. The files
are written to ``--dir`` (default: a temporary directory), so the page cache is warm after
the first round: this times the formats' CPU and copying work, not the disk.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _problems import NETS  # noqa: E402
from checkpoint_helpers import save_v2  # noqa: E402

import bp_xp  # noqa: E402
from bp_xp import checkpoint  # noqa: E402
from bp_xp._atomic import atomic_write  # noqa: E402
from bp_xp.optim import Adam  # noqa: E402


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--net", default="wide", choices=[n.name for n in NETS])
    parser.add_argument("--dir", default=None)
    args = parser.parse_args(argv)

    spec = next(n for n in NETS if n.name == args.net)
    sizes = spec.sizes
    net = bp_xp.MultiLayerNet(sizes[0], list(sizes[1:-1]), sizes[-1], seed=0)
    optimizer = Adam()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, sizes[0])).astype(np.float32)
    optimizer.update(net.params, net.gradient(x, rng.integers(0, sizes[-1], 64)))

    directory = args.dir or tempfile.mkdtemp(prefix="bench_checkpoint_")
    v3, v2 = os.path.join(directory, "net.safetensors"), os.path.join(directory, "net.npz")
    cases: dict[str, Callable[[], object]] = {
        "save, format 3": lambda: checkpoint.save(v3, net, optimizer),
        "save, format 2": lambda: atomic_write(v2, lambda f: save_v2(f, net, optimizer)),
        "load numpy, format 3": lambda: checkpoint.load(v3),
        "load numpy, format 2": lambda: checkpoint.load(v2),
    }
    try:
        import torch  # noqa: F401

        cases["load torch, format 3"] = lambda: checkpoint.load(v3, backend="torch")
        cases["load torch, format 2"] = lambda: checkpoint.load(v2, backend="torch")
    except ImportError:
        pass
    for fn in cases.values():  # write both files, warm every path once
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(_timed(cases[name]))

    print(f"{spec.name} net {spec}: {sum(int(np.prod(p.shape)) for p in net.params.values()):,} "
          f"parameters, float32, Adam state; {args.rounds} rounds, median (min-max) in ms")
    print(f"file sizes: format 3 {os.path.getsize(v3):,} bytes, format 2 {os.path.getsize(v2):,} bytes\n")
    print("| operation | format 3 (safetensors) | format 2 (.npz) | 3 / 2 |")
    print("|---|---|---|---|")
    for op in ("save", "load numpy", "load torch"):
        row = [times.get(f"{op}, format {v}") for v in (3, 2)]
        if row[0] is None or row[1] is None:
            continue
        cells = [f"{statistics.median(t) * 1e3:.1f} ({min(t) * 1e3:.1f}-{max(t) * 1e3:.1f})"
                 for t in row]
        ratio = statistics.median(row[0]) / statistics.median(row[1])
        print(f"| {op} | {cells[0]} | {cells[1]} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
