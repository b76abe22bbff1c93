"""Correctness before speed: every implementation against bp_xp on NumPy in float64."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from _problems import Problem
from _runners import BpXpRunner, Implementation

__all__ = ["CHECK_TOLERANCE", "CheckResult", "check_implementations"]


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """How far one implementation is from bp_xp on NumPy in float64 (relative errors)."""

    key: str
    dtype: str
    loss_error: float
    grad_error: float
    update_error: float

    def worst(self) -> float:
        return max(self.loss_error, self.grad_error, self.update_error)


#: Largest relative error :func:`check_implementations` accepts (the book's ``+ 1e-7``
#: inside the log moves its float64 loss by about 1e-7 relative).
CHECK_TOLERANCE = {"float32": 2e-4, "float64": 1e-5}


def _relative(actual: np.ndarray, expected: np.ndarray) -> float:
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    return float(np.max(np.abs(np.asarray(actual, dtype=np.float64) - expected))) / scale


def check_implementations(problem: Problem, impls: Iterable[Implementation]) -> list[CheckResult]:
    """Loss, gradients and one SGD step of each implementation, against bp_xp in float64.

    Parameters
    ----------
    problem : Problem
        Its parameters and data (cast to float64) define the reference.
    impls : iterable of Implementation
        Those that cannot run ``problem.dtype`` here are left out.

    Returns
    -------
    list of CheckResult
        Relative errors of the loss, of the worst gradient, and of the worst parameter
        after one :meth:`Runner.step` (against ``p - lr * grad`` of the reference).

    Examples
    --------
    >>> from _problems import NetSpec, make_problem
    >>> from _runners import implementations
    >>> problem = make_problem(NetSpec("tiny", (6, 5, 3), 4), "float64")
    >>> [r.worst() < 1e-5 for r in check_implementations(problem, implementations()[:2])]
    [True, True]
    """
    reference = dataclasses.replace(
        problem, dtype="float64", x=problem.x.astype(np.float64),
        params={k: v.astype(np.float64) for k, v in problem.params.items()})
    ref_loss, ref_grads = BpXpRunner(reference, "numpy").loss_and_grads()
    expected_params = {k: v - problem.lr * ref_grads[k] for k, v in reference.params.items()}
    results = []
    for impl in impls:
        if impl.unavailable(problem.dtype):
            continue
        runner = impl.make(problem)
        loss, grads = runner.loss_and_grads()
        runner.step()
        after = runner.params()
        results.append(CheckResult(
            impl.key, problem.dtype,
            loss_error=abs(loss - ref_loss) / abs(ref_loss),
            grad_error=max(_relative(grads[k], ref_grads[k]) for k in ref_grads),
            update_error=max(_relative(after[k] - reference.params[k],
                                       expected_params[k] - reference.params[k]) for k in ref_grads),
        ))
    return results
