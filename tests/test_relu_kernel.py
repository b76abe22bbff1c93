"""The ReLU layer's backend kernel (PyTorch: ``torch.relu`` and ``threshold_backward``).

Held to the portable path (the book's mask ``x <= 0`` and ``where``) on the same backend
and to a NumPy float64 formula: the same values for finite numbers, infinities, signed
zeros and NaN, forward and backward, and the book's ``mask`` attribute alike.
"""

from __future__ import annotations

import numpy as np
import pytest

import bp_xp
from bp_xp import backends
from bp_xp.layers import Relu

EDGES = [-2.0, -0.0, 0.0, 1e-300, -1e-300, 3.5, np.inf, -np.inf, np.nan]


def _portable(monkeypatch):
    """Switch the backends' ReLU kernels off: the portable mask path answers."""
    from bp_xp.backends import _kernels

    monkeypatch.setattr(_kernels, "fast_kernel", lambda name, x: None)


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_the_relu_kernel_equals_the_portable_path(xb, rng, monkeypatch, dtype_name):
    if dtype_name == "float64" and not xb.case.float64:
        pytest.skip("this device has no float64")
    if not xb.case.values:
        pytest.skip("a device without values: nothing to compare")
    hx = np.concatenate([np.array(EDGES), rng.standard_normal(23)]).reshape(4, 8)
    hd = rng.standard_normal((4, 8))
    x, dout = xb.asarray(hx, dtype_name), xb.asarray(hd, dtype_name)
    results = {}
    for path in ("kernel", "portable"):
        with monkeypatch.context() as patch:
            if path == "portable":
                _portable(patch)
            layer = Relu()
            out = layer.forward(x)
            grad = layer.backward(dout)
            results[path] = (xb.to_numpy(out), xb.to_numpy(grad), xb.to_numpy(layer.mask))
    hx = hx.astype(dtype_name)  # what the layer sees (1e-300 is 0 in float32)
    expected_out = np.where(hx <= 0, 0.0, hx).astype(dtype_name)  # NaN <= 0 is False: NaN
    expected_grad = np.where(hx <= 0, 0.0, hd.astype(dtype_name)).astype(dtype_name)
    for path, (out, grad, mask) in results.items():
        np.testing.assert_array_equal(out, expected_out, err_msg=path)
        np.testing.assert_array_equal(grad, expected_grad, err_msg=path)
        np.testing.assert_array_equal(mask, hx <= 0, err_msg=path)
    np.testing.assert_array_equal(xb.to_numpy(x), hx)  # input untouched


def test_torch_uses_its_kernel_and_keeps_no_mask():
    torch = pytest.importorskip("torch")
    layer = Relu()
    x = torch.tensor([[-1.0, 2.0]])
    assert backends.fast_kernel("relu", x) is not None
    layer.forward(x)
    assert layer._mask is None and layer._out is not None  # one tensor kept, not two
    assert layer.mask.tolist() == [[True, False]]


def test_a_gradient_of_another_dtype_takes_the_portable_promotion(rng):
    """threshold_backward needs one dtype; a float64 gradient into a float32 ReLU follows
    the Array API's promotion (float64), as on every other backend."""
    torch = pytest.importorskip("torch")
    layer = Relu()
    layer.forward(torch.tensor([[-1.0, 2.0]], dtype=torch.float32))
    grad = layer.backward(torch.tensor([[3.0, 4.0]], dtype=torch.float64))
    assert grad.dtype == torch.float64 and grad.tolist() == [[0.0, 4.0]]
    int_grad = layer.backward(torch.tensor([[3, 4]]))  # integer gradients become floating
    assert int_grad.dtype == torch.float32 and int_grad.tolist() == [[0.0, 4.0]]


def test_networks_on_torch_train_as_on_numpy(rng):
    """The kernel in a whole step: a torch TwoLayerNet equals the NumPy one in float64."""
    pytest.importorskip("torch")
    hx, ht = rng.standard_normal((6, 8)), rng.integers(0, 3, 6)
    grads = {}
    for be in ("numpy", "torch"):
        net = bp_xp.TwoLayerNet(8, 5, 3, backend=be, dtype="float64", seed=0, weight_init_std=0.5)
        grads[be] = net.gradient(net.backend.asarray(hx), net.backend.asarray(ht))
    for key, expected in grads["numpy"].items():
        np.testing.assert_allclose(bp_xp.to_numpy(grads["torch"][key]), expected, rtol=1e-12,
                                   atol=1e-14, err_msg=key)
