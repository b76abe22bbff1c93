"""Time one training step and inference of bp_xp against the book's NumPy code, PyTorch and JAX.

Run:  python benchmarks/bench_step.py [--quick] [--out docs/performance.md]

Everything (implementations, method, report) lives in :mod:`bp_xp.bench`, which
``bp-xp bench`` runs too; see docs/performance.md for the results and how to read them.
"""

import sys

from bp_xp.bench import main

if __name__ == "__main__":
    sys.exit(main())
