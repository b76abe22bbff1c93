"""Speed v2: bp_xp's training step against the best hand-written step of each backend.

Run:  python benchmarks/bench_compile.py [--rounds 15] [--nets book,wide] [--dtypes float32,float64]

One interleaved run (``_timing.time_net``) times, on the same network, batch and weights:

- the book's hand-written NumPy network and bp_xp on NumPy (target: bp_xp <= 0.90x the
  book on the book net, <= 0.75x on the wide net, float32);
- PyTorch eager + autograd with a hand-written SGD update, bp_xp on PyTorch with the
  benchmarks' reassignment update (``params[k] = params[k] - lr * g``) and bp_xp on PyTorch
  through ``bp_xp.compile_step`` with ``bp_xp.optim.SGD`` (what the Trainer runs)
  (target: <= 1.00x PyTorch);
- a hand-written ``jax.jit`` step, ``bp_xp.compile_step`` on JAX and bp_xp's eager JAX
  step (target: compiled <= 1.05x the hand-written jit).

Each target is a pair of rows; the table reports the median over rounds of the ratio
within a round (and its interquartile range), so that load from other processes, which
moves both rows of a round alike, mostly cancels. Every row is first checked against
bp_xp on NumPy in float64 (loss, gradients, one update).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence

from _checks import CHECK_TOLERANCE
from _problems import NETS, Problem
from _report import machine_description
from _runners import BookRunner, BpXpRunner, Implementation, JaxJitRunner, TorchEagerRunner
from _timing import NetResult, time_net

import bp_xp
from bp_xp.optim import SGD

__all__ = ["BpXpCompiledRunner", "PAIRS", "main"]


class BpXpCompiledRunner(BpXpRunner):
    """bp_xp's step through :func:`bp_xp.compile_step` with :class:`bp_xp.optim.SGD`."""

    def __init__(self, problem: Problem, backend: str) -> None:
        super().__init__(problem, backend)
        self.optimizer = SGD(lr=problem.lr)
        self.compiled = bp_xp.compile_step(self.net, self.optimizer)

    def step(self) -> None:
        self.compiled(self.x, self.t)
        self._sync(list(self.net.params.values()))


class PortableLossRunner(BpXpCompiledRunner):
    """As :class:`BpXpCompiledRunner`, with the backend's fused loss kernel switched off:
    the portable log-sum-exp loss, to measure what the fused kernel saves."""

    def step(self) -> None:
        import bp_xp.layers.loss as loss_module

        fused = loss_module._fused_loss
        loss_module._fused_loss = lambda *args: None
        try:
            super().step()
        finally:
            loss_module._fused_loss = fused


def implementations() -> list[Implementation]:
    """The rows, baseline (the book's NumPy code) first."""
    return [
        Implementation("book", "hand-written NumPy (the book's code)", BookRunner),
        Implementation("bp_xp:numpy", "bp_xp on NumPy", lambda p: BpXpRunner(p, "numpy"),
                       predict=False),
        Implementation("torch:manual", "PyTorch eager, autograd + manual SGD",
                       lambda p: TorchEagerRunner(p, "cpu", optimizer=False), library="torch",
                       predict=False),
        Implementation("bp_xp:torch", "bp_xp on PyTorch, reassignment update",
                       lambda p: BpXpRunner(p, "torch:cpu"), library="torch", predict=False),
        Implementation("bp_xp:torch:step", "bp_xp on PyTorch, compile_step + optim.SGD",
                       lambda p: BpXpCompiledRunner(p, "torch:cpu"), library="torch",
                       predict=False),
        Implementation("bp_xp:torch:step:portable-loss",
                       "bp_xp on PyTorch, compile_step + optim.SGD, portable loss",
                       lambda p: PortableLossRunner(p, "torch:cpu"), library="torch", predict=False),
        Implementation("jax:jit", "JAX, hand-written jit of the whole step",
                       lambda p: JaxJitRunner(p, "cpu"), library="jax", predict=False),
        Implementation("bp_xp:jax:compiled", "bp_xp on JAX, compile_step (jax.jit)",
                       lambda p: BpXpCompiledRunner(p, "jax:cpu"), library="jax", predict=False),
        Implementation("bp_xp:jax", "bp_xp on JAX, eager", lambda p: BpXpRunner(p, "jax:cpu"),
                       library="jax", predict=False),
    ]


#: (row, its peer, the target ratio per net or None): the pairs the issue sets targets for.
PAIRS: tuple[tuple[str, str, dict[str, float] | None], ...] = (
    ("bp_xp:numpy", "book", {"book": 0.90, "wide": 0.75}),
    ("bp_xp:torch", "torch:manual", {"book": 1.00, "wide": 1.00}),
    ("bp_xp:torch:step", "torch:manual", {"book": 1.00, "wide": 1.00}),
    ("bp_xp:torch:step:portable-loss", "torch:manual", None),
    ("bp_xp:torch:step", "bp_xp:torch:step:portable-loss", None),
    ("bp_xp:jax:compiled", "jax:jit", {"book": 1.05, "wide": 1.05}),
    ("bp_xp:jax", "jax:jit", None),
)


def _pair_ratios(result: NetResult, key: str, peer: str, dtype: str) -> list[float] | None:
    by_key = {(s.key, s.dtype): s for s in result.series if s.op == "step"}
    a, b = by_key.get((key, dtype)), by_key.get((peer, dtype))
    if a is None or b is None:
        return None
    return [x / y for x, y in zip(a.times, b.times)]


def _quartiles(values: Sequence[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def pair_table(results: Sequence[NetResult], dtypes: Sequence[str]) -> str:
    """Markdown: one row per (net, pair), the median within-round ratio per dtype."""
    labels = {impl.key: impl.label for impl in implementations()}
    head = "| net | step | peer | " + " | ".join(f"{d} ratio" for d in dtypes) + " | target |"
    lines = [head, "|---|---|---|" + "---:|" * len(dtypes) + "---:|"]
    for result in results:
        for key, peer, targets in PAIRS:
            cells = []
            for dtype in dtypes:
                ratios = _pair_ratios(result, key, peer, dtype)
                if ratios is None:
                    cells.append("-")
                    continue
                low, high = _quartiles(ratios)
                cells.append(f"**{statistics.median(ratios):.2f}** ({low:.2f}-{high:.2f})")
            target = "-" if targets is None else f"<= {targets[result.net.name]:.2f}"
            lines.append(f"| {result.net.name} | {labels[key]} | {labels[peer]} | "
                         + " | ".join(cells) + f" | {target} |")
    return "\n".join(lines)


def time_table(results: Sequence[NetResult]) -> str:
    """Markdown: the median step time of every row."""
    lines = ["| net | implementation | dtype | step ms |", "|---|---|---|---:|"]
    for result in results:
        for s in result.series:
            if s.op == "step":
                lines.append(f"| {result.net.name} | {s.label} | {s.dtype} | "
                             f"{s.median_time() * 1e3:.3f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_compile.py", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--nets", default="book,wide")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--only", default=None, help="comma-separated row keys (book is kept)")
    parser.add_argument("--warm", type=float, default=0.15)
    parser.add_argument("--block", type=float, default=0.1)
    args = parser.parse_args(argv)
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
    except ImportError:
        pass
    dtypes = [d for d in args.dtypes.split(",") if d]
    impls = implementations()
    if args.only:
        keep = set(args.only.split(","))
        impls = impls[:1] + [i for i in impls[1:] if i.key in keep]
    results = []
    for net in NETS:
        if net.name not in args.nets.split(","):
            continue
        result = time_net(net, impls, dtypes, args.rounds, warm_seconds=args.warm,
                          block_seconds=args.block,
                          progress=lambda m: print(m, file=sys.stderr, flush=True))
        bad = [c for c in result.checks if c.worst() > CHECK_TOLERANCE[c.dtype]]
        if bad:
            for c in bad:
                print(f"error: {c.key} ({c.dtype}) disagrees with bp_xp in float64: {c}",
                      file=sys.stderr)
            return 1
        results.append(result)
    info = machine_description()
    print(f"Measured {info['date']} on {info['cpu']}; "
          + ", ".join(f"{k} {v}" for k, v in info.items() if k not in ("date", "cpu")) + ".\n")
    print(f"Command: `python benchmarks/bench_compile.py {' '.join(argv or sys.argv[1:])}`\n")
    print(pair_table(results, dtypes))
    print()
    print(time_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
