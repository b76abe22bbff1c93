"""What the graph recorder costs a training step: nothing when not recording.

Times ``TwoLayerNet(784, 50, 10).gradient`` on a batch of 100 (NumPy, float32) in three
ways, interleaved so that drift of a shared machine hits all alike:

* ``shipped``: the layers as they are, outside ``bp_xp.graph.record()``;
* ``pre-graph``: the network's Relu swapped for the Relu of the commit before the graph
  work (no ``recordable`` mark, no Python-number path): the code "without the hook";
* ``recording``: the shipped layers inside ``record()`` (the marked Relu is recorded,
  its values copied to the host).

Run:  OMP_NUM_THREADS=1 python benchmarks/graph_overhead.py [--repeat 41] [--number 50]
(one BLAS thread: on a shared machine, BLAS threads fighting other jobs swamp the signal)
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

import numpy as np

import bp_xp
from bp_xp.graph import record

#: The last commit before bp_xp.graph and the Python-number paths of Relu/Sigmoid.
BASE = "bcb67b7"


def _pre_graph_relu() -> type:
    """The Relu class of ``BASE``, loaded into the current package (same helpers)."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(["git", "-C", str(root), "show", f"{BASE}:bp_xp/layers/activations.py"],
                            capture_output=True, text=True, check=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "_pre_graph_activations.py"
        path.write_text(source, encoding="utf-8")
        spec = importlib.util.spec_from_file_location("bp_xp.layers._pre_graph_activations", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module.Relu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=41)
    parser.add_argument("--number", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.random((100, 784), dtype=np.float32)
    t = rng.integers(0, 10, 100)
    shipped = bp_xp.TwoLayerNet(784, 50, 10, seed=0)
    pre = bp_xp.TwoLayerNet(784, 50, 10, seed=0)
    pre.layers["Relu1"].__class__ = _pre_graph_relu()

    def step_recording() -> None:
        with record():
            shipped.gradient(x, t)

    variants = {"shipped": lambda: shipped.gradient(x, t),
                "pre-graph": lambda: pre.gradient(x, t),
                "recording": step_recording}
    for fn in variants.values():
        fn()  # warm up caches
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for i in range(args.repeat):
        for name in names[i % 3:] + names[:i % 3]:  # rotate: no variant always runs first
            times[name].append(timeit.timeit(variants[name], number=args.number) / args.number)
    base = statistics.median(times["pre-graph"])
    print(f"TwoLayerNet(784, 50, 10).gradient, batch 100, numpy float32; median of "
          f"{args.repeat} x {args.number} steps")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"  {name:10s} {median * 1e6:8.1f} us/step  ({median / base:.3f}x pre-graph)")


if __name__ == "__main__":
    main()
