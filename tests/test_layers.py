"""The chapter-5 layers on every backend: values, gradients, placement, no mutation."""

import numpy as np
import pytest

import reference as ref
from bp_xp import BackendMismatchError, to_device
from bp_xp.layers import AddLayer, Affine, MulLayer, Relu, Sigmoid, SoftmaxWithLoss


def test_apple_example_with_python_numbers():
    apple, apple_num, tax = 100, 2, 1.1
    mul_apple, mul_tax = MulLayer(), MulLayer()
    price = mul_tax.forward(mul_apple.forward(apple, apple_num), tax)
    assert price == pytest.approx(220)
    dapple_price, dtax = mul_tax.backward(1)
    dapple, dapple_num = mul_apple.backward(dapple_price)
    assert (dapple, dapple_num, dtax) == pytest.approx((2.2, 110, 200))


def test_apple_and_orange_example_with_python_numbers():
    mul_apple, mul_orange, add, mul_tax = MulLayer(), MulLayer(), AddLayer(), MulLayer()
    all_price = add.forward(mul_apple.forward(100, 2), mul_orange.forward(150, 3))
    price = mul_tax.forward(all_price, 1.1)
    assert price == pytest.approx(715)
    dall_price, dtax = mul_tax.backward(1)
    dapple_price, dorange_price = add.backward(dall_price)
    dorange, dorange_num = mul_orange.backward(dorange_price)
    dapple, dapple_num = mul_apple.backward(dapple_price)
    assert (dapple_num, dapple, dorange, dorange_num, dtax) == pytest.approx(
        (110, 2.2, 3.3, 165, 650))


def test_mul_and_add_layers_on_arrays(xb, dtype, rng):
    hx, hy, hd = (rng.standard_normal((3, 4)) for _ in range(3))
    x, y, dout = (xb.asarray(a, dtype) for a in (hx, hy, hd))
    mul, add = MulLayer(), AddLayer()
    xb.assert_close(mul.forward(x, y), hx * hy, dtype)
    dx, dy = mul.backward(dout)
    xb.assert_close(dx, hd * hy, dtype)
    xb.assert_close(dy, hd * hx, dtype)
    xb.assert_close(add.forward(x, y), hx + hy, dtype)
    dx, dy = add.backward(dout)
    xb.assert_close(dx, hd, dtype)
    xb.assert_close(dy, hd, dtype)


def test_relu_forward_backward(xb, dtype, rng):
    hx, hd = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    x, dout = xb.asarray(hx, dtype), xb.asarray(hd, dtype)
    layer = Relu()
    xb.assert_close(layer.forward(x), ref.relu(hx), dtype)
    xb.assert_close(layer.backward(dout), hd * (hx > 0), dtype)
    # the book writes `dout[mask] = 0`; ours must leave the caller's arrays alone
    np.testing.assert_array_equal(xb.to_numpy(dout), hd.astype(dtype))
    np.testing.assert_array_equal(xb.to_numpy(x), hx.astype(dtype))


def test_sigmoid_forward_backward(xb, dtype, rng):
    hx, hd = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    layer = Sigmoid()
    y = layer.forward(xb.asarray(hx, dtype))
    s = ref.sigmoid(hx)
    xb.assert_close(y, s, dtype)
    xb.assert_close(layer.backward(xb.asarray(hd, dtype)), hd * s * (1 - s), dtype)


def test_sigmoid_of_extremes_is_finite(xb, dtype):
    layer = Sigmoid()
    y = layer.forward(xb.asarray(np.array([[-1e3, 1e3]]), dtype))
    dx = layer.backward(xb.asarray(np.ones((1, 2)), dtype))
    np.testing.assert_array_equal(xb.to_numpy(y), [[0.0, 1.0]])
    np.testing.assert_array_equal(xb.to_numpy(dx), [[0.0, 0.0]])


@pytest.mark.parametrize("shape", [(6, 12), (4, 1, 3, 4)], ids=["2d", "image_batch"])
def test_affine_forward_backward(xb, dtype, rng, shape):
    hx = rng.standard_normal(shape)
    hW, hb = rng.standard_normal((12, 5)), rng.standard_normal(5)
    hd = rng.standard_normal((shape[0], 5))
    layer = Affine(xb.asarray(hW, dtype), xb.asarray(hb, dtype))
    x, dout = xb.asarray(hx, dtype), xb.asarray(hd, dtype)
    flat = hx.reshape(shape[0], -1)
    xb.assert_close(layer.forward(x), flat @ hW + hb, dtype)
    dx = layer.backward(dout)
    assert tuple(dx.shape) == shape
    xb.assert_close(dx, (hd @ hW.T).reshape(shape), dtype)
    xb.assert_close(layer.dW, flat.T @ hd, dtype)
    xb.assert_close(layer.db, hd.sum(axis=0), dtype)
    for arr, host in ((x, hx), (dout, hd), (layer.W, hW), (layer.b, hb)):
        np.testing.assert_array_equal(xb.to_numpy(arr), host.astype(dtype))


def test_affine_on_mnist_shaped_batch(xb, rng):
    hx = rng.random((3, 1, 28, 28))
    hW = rng.standard_normal((784, 10)) * 0.01
    layer = Affine(xb.asarray(hW, "float32"), xb.asarray(np.zeros(10), "float32"))
    out = layer.forward(xb.asarray(hx, "float32"))
    xb.assert_close(out, hx.reshape(3, 784) @ hW, "float32")
    dx = layer.backward(xb.asarray(np.ones((3, 10)), "float32"))
    assert tuple(dx.shape) == (3, 1, 28, 28)
    xb.assert_on_backend(dx, "float32")


@pytest.mark.parametrize("labels", ["uint8", "int32", "int64", "one_hot"])
def test_softmax_with_loss(xb, dtype, rng, labels):
    hx = rng.standard_normal((6, 4)) * 2
    ht = rng.integers(0, 4, size=6)
    t = xb.asarray(ref.one_hot(ht, 4), dtype) if labels == "one_hot" else xb.asarray(ht, labels)
    layer = SoftmaxWithLoss()
    loss = layer.forward(xb.asarray(hx, dtype), t)
    xb.assert_close(loss, ref.cross_entropy_from_logits(hx, ht), dtype)
    expected_dx = (ref.softmax(hx) - ref.one_hot(ht, 4)) / 6
    xb.assert_close(layer.backward(), expected_dx, dtype)
    xb.assert_close(layer.backward(2.5), 2.5 * expected_dx, dtype)  # dout is honoured
    xb.assert_close(layer.backward(xb.asarray(np.array(0.5), dtype)), 0.5 * expected_dx, dtype)


def test_softmax_with_loss_of_huge_logits_is_finite(xb, dtype):
    layer = SoftmaxWithLoss()
    x = xb.asarray(np.array([[1e3, -1e3, 0.0], [-1e3, 1e3, 1e3]]), dtype)
    loss = layer.forward(x, xb.asarray(np.array([1, 0]), "int32"))
    # each sample's correct logit is 2000 (or 1000 + log 2) below the largest one
    np.testing.assert_allclose(xb.to_numpy(loss), (2000.0 + 2000.0 + np.log(2.0)) / 2, rtol=1e-6)
    assert np.all(np.isfinite(xb.to_numpy(layer.backward())))


def test_float32_end_to_end_through_all_layers(xb, rng):
    x = xb.asarray(rng.standard_normal((4, 6)), "float32")
    affine = Affine(xb.asarray(rng.standard_normal((6, 3)), "float32"),
                    xb.asarray(np.zeros(3), "float32"))
    relu, sig, loss_layer = Relu(), Sigmoid(), SoftmaxWithLoss()
    h = sig.forward(relu.forward(affine.forward(x)))
    loss = loss_layer.forward(h, xb.asarray(np.array([0, 1, 2, 0]), "int64"))
    xb.assert_on_backend(loss, "float32")
    grad = affine.backward(relu.backward(sig.backward(loss_layer.backward(1.0))))
    for arr in (h, grad, affine.dW, affine.db):
        xb.assert_on_backend(arr, "float32")


def test_mixed_backends_are_refused_before_compute(rng):
    W = np.ones((3, 2))
    layer = Affine(W, np.zeros(2))
    x = to_device(rng.standard_normal((4, 3)), "array_api_strict")
    with pytest.raises(BackendMismatchError, match=r"x is a array_api_strict.* W is a numpy"):
        layer.forward(x)
    assert layer.x is None  # nothing was cached
    with pytest.raises(BackendMismatchError, match="different backends"):
        MulLayer().forward(np.ones((4, 3)), x)


def test_mixed_devices_are_refused_before_compute(rng):
    W = to_device(np.ones((3, 2)), "array_api_strict:device1")
    b = to_device(np.zeros(2), "array_api_strict:device1")
    layer = Affine(W, b)
    x = to_device(rng.standard_normal((4, 3)), "array_api_strict")
    with pytest.raises(BackendMismatchError,
                       match=r"x is on .*CPU_DEVICE.*W is on .*device1"):
        layer.forward(x)
    with pytest.raises(BackendMismatchError, match="different devices"):
        Affine(W, to_device(np.zeros(2), "array_api_strict:device2"))


def test_shape_errors_name_the_shapes():
    layer = Affine(np.ones((4, 2)), np.zeros(2))
    with pytest.raises(ValueError, match=r"x of shape \(3, 5\) has 5 features.*expects 4"):
        layer.forward(np.ones((3, 5)))
    layer.forward(np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(3, 2\)"):
        layer.backward(np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"b of shape \(out,\)"):
        Affine(np.ones((4, 2)), np.zeros(3))
    with pytest.raises(RuntimeError, match="before forward"):
        Relu().backward(np.ones(2))


# -- Sequential checks its layers once -----------------------------------------------------


def test_sequential_refuses_layer_names_that_are_not_strings():
    """``{1: A, "1": B}`` used to become one entry and drop A."""
    import bp_xp

    a, b = Affine(np.ones((3, 2)), np.zeros(2)), Relu()
    with pytest.raises(TypeError, match=r"layer names must be non-empty strings, got 1 \(int\)"):
        bp_xp.Sequential({1: a, "1": b})
    with pytest.raises(TypeError, match="non-empty strings"):
        bp_xp.Sequential({"": a})


def test_a_backward_returning_none_is_an_error_naming_the_layer():
    import bp_xp

    class Forgetful(bp_xp.Layer):
        def forward(self, x):
            return x

        def backward(self, dout):
            self.grads = {}  # forgot to return dout

    net = bp_xp.Sequential({"fc": Affine(np.ones((3, 2)), np.zeros(2)), "oops": Forgetful()})
    with pytest.raises(TypeError, match=r"layer 'oops' \(Forgetful\)\.backward returned None"):
        net.gradient(np.ones((2, 3)), np.array([0, 1]))
