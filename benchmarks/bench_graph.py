"""What ``Graph.backward`` costs against the hand-sequenced backward, and what a recording holds.

Two measurements, short by default:

* **time** of one training step's gradients of the book's ``TwoLayerNet(784, 50, 10)`` on a
  batch of 100 (NumPy, float32), interleaved so that drift of a shared machine hits all alike:

  - ``by hand``: ``net.gradient(x, t)``, the hand-sequenced backward of ``Sequential``;
  - ``by hand, inside record()``: the same, recorded (both passes drawn, nothing run for you);
  - ``record + g.backward``: the same forward recorded, then ``g.backward(loss)``;
  - ``backward only, by hand`` and ``g.backward only``: the backward halves alone, on a
    forward made once (each layer's cache stays valid; ``g.backward`` checks it every time);
    ``unchecked``: the same, recorded with ``check_inplace=False`` (no checksums);

* **memory** a recording holds (``tracemalloc``) after 100 ``Relu.forward`` calls on 1 MB
  float64 arrays that the caller drops at once, with this recorder and with the recorder
  of ``BASE`` (which kept every value it was shown), and the same with a new ``Relu`` per
  call (``keep_layers=True`` keeps those layers, and so their caches, for backward).

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_graph.py [--repeat 21] [--number 20]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import timeit
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import bp_xp
from bp_xp.graph import record
from bp_xp.layers import Relu

#: The last commit before Graph.backward (its recorder kept every value it was shown).
BASE = "067963e"


def _base_graph_module() -> Any:
    """``bp_xp/graph.py`` of ``BASE``, loaded beside the current package."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(["git", "-C", str(root), "show", f"{BASE}:bp_xp/graph.py"],
                            capture_output=True, text=True, check=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "_base_graph.py"
        path.write_text(source, encoding="utf-8")
        spec = importlib.util.spec_from_file_location("bp_xp._base_graph", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    module._RECORDABLE[Relu] = "ReLU"  # the base recorder knew only marked classes
    return module


def held_bytes(recorder: Callable[..., Any], fresh_layers: bool, **options: Any) -> int:
    """Bytes still allocated, with the recording alive, after 100 calls on 1 MB arrays."""
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    relu = Relu()
    with recorder(**options) as g:
        for _ in range(100):
            layer = Relu() if fresh_layers else relu
            layer.forward(np.ones(131072))  # 1 MB; the caller keeps nothing
    del relu, layer
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    del g
    return held


def time_steps(repeat: int, number: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    x = rng.random((100, 784), dtype=np.float32)
    t = rng.integers(0, 10, 100)
    net = bp_xp.TwoLayerNet(784, 50, 10, seed=0)
    fixed = bp_xp.TwoLayerNet(784, 50, 10, seed=0)  # one forward, backward halves timed alone
    with record() as g:
        loss = fixed.loss(x, t, train_flg=True)
    unchecked_net = bp_xp.TwoLayerNet(784, 50, 10, seed=0)
    with record(check_inplace=False) as unchecked:
        unchecked_loss = unchecked_net.loss(x, t, train_flg=True)
    order = tuple(reversed(fixed.layers.values()))

    def by_hand_backward() -> None:
        dout = fixed.last_layer.backward(1)
        *later, first = order
        for layer in later:
            dout = layer.backward(dout)
        first.backward(dout, need_dx=False)

    def recorded_step() -> None:
        with record() as step:
            result = net.loss(x, t, train_flg=True)
        step.backward(result)

    def recorded_by_hand() -> None:
        with record():
            net.gradient(x, t)

    variants = {"by hand": lambda: net.gradient(x, t),
                "by hand, inside record()": recorded_by_hand,
                "record + g.backward": recorded_step,
                "backward only, by hand": by_hand_backward,
                "g.backward only": lambda: g.backward(loss),
                "g.backward only, unchecked": lambda: unchecked.backward(unchecked_loss)}
    for fn in variants.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for i in range(repeat):
        for name in names[i % len(names):] + names[:i % len(names)]:
            times[name].append(timeit.timeit(variants[name], number=number) / number)
    return {name: statistics.median(samples) for name, samples in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--number", type=int, default=20)
    args = parser.parse_args(argv)
    medians = time_steps(args.repeat, args.number)
    print(f"TwoLayerNet(784, 50, 10), batch 100, numpy float32; median of "
          f"{args.repeat} x {args.number} calls")
    for name, median in medians.items():
        base = medians["by hand"] if "only" not in name else medians["backward only, by hand"]
        print(f"  {name:28s} {median * 1e6:8.1f} us  ({median / base:.2f}x by hand)")
    base = _base_graph_module()
    print("memory held by a recording of 100 Relu calls on 1 MB arrays (tracemalloc):")
    rows = [(f"recorder of {BASE}, one layer", base.record, False, {}),
            ("this recorder, one layer", record, False, {}),
            ("this recorder, a new layer per call", record, True, {}),
            ("  the same, keep_layers=False", record, True, {"keep_layers": False})]
    for label, recorder, fresh, options in rows:
        print(f"  {label:38s} {held_bytes(recorder, fresh, **options) / 2**20:8.2f} MiB")


if __name__ == "__main__":
    main()
