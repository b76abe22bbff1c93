"""Time a training step and inference of bp_xp against the book's NumPy code, PyTorch and JAX.

Run:  python benchmarks/bench_step.py [--quick] [--out docs/performance.md]
(or ``bp-xp bench`` from a source checkout, which runs this script).

It times, on the same network, batch and initial weights:

- the book's hand-written NumPy network (``BookNet`` of ``tests/reference.py``, in the
  book's style: ``np.dot``, boolean-mask ReLU, in-place SGD), the baseline;
- bp_xp on each installed backend (NumPy, PyTorch on the CPU, JAX eager) in float32 and
  float64;
- PyTorch eager (``nn.Linear``/``ReLU``/``F.cross_entropy``/``backward``) with
  ``torch.optim.SGD`` and with a hand-written SGD update;
- JAX with the whole step (``value_and_grad`` plus SGD) under ``jax.jit``.

Every implementation is first checked: its loss, gradients and one SGD update on the
first batch must match bp_xp on NumPy in float64. See docs/performance.md for the results,
the method and how to read them.

The parts, one concern per module beside this script: ``_problems.py`` (nets, data,
FLOPs), ``_book.py`` (the baseline network), ``_runners.py`` (the implementations),
``_checks.py`` (correctness first), ``_timing.py`` (interleaved ratio timing) and
``_report.py`` (Markdown and chart).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from _checks import CHECK_TOLERANCE
from _problems import DTYPES, NETS
from _report import markdown_report, write_chart, write_markdown
from _runners import implementations
from _timing import WARM_SECONDS, NetResult, matmul_peak, time_net

__all__ = ["main"]


def _enable_jax_float64() -> None:
    try:
        import jax
    except ImportError:
        return
    jax.config.update("jax_enable_x64", True)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run the benchmark; write the Markdown report and the chart. Returns an exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The options; default ``sys.argv[1:]``.
    prog : str, optional
        The command's name in ``--help`` and in the report's "Command:" line; ``bp-xp bench``
        passes its own. Default: this script.
    """
    parser = argparse.ArgumentParser(
        prog=prog or "bench_step.py",
        description="Time a training step and inference of bp_xp against the book's NumPy code, "
                    "PyTorch eager and JAX jit, interleaved in one process.")
    parser.add_argument("--quick", action="store_true",
                        help="few rounds: for iterating, not for reporting")
    parser.add_argument("--out", default=None,
                        help="Markdown file to update (e.g. docs/performance.md); the chart goes "
                             "next to it as a .png. Without it, tables are only printed")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per network")
    parser.add_argument("--nets", default="book,wide,large",
                        help="comma-separated subset of: " + ", ".join(n.name for n in NETS))
    parser.add_argument("--dtypes", default=",".join(DTYPES), help="comma-separated dtypes")
    parser.add_argument("--only", default=None,
                        help="comma-separated implementation keys to time (the baseline is always "
                             "kept): " + ", ".join(i.key for i in implementations() + implementations(True)))
    parser.add_argument("--warm", type=float, default=WARM_SECONDS,
                        help="untimed seconds right before each timed block (default %(default)s)")
    parser.add_argument("--block", type=float, default=0.1,
                        help="seconds of timed calls per block (at least 5 calls; default %(default)s)")
    parser.add_argument("--peak-size", type=int, default=2048,
                        help="side of the square matmul that measures the peak (default %(default)s)")
    args = parser.parse_args(argv)

    _enable_jax_float64()
    chosen = [n.strip() for n in args.nets.split(",") if n.strip()]
    unknown = set(chosen) - {n.name for n in NETS}
    if unknown:
        parser.error(f"unknown net(s) {sorted(unknown)}; choose from {[n.name for n in NETS]}")
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if set(dtypes) - set(DTYPES):
        parser.error(f"dtypes must be among {DTYPES}, got {dtypes}")
    only = None if args.only is None else {k.strip() for k in args.only.split(",") if k.strip()}
    known = {i.key for i in implementations() + implementations(gpu=True)}
    if only is not None and only - known:
        parser.error(f"unknown implementation(s) {sorted(only - known)}; choose from {sorted(known)}")

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    peaks = {dtype: matmul_peak(dtype, n=args.peak_size) for dtype in dtypes}
    results: list[NetResult] = []
    notes: list[str] = []
    for net in NETS:
        if net.name not in chosen:
            continue
        impls = implementations(gpu=net.gpu)
        if only is not None:
            impls = impls[:1] + [impl for impl in impls[1:] if impl.key in only]
        if net.gpu:
            usable = [impl for impl in impls if not impl.unavailable("float32")]
            if not usable:
                notes.append(f"The GPU-sized net ({net}): skipped, no GPU here "
                             f"({impls[0].unavailable('float32')}).")
                continue
            impls = usable
        rounds = args.rounds or (4 if args.quick else (24 if net.name == "book" else 12))
        result = time_net(net, impls, ["float32"] if net.gpu else dtypes, rounds,
                          warm_seconds=args.warm, block_seconds=args.block, progress=progress)
        bad = [c for c in result.checks if c.worst() > CHECK_TOLERANCE[c.dtype]]
        if bad:
            for c in bad:
                print(f"error: {c.key} ({c.dtype}) disagrees with bp_xp in float64: {c}", file=sys.stderr)
            return 1
        results.append(result)
    if prog is not None:  # e.g. `bp-xp bench`
        command = " ".join([prog, *(sys.argv[1:] if argv is None else argv)])
    elif argv is None:  # run as a script
        script = os.path.relpath(sys.argv[0]) if sys.argv[0] else "benchmarks/bench_step.py"
        command = " ".join(["python", script, *sys.argv[1:]])
    else:  # called from Python
        command = " ".join(["python benchmarks/bench_step.py", *argv])
    report = markdown_report(results, peaks, command, notes)
    print(report)
    if args.out:
        write_markdown(args.out, report)
        if results:
            write_chart(results, Path(args.out).with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
