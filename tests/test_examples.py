"""The examples print the book's numbers and pass their own checks."""

import subprocess
import sys
from pathlib import Path

import pytest

import bp_xp

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_buy_apple_prints_the_books_values():
    out = _run("buy_apple.py")
    for line in ("price: 220", "dApple: 2.2", "dApple_num: 110", "dTax: 200", "price: 715",
                 "dApple_num: 110, dApple: 2.2", "dOrange: 3.3, dOrange_num: 165", "dTax: 650"):
        assert line in out, f"{line!r} missing from:\n{out}"


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax", "array_api_strict"])
@pytest.mark.slow
def test_gradient_check_example(backend):
    if backend not in bp_xp.available_backends():
        pytest.skip(f"{backend} is not installed")
    out = _run("gradient_check.py", "--backend", backend)
    errors = [float(line.split(":")[1]) for line in out.splitlines()
              if line[:2] in ("W1", "b1", "W2", "b2")]
    assert len(errors) == 4
    assert max(errors) < 1e-6


@pytest.mark.slow
def test_train_dask_example_learns_on_a_local_cluster():
    pytest.importorskip("dask.distributed")
    out = _run("train_dask.py", "--workers", "2", "--chunks", "2", "--iters", "60",
               "--log-every", "30", "--lr", "0.5")
    losses = [float(line.split("loss")[1]) for line in out.splitlines() if line.startswith("iter")]
    assert len(losses) == 2 and losses[1] < losses[0] < 2.31  # below chance level, then lower
    test_acc = float(out.split("test acc")[1])
    assert test_acc > 0.5  # ten classes: chance is 0.1
