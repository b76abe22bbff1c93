"""The GPU check's pieces that run anywhere: the peak table, the docs include, the conv baselines.

The check itself (``benchmarks/gpu_check.sh``) needs a GPU for its real run and minutes for
its CPU rehearsal, so it is not run here; these tests hold the parts that could silently go
wrong without one.
"""

from __future__ import annotations

import doctest
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import _gpu_dense  # noqa: E402
import bench_conv  # noqa: E402
import gpu_check  # noqa: E402

import bp_xp  # noqa: E402


def test_the_peak_table_doctests():
    assert doctest.testmod(_gpu_dense).failed == 0


def test_a_more_specific_device_name_wins():
    assert _gpu_dense.datasheet_peak("NVIDIA H100 PCIe", _gpu_dense.FP32_PEAK_TFLOPS)[0] == "H100 PCIe"
    assert _gpu_dense.datasheet_peak("NVIDIA L40S", _gpu_dense.FP32_PEAK_TFLOPS)[0] == "L40S"


def test_including_results_replaces_the_previous_block(tmp_path):
    page = tmp_path / "performance.md"
    page.write_text("# Performance\n\nbefore\n")
    gpu_check.include("### GPU check on **A**\n", page)
    gpu_check.include("### GPU check on **B**\n", page)
    text = page.read_text()
    assert text.count(gpu_check.END) == 1 and "**B**" in text and "**A**" not in text
    assert text.startswith("# Performance\n\nbefore\n")


def test_the_books_conv_layers_give_bp_xps_first_loss_and_update():
    """bench_conv's baseline is a correct network: loss and one SGD step against bp_xp's."""
    rng = np.random.default_rng(0)
    x, t = rng.random((4, 1, 28, 28)), rng.integers(0, 10, size=4)
    net = bp_xp.SimpleConvNet(dtype="float64", seed=0)
    params = {k: np.array(v) for k, v in net.params.items()}
    book = bench_conv.BookNetwork(net, params)
    loss = book.step(x, t)
    expected, grads = net.loss_and_gradient(x, t)
    assert loss == pytest.approx(float(expected), rel=1e-6)  # the book adds 1e-7 inside its log
    for key, grad in grads.items():
        np.testing.assert_allclose(book.params[key], params[key] - bench_conv.LR * np.asarray(grad),
                                   rtol=1e-6, atol=1e-9, err_msg=key)
