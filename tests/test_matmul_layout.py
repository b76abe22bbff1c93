"""Weight layouts: each backend's fastest ``x @ W`` operand, values unchanged everywhere.

bp_xp keeps the book's (in, out) weights. The weights it creates itself (networks' initial
weights, checkpoint loads, ``.to()``) are laid out the way the backend's matrix products
prefer: column-major on PyTorch (``torch.nn.Linear``'s own layout), row-major on NumPy.
The references are NumPy float64 products of the same values; a layout must never change
a value, survive into a caller's array, or be lost by an optimizer's update.
"""

from __future__ import annotations

import numpy as np
import pytest

import bp_xp
from bp_xp.backends import matmul_layout, weight_gradient
from bp_xp.layers import Affine
from bp_xp.optim import OPTIMIZERS


def _column_major(xb, W) -> bool:
    """Whether the array's elements run down its columns (checked on the host copy too)."""
    strides = getattr(W, "stride", None)
    if callable(strides):  # torch
        return W.stride() == (1, W.shape[0])
    return bool(np.asarray(xb.to_numpy(W)).flags.f_contiguous) and W.shape[0] > 1


def test_the_layout_changes_no_value_and_the_weight_gradient_equals_x_t_dout(xb, rng):
    if not xb.case.float64:
        pytest.skip("compared in float64, which this device lacks")
    if not xb.case.values:
        pytest.skip("a device without values: nothing to compare")
    hx, hW, hd = (rng.standard_normal(s) for s in ((6, 5), (5, 4), (6, 4)))
    x, W, dout = (xb.asarray(a, "float64") for a in (hx, hW, hd))
    laid = matmul_layout(W)
    np.testing.assert_array_equal(xb.to_numpy(laid), hW)
    np.testing.assert_array_equal(xb.to_numpy(W), hW)  # the argument is never changed
    for weight in (W, laid):
        np.testing.assert_allclose(xb.to_numpy(weight_gradient(x, dout, weight)), hx.T @ hd,
                                   rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(xb.to_numpy(x @ weight), hx @ hW, rtol=1e-13, atol=1e-13)


def test_torch_networks_hold_column_major_weights_and_updates_keep_them(rng):
    torch = pytest.importorskip("torch")
    for name in OPTIMIZERS:
        net = bp_xp.MultiLayerNet(8, [6, 5], 3, backend="torch", dtype="float64", seed=0)
        x = torch.asarray(rng.standard_normal((4, 8)))
        t = torch.asarray(rng.integers(0, 3, 4))
        optimizer = bp_xp.optim.get_optimizer(name, lr=0.01)
        for _ in range(2):
            loss, grads = net.loss_and_gradient(x, t)
            assert grads["W1"].stride() == (1, 8), (name, "the gradient follows its weight")
            optimizer.update(net.params, grads)
        for key in ("W1", "W2", "W3"):
            W = net.params[key]
            assert W.stride() == (1, W.shape[0]), (name, key, W.stride())
        for slot, arrays in optimizer.state_dict()["state"].items():
            assert arrays["W1"].stride() == (1, 8), (name, slot)


def test_the_layout_does_not_change_training_results(rng):
    """One seed, one batch: a torch net (column-major) and a NumPy net (row-major) train to
    the same float64 parameters, step for step."""
    pytest.importorskip("torch")
    nets = {be: bp_xp.TwoLayerNet(8, 6, 3, backend=be, dtype="float64", seed=1,
                                  weight_init_std=0.5) for be in ("numpy", "torch")}
    hx, ht = rng.standard_normal((5, 8)), rng.integers(0, 3, 5)
    optimizers = {be: bp_xp.optim.Adam(lr=0.01) for be in nets}
    for _ in range(3):
        for be, net in nets.items():
            _, grads = net.loss_and_gradient(net.backend.asarray(hx), net.backend.asarray(ht))
            optimizers[be].update(net.params, grads)
    for key in nets["numpy"].params:
        np.testing.assert_allclose(bp_xp.to_numpy(nets["torch"].params[key]),
                                   nets["numpy"].params[key], rtol=1e-12, atol=1e-14,
                                   err_msg=key)


def test_a_callers_weight_is_kept_as_given(rng):
    """The book's layers share arrays with ``params``: Affine must not copy a caller's W."""
    torch = pytest.importorskip("torch")
    W = torch.asarray(rng.standard_normal((5, 4)))
    b = torch.zeros(4, dtype=torch.float64)
    layer = Affine(W, b)
    assert layer.W is W and W.stride() == (4, 1)


def test_moving_and_loading_keep_the_layout(tmp_path, rng):
    torch = pytest.importorskip("torch")
    net = bp_xp.TwoLayerNet(8, 6, 3, backend="torch", dtype="float64", seed=0)
    on_numpy = net.to("numpy")
    assert on_numpy.params["W1"].flags.f_contiguous  # the layout travels with the values
    back = on_numpy.to("torch")
    assert back.params["W1"].stride() == (1, 8)
    path = tmp_path / "net.safetensors"
    bp_xp.checkpoint.save(path, net)
    loaded, _ = bp_xp.checkpoint.load(path, backend="torch")
    assert loaded.params["W1"].stride() == (1, 8)
    other = bp_xp.TwoLayerNet(8, 6, 3, backend="torch", dtype="float64", seed=5)
    other.load_params(path)
    assert other.params["W1"].stride() == (1, 8)
    for key in net.params:
        np.testing.assert_array_equal(bp_xp.to_numpy(other.params[key]),
                                      bp_xp.to_numpy(net.params[key]), err_msg=key)
        np.testing.assert_array_equal(bp_xp.to_numpy(loaded.params[key]),
                                      bp_xp.to_numpy(net.params[key]), err_msg=key)
    assert isinstance(back.params["W1"], torch.Tensor)


def test_load_params_reads_a_bp_xp_checkpoint_on_every_backend(xb, tmp_path):
    """0.3's load_params asked NumPy for the dtype of the loaded arrays: a TypeError on
    PyTorch and array-api-strict networks. The reference is the saved NumPy network."""
    if not xb.case.values:
        pytest.skip("a device without values: nothing to compare")
    source = bp_xp.TwoLayerNet(8, 6, 3, dtype="float32", seed=0)
    path = tmp_path / "net.safetensors"
    source.save_params(path)
    net = bp_xp.TwoLayerNet(8, 6, 3, backend=xb.backend, dtype="float32", seed=7)
    net.load_params(path)
    for key, expected in source.params.items():
        np.testing.assert_array_equal(xb.to_numpy(net.params[key]), expected, err_msg=key)
        assert bp_xp.backend_of(net.params[key]).name == net.backend.name, key
