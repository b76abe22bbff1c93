"""The baseline: the book's chapter-5 network, hand-written in NumPy (:class:`BookNet`).

Its one copy outside bp_xp is ``tests/reference.py``, which the test suite also checks bp_xp
against; the benchmarks import it from there instead of keeping a copy of their own.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent.parent / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)

from reference import BookAffine, BookNet, BookRelu, BookSoftmaxWithLoss  # noqa: E402

__all__ = ["BookAffine", "BookNet", "BookRelu", "BookSoftmaxWithLoss"]
