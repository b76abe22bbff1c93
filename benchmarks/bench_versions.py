"""This checkout against another bp_xp tree, side by side in one process.

Run:  OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_versions.py OLD_TREE \
          [--rounds 15] [--backends jax,numpy,torch]

(One BLAS/OpenMP thread, as the other benchmarks: with PyTorch's default of one thread per
core, any other process on the machine makes its rows swing by 2x.)

``OLD_TREE`` is a checkout of another version (``git worktree add /tmp/old v0.2.0``). Its
``bp_xp`` package is copied into a temporary directory under the name ``bp_xp_old`` and
imported next to this checkout's ``bp_xp`` (both use relative imports inside the package), so
the two versions are timed in the same process, interleaved round by round with the order of
the rows alternating: load from other processes hits both alike, which separate runs of each
tree's own benchmark cannot promise. The network is the book's (784-50-10, batch 100,
float32, SGD with lr 0.1), built from one seed in both trees.

Rows per backend: the eager step (``gradient`` then ``update``) of each tree; on JAX also each
tree's ``compile_step`` and a hand-written ``jax.jit`` step as the common baseline. The table
gives medians of within-round ratios with their interquartile ranges.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

N, SIZES, LR = 100, (784, 50, 10), 0.1


def _import_old(tree: Path) -> Any:
    package = tree / "bp_xp"
    if not (package / "__init__.py").is_file():
        raise SystemExit(f"{tree} has no bp_xp package")
    home = Path(tempfile.mkdtemp(prefix="bp_xp_old_"))
    shutil.copytree(package, home / "bp_xp_old")
    sys.path.insert(0, str(home))
    old = importlib.import_module("bp_xp_old")
    importlib.import_module("bp_xp_old.optim")
    return old


def _rows(pkg: Any, label: str, backend: str, x: Any, t: Any) -> dict[str, Callable[[], Any]]:
    rows: dict[str, Callable[[], Any]] = {}
    eager_net = pkg.TwoLayerNet(*SIZES, seed=0, backend=backend)
    optimizer = pkg.optim.SGD(lr=LR)

    def eager() -> Any:
        optimizer.update(eager_net.params, eager_net.gradient(x, t))
        return eager_net.params["b2"]

    rows[f"{label} eager"] = eager
    if backend.startswith("jax"):
        step = pkg.compile_step(pkg.TwoLayerNet(*SIZES, seed=0, backend=backend),
                                pkg.optim.SGD(lr=LR))
        rows[f"{label} compile_step"] = lambda: step(x, t)
    return rows


def _hand_jit(params: dict[str, Any], x: Any, t: Any) -> Callable[[], Any]:
    import jax
    import jax.numpy as jnp

    def loss(p: dict[str, Any]) -> Any:
        h = jnp.maximum(x @ p["W1"] + p["b1"], 0)
        y = h @ p["W2"] + p["b2"]
        return -jnp.mean(jax.nn.log_softmax(y)[jnp.arange(N), t])

    def step(p: dict[str, Any]) -> Any:
        value, grads = jax.value_and_grad(loss)(p)
        return value, jax.tree.map(lambda a, g: a - LR * g, p, grads)

    jitted = jax.jit(step, donate_argnums=0)
    state = {"p": {k: jnp.array(v, copy=True) for k, v in params.items()}}

    def run() -> Any:
        value, state["p"] = jitted(state["p"])
        return value

    return run


def _sync(backend: str) -> Callable[[Any], Any]:
    if backend.startswith("jax"):
        import jax

        return jax.block_until_ready
    return lambda out: out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old_tree", type=Path)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--backends", default="jax,numpy,torch")
    parser.add_argument("--block", type=float, default=0.1, help="seconds per timed block")
    args = parser.parse_args(argv)

    import bp_xp
    import bp_xp.optim

    old = _import_old(args.old_tree)
    rng = np.random.default_rng(0)
    hx = rng.random((N, SIZES[0]), dtype=np.float32)
    ht = rng.integers(0, SIZES[-1], N)
    print(f"bp_xp {bp_xp.__version__} ({Path(bp_xp.__file__).parent}) against "
          f"{args.old_tree} ({Path(old.__file__).parent}); book net, batch {N}, float32, "
          f"{args.rounds} rounds")
    for backend in args.backends.split(","):
        if backend not in bp_xp.available_backends():
            print(f"\n{backend}: not available here, skipped")
            continue
        target = bp_xp.resolve_backend(backend)
        x, t = target.asarray(hx), target.asarray(ht)
        rows = {**_rows(old, "old", backend, x, t), **_rows(bp_xp, "new", backend, x, t)}
        if backend.startswith("jax"):
            params = bp_xp.TwoLayerNet(*SIZES, seed=0, backend=backend).params
            rows = {"jax.jit (hand)": _hand_jit(dict(params), x, t), **rows}
        sync = _sync(backend)
        reps = {}
        for name, row in rows.items():  # warm up, then size a block to about --block seconds
            for _ in range(3):
                sync(row())
            start = time.perf_counter()
            sync(row())
            reps[name] = max(1, int(args.block / max(time.perf_counter() - start, 1e-6)))
        times: dict[str, list[float]] = {name: [] for name in rows}
        order = list(rows)
        for r in range(args.rounds):
            for name in order if r % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                for _ in range(reps[name]):
                    out = rows[name]()
                sync(out)
                times[name].append((time.perf_counter() - start) / reps[name] * 1e6)
        print(f"\n{backend}: " + ", ".join(f"{k} {statistics.median(v):.0f} us"
                                         for k, v in times.items()))
        pairs = [("new eager", "old eager")]
        if backend.startswith("jax"):
            pairs += [("new compile_step", "old compile_step"),
                      ("old compile_step", "jax.jit (hand)"), ("new compile_step", "jax.jit (hand)"),
                      ("old eager", "jax.jit (hand)"), ("new eager", "jax.jit (hand)")]
        print("| row | against | ratio (IQR) |\n| --- | --- | --- |")
        for a, b in pairs:
            ratios = [p / q for p, q in zip(times[a], times[b])]
            q1, _, q3 = statistics.quantiles(ratios, n=4)
            print(f"| {a} | {b} | {statistics.median(ratios):.2f} ({q1:.2f}-{q3:.2f}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
