"""Side-by-side timing: implementations interleaved round by round, as ratios to a baseline.

Every implementation runs in one process, interleaved round by round (the starting point
rotates each round). Right before its timed block an implementation runs about
:data:`WARM_SECONDS` untimed, so that thread pools the previous library left spinning
(OpenBLAS, OpenMP) have settled and caches are warm; nothing sleeps between blocks. A block
reports the median of its individually timed calls; each round divides every block by the
baseline's block of the same round, and the tables report the median of those ratios.
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from _checks import CheckResult, check_implementations
from _problems import NetSpec, make_problem, predict_flops, step_flops
from _runners import Implementation, Runner

__all__ = ["WARM_SECONDS", "NetResult", "Series", "matmul_peak", "time_net"]

WARM_SECONDS = 0.15


@dataclasses.dataclass
class Series:
    """Timings of one (implementation, dtype, operation) over the rounds."""

    key: str
    label: str
    dtype: str
    op: str  # "step" or "predict"
    flops: int
    times: list[float] = dataclasses.field(default_factory=list)  # seconds, one per round
    ratios: list[float] = dataclasses.field(default_factory=list)  # to the baseline, per round

    def median_time(self) -> float:
        return statistics.median(self.times)

    def median_ratio(self) -> float:
        return statistics.median(self.ratios)

    def ratio_quartiles(self) -> tuple[float, float]:
        if len(self.ratios) < 2:
            return self.ratios[0], self.ratios[0]
        q = statistics.quantiles(self.ratios, n=4, method="inclusive")
        return q[0], q[2]


@dataclasses.dataclass
class NetResult:
    """All series of one network, plus what was skipped and the correctness checks."""

    net: NetSpec
    baseline: str
    series: list[Series]
    checks: list[CheckResult]
    skipped: list[str]
    rounds: int


def _warm(fn: Callable[[], None], seconds: float) -> float:
    """Run ``fn`` untimed for about ``seconds``; returns the mean seconds per call."""
    start = time.perf_counter()
    calls = 0
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / calls


def _timed_block(fn: Callable[[], None], per_call: float, block_seconds: float) -> float:
    """Median seconds of individually timed calls, about ``block_seconds`` of them (>= 5)."""
    reps = max(5, min(200, int(block_seconds / max(per_call, 1e-6))))
    times = []
    clock = time.perf_counter
    for _ in range(reps):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


def time_net(net: NetSpec, impls: Sequence[Implementation], dtypes: Sequence[str], rounds: int,
             warm_seconds: float = WARM_SECONDS, block_seconds: float = 0.1,
             progress: Callable[[str], None] | None = None) -> NetResult:
    """Interleaved timing of ``impls`` on ``net``; the first implementation is the baseline.

    Each round runs every (implementation, dtype, operation) once, starting one place
    further along than the round before: ``reset`` to the initial weights, about
    ``warm_seconds`` untimed, then a timed block. Ratios are taken within the round.
    """
    units: list[tuple[Series, Runner, Callable[[], None]]] = []
    skipped: list[str] = []
    checks: list[CheckResult] = []
    for dtype in dtypes:
        problem = make_problem(net, dtype)
        usable = []
        for impl in impls:
            reason = impl.unavailable(dtype)
            if reason:
                skipped.append(f"{impl.label}, {dtype}: {reason}")
            else:
                usable.append(impl)
        checks += check_implementations(problem, usable)
        for impl in usable:
            runner = impl.make(problem)
            units.append((Series(impl.key, impl.label, dtype, "step",
                                 step_flops(net.sizes, net.batch)), runner, runner.step))
            if impl.predict:
                units.append((Series(impl.key, impl.label, dtype, "predict",
                                     predict_flops(net.sizes, net.batch)), runner, runner.predict))
    for r in range(rounds):
        if progress:
            progress(f"{net.name}: round {r + 1}/{rounds}")
        shift = r % len(units)
        for series, runner, fn in units[shift:] + units[:shift]:
            runner.reset()
            per_call = _warm(fn, warm_seconds)
            gc.disable()
            try:
                series.times.append(_timed_block(fn, per_call, block_seconds))
            finally:
                gc.enable()
    baseline = impls[0].key
    by_unit = {(s.key, s.dtype, s.op): s for s, _, _ in units}
    for series, _, _ in units:
        base = by_unit.get((baseline, series.dtype, series.op))
        if base is not None:
            series.ratios = [a / b for a, b in zip(series.times, base.times)]
    return NetResult(net, baseline, [s for s, _, _ in units], checks, skipped, rounds)


def matmul_peak(dtype: str, n: int = 2048, repeats: int = 7) -> float:
    """GFLOP/s of a large square matrix product in NumPy: the machine's practical peak.

    Examples
    --------
    >>> from _timing import matmul_peak
    >>> matmul_peak("float64", n=64, repeats=1) > 0
    True
    """
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    _warm(lambda: a @ b, WARM_SECONDS)
    best = statistics.median(_time_once(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _time_once(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
