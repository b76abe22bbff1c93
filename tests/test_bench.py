"""The benchmark's correctness checks and reports (no timing assertions: timings are noise here).

The benchmark lives in ``benchmarks/`` of the source tree, not in the package; its modules
import each other by name, as they do when ``benchmarks/bench_step.py`` runs as a script.
"""

import doctest
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import _book  # noqa: E402
import _checks  # noqa: E402
import _problems  # noqa: E402
import _report  # noqa: E402
import _runners  # noqa: E402
import _timing  # noqa: E402
import bench_step  # noqa: E402

import reference as ref  # noqa: E402


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.slow
def test_every_implementation_agrees_with_bp_xp_on_the_book_net(dtype):
    problem = _problems.make_problem(_problems.NETS[0], dtype)
    assert problem.net.sizes == (784, 50, 10) and problem.x.shape == (100, 784)
    impls = _runners.implementations()
    results = _checks.check_implementations(problem, impls)
    checked = {r.key for r in results}
    expected = {impl.key for impl in impls if impl.unavailable(dtype) is None}
    assert checked == expected and {"book", "bp_xp:numpy"} <= checked
    for result in results:
        assert result.worst() < _checks.CHECK_TOLERANCE[dtype], result


def test_the_reference_of_the_checks_matches_the_books_formulas():
    """bp_xp, the yardstick of check_implementations, against an independent float64 NumPy."""
    problem = _problems.make_problem(_problems.NETS[0], "float64")
    runner = _runners.implementations()[1].make(problem)  # bp_xp on NumPy
    loss, grads = runner.loss_and_grads()
    _, expected_loss, expected = ref.two_layer_forward_backward(problem.x, problem.t, **problem.params)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    for key in expected:
        np.testing.assert_allclose(grads[key], expected[key], rtol=1e-10, atol=1e-14)


def test_a_wrong_implementation_is_caught():
    """The check can fail: an implementation with a bug in its update is reported."""

    class SkipsTheBias(_runners.BookRunner):
        def step(self):
            grads = self.net.gradient(self.x, self.t)
            self.net.params["W1"] -= self.problem.lr * grads["W1"]  # forgets b1, W2, b2

    problem = _problems.make_problem(_problems.NetSpec("tiny", (6, 5, 3), 4), "float64")
    impl = _runners.Implementation("broken", "broken", SkipsTheBias)
    (result,) = _checks.check_implementations(problem, [impl])
    assert result.loss_error < 1e-6 and result.grad_error < 1e-12
    assert result.update_error == pytest.approx(1.0)


def test_step_flops_count_every_product_but_the_first_dx():
    sizes, n = (784, 1024, 1024, 10), 512
    forward = 2 * n * (784 * 1024 + 1024 * 1024 + 1024 * 10)
    assert _problems.predict_flops(sizes, n) == forward
    assert _problems.step_flops(sizes, n) == forward + forward + (forward - 2 * n * 784 * 1024)


def _series(key, dtype, op, times, ratios, label=None):
    return _timing.Series(key, label or key, dtype, op, 2 * 10**6, list(times), list(ratios))


def test_markdown_tables_have_one_row_per_implementation_and_dtype():
    series = [
        _series("book", "float32", "step", [2e-3, 2e-3], [1.0, 1.0], "hand-written"),
        _series("book", "float32", "predict", [1e-3, 1e-3], [1.0, 1.0], "hand-written"),
        _series("bp_xp:numpy", "float32", "step", [1e-3, 1.2e-3], [0.5, 0.6], "bp_xp on NumPy"),
        _series("torch:manual", "float32", "step", [4e-3, 4e-3], [2.0, 2.0], "torch"),
    ]
    result = _timing.NetResult(_problems.NETS[0], "book", series, [], ["jax, float64: not installed"], 2)
    text = _report.markdown_tables([result], {"float32": 10.0})
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| implementation"))
    rows = [line for line in lines[header + 2:] if line.startswith("|")]
    assert len(rows) == 3  # one per step series; predict shares its implementation's row
    assert rows[0].split(" | ")[3:5] == ["1.00 (baseline)", "1.0"]  # 2 MFLOP in 2 ms
    assert "**0.55** (0.53-0.57)" in rows[1] and "| - | - |" in rows[2]
    assert "jax, float64: not installed" in text


def test_write_markdown_keeps_the_hand_written_parts(tmp_path):
    path = tmp_path / "performance.md"
    _report.write_markdown(path, f"{_report.BEGIN_MARK}\nfirst\n{_report.END_MARK}")
    assert path.read_text().startswith("# Performance\n")
    path.write_text(path.read_text() + "\n## Changes\nkept\n")
    _report.write_markdown(path, f"{_report.BEGIN_MARK}\nsecond\n{_report.END_MARK}")
    text = path.read_text()
    assert "second" in text and "first" not in text and text.endswith("## Changes\nkept\n")


def test_time_net_interleaves_and_divides_by_the_baseline_of_the_same_round():
    net = _problems.NetSpec("tiny", (6, 5, 3), 4)
    impls = _runners.implementations()[:2]
    result = _timing.time_net(net, impls, ["float64"], rounds=3, warm_seconds=0.001, block_seconds=0.001)
    expected = {(i.key, op) for i in impls for op in ("step", "predict")}
    assert {(s.key, s.op) for s in result.series} == expected
    by_key = {(s.key, s.op): s for s in result.series}
    for series in result.series:
        base = by_key[("book", series.op)]
        assert len(series.times) == 3 and all(t > 0 for t in series.times)
        assert series.ratios == [a / b for a, b in zip(series.times, base.times)]
    assert by_key[("book", "step")].median_ratio() == 1.0
    assert [c.key for c in result.checks] == ["book", "bp_xp:numpy"]


@pytest.mark.slow  # a whole benchmark run and a matplotlib chart: seconds
def test_main_writes_the_report_and_the_chart(tmp_path, capsys):
    out = tmp_path / "performance.md"
    status = bench_step.main(["--nets", "book", "--dtypes", "float64", "--rounds", "1",
                         "--warm", "0.001", "--block", "0.001", "--peak-size", "256",
                         "--only", "book,bp_xp:numpy", "--out", str(out)])
    assert status == 0
    text = out.read_text()
    assert "### book net: 784-50-10, batch 100" in text and "| bp_xp on NumPy | float64 |" in text
    assert (tmp_path / "performance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "bp_xp on NumPy" in capsys.readouterr().out


def test_main_refuses_unknown_names():
    with pytest.raises(SystemExit):
        bench_step.main(["--nets", "huge"])
    with pytest.raises(SystemExit):
        bench_step.main(["--only", "book,nonsense"])


def test_main_names_the_command_that_ran_it(tmp_path, capsys):
    """``bp-xp bench`` passes its name: it shows in --help and in the report's Command line."""
    with pytest.raises(SystemExit) as exit_info:
        bench_step.main(["--help"], prog="bp-xp bench")
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: bp-xp bench ")
    argv = ["--nets", "book", "--dtypes", "float64", "--rounds", "1", "--warm", "0.001",
            "--block", "0.001", "--peak-size", "64", "--only", "book"]
    assert bench_step.main(argv, prog="bp-xp bench") == 0
    assert f"Command: `bp-xp bench {' '.join(argv)}`" in capsys.readouterr().out


def test_the_baseline_is_the_one_book_network_of_the_test_suite():
    """No copy of the book's network in benchmarks/: the baseline is tests/reference.py's."""
    assert _book.BookNet is ref.BookNet
    runner = _runners.BookRunner(_problems.make_problem(_problems.NetSpec("tiny", (6, 5, 3), 4), "float64"))
    assert type(runner.net) is ref.BookNet


@pytest.mark.parametrize("module", [_problems, _runners, _checks, _timing, _report],
                         ids=lambda m: m.__name__)
def test_the_examples_in_the_benchmark_docstrings_run(module):
    """They ran with bp_xp's doctests while the benchmark was bp_xp.bench; now they run here."""
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# --------------------------------------------------------------------------------------
# The speed-ups keep behaviour: fast paths give exactly what the portable code gives
# --------------------------------------------------------------------------------------


def test_zero_where_is_bit_identical_to_where(xb, dtype, rng):
    """Large enough (300 x 300) for the bitwise NumPy and torch paths, with NaN, inf and -0.0."""
    from bp_xp.backends import zero_where

    host = rng.standard_normal((300, 300))
    host[0, :5] = [np.nan, np.inf, -np.inf, -0.0, 0.0]
    host[1, :5] = [-1.0, np.nan, -np.inf, np.inf, -0.0]
    x = xb.asarray(host, dtype)
    for mask in (x <= 0, xb.asarray(rng.random((300, 300)) < 0.5)):
        got = zero_where(mask, x)
        xb.assert_on_backend(got, dtype)
        expected = xb.to_numpy(xb.xp.where(mask, 0, x))
        bits = np.dtype(f"uint{np.dtype(dtype).itemsize * 8}")
        np.testing.assert_array_equal(xb.to_numpy(got).view(bits), expected.view(bits))
    np.testing.assert_array_equal(xb.to_numpy(x), host.astype(dtype))  # x untouched


def test_affine_backward_without_dx_sets_the_same_gradients(xb, dtype, rng):
    from bp_xp.layers import Affine

    W, b = xb.asarray(rng.standard_normal((6, 4)), dtype), xb.asarray(rng.standard_normal(4), dtype)
    x = xb.asarray(rng.standard_normal((5, 2, 3)), dtype)
    dout = xb.asarray(rng.standard_normal((5, 4)), dtype)
    full, lean = Affine(W, b), Affine(W, b)
    full.forward(x)
    lean.forward(x)
    dx = full.backward(dout)
    assert lean.backward(dout, need_dx=False) is None
    assert tuple(dx.shape) == (5, 2, 3)
    xb.assert_close(lean.dW, xb.to_numpy(full.dW), dtype)
    xb.assert_close(lean.db, xb.to_numpy(full.db), dtype)
