"""TwoLayerNet and MultiLayerNet on the matrix: the book's API, one owner per parameter."""

import numpy as np
import pytest

import bp_xp
import reference as ref
from bp_xp import BackendMismatchError, MultiLayerNet, TwoLayerNet
from layer_checks import REPEATING_ROWS


def _net_and_batch(xb, dtype, rng, n=6):
    net = TwoLayerNet(8, 5, 3, weight_init_std=0.5, backend=xb.backend, dtype=dtype, seed=3)
    hx = rng.standard_normal((n, 8))
    ht = rng.integers(0, 3, size=n)
    return net, hx, ht, xb.asarray(hx, dtype), xb.asarray(ht, "int64")


def test_same_seed_gives_the_same_weights_on_every_backend(xb, dtype):
    net = TwoLayerNet(8, 5, 3, backend=xb.backend, dtype=dtype, seed=11)
    host = TwoLayerNet(8, 5, 3, backend="numpy", dtype="float64", seed=11)
    for key in ("W1", "b1", "W2", "b2"):
        xb.assert_close(net.params[key], bp_xp.to_numpy(host.params[key]), dtype)
    assert float(np.std(bp_xp.to_numpy(host.params["W1"]))) == pytest.approx(0.01, rel=0.5)


def test_predict_loss_gradient_match_the_book_in_numpy(xb, dtype, rng):
    net, hx, ht, x, t = _net_and_batch(xb, dtype, rng)
    hp = {k: bp_xp.to_numpy(v).astype(np.float64) for k, v in net.params.items()}
    logits, loss, grads = ref.two_layer_forward_backward(hx.astype(dtype), ht, **hp)
    xb.assert_close(net.predict(x), logits, dtype)
    xb.assert_close(net.loss(x, t), loss, dtype)
    got = net.gradient(x, t)
    assert list(got) == ["W1", "b1", "W2", "b2"]
    for key in got:
        xb.assert_close(got[key], grads[key], dtype)
    np.testing.assert_array_equal(xb.to_numpy(x), hx.astype(dtype))


def test_accuracy_with_integer_and_one_hot_labels(xb, dtype, rng):
    net, hx, ht, x, t = _net_and_batch(xb, dtype, rng, n=10)
    hp = {k: bp_xp.to_numpy(v).astype(np.float64) for k, v in net.params.items()}
    logits, _, _ = ref.two_layer_forward_backward(hx.astype(dtype), ht, **hp)
    expected = np.mean(logits.argmax(axis=1) == ht)
    xb.assert_close(net.accuracy(x, t), expected, dtype)
    xb.assert_close(net.accuracy(x, xb.asarray(ref.one_hot(ht, 3), dtype)), expected, dtype)


@REPEATING_ROWS
def test_backprop_matches_numerical_gradient(xb, dtype, rng):
    net, _, _, x, t = _net_and_batch(xb, dtype, rng, n=4)
    if xb.case.float64:
        errors = bp_xp.gradient_check(net, x, t)
    else:
        with pytest.warns(RuntimeWarning, match="has no float64"):
            errors = bp_xp.gradient_check(net, x, t)
    assert set(errors) == {"W1", "b1", "W2", "b2"}
    limit = 1e-6 if xb.case.float64 else 5e-2  # float32-only device: rounding dominates
    for key, err in errors.items():
        assert err < limit, f"{key}: relative error {err:.2e}"


@REPEATING_ROWS
def test_book_numerical_gradient_api_agrees_with_backprop(xb, rng):
    if not xb.case.float64:
        pytest.skip("float64 is not available on this device")
    net, _, _, x, t = _net_and_batch(xb, "float64", rng, n=3)
    numeric = net.numerical_gradient(x, t, h=1e-5)
    backprop = net.gradient(x, t)
    for key in backprop:
        assert bp_xp.relative_error(numeric[key], backprop[key]) < 1e-6
        xb.assert_on_backend(numeric[key], "float64")


def test_reassigned_params_are_used_by_the_next_predict(xb, dtype, rng):
    net, _, _, x, t = _net_and_batch(xb, dtype, rng)
    before = xb.to_numpy(net.loss(x, t))
    grads = net.gradient(x, t)
    for key in net.params:
        net.params[key] = net.params[key] - 0.5 * grads[key]  # the only update JAX allows
    assert net.layers["Affine1"].W is net.params["W1"]
    xb.assert_on_backend(net.params["W1"], dtype)
    after = xb.to_numpy(net.loss(x, t))
    assert after < before


def test_in_place_updates_still_work_where_the_backend_allows(rng):
    net = TwoLayerNet(4, 3, 2, backend="numpy", dtype="float64", seed=0)
    x, t = rng.standard_normal((5, 4)), np.array([0, 1, 1, 0, 1])
    grads = net.gradient(x, t)
    W1 = net.params["W1"]
    expected = W1 - 0.1 * grads["W1"]
    net.params["W1"] -= 0.1 * grads["W1"]  # the book's style
    assert net.params["W1"] is W1 and net.layers["Affine1"].W is W1
    np.testing.assert_array_equal(W1, expected)


def test_bad_parameter_updates_are_refused_and_change_nothing(rng):
    net = TwoLayerNet(4, 3, 2, backend="numpy", seed=0)
    W1 = net.params["W1"]
    with pytest.raises(ValueError, match=r"the new value has shape \(3, 4\), expected the "
                                         r"shape \(4, 3\) of the parameter"):
        net.params["W1"] = W1.T.copy()
    with pytest.raises(TypeError,
                       match="has dtype float64, expected the dtype float32 of the parameter"):
        net.params["W1"] = W1.astype(np.float64)
    with pytest.raises(BackendMismatchError, match=r"params\['W1'\]"):
        net.params["W1"] = bp_xp.to_device(W1, "array_api_strict")
    with pytest.raises(KeyError, match="unknown parameter 'W3'; this network has W1, b1, W2, b2"):
        net.params["W3"] = W1
    with pytest.raises(TypeError, match="cannot be removed"):
        del net.params["W1"]
    assert net.params["W1"] is W1


def test_input_on_another_backend_names_both(rng):
    net = TwoLayerNet(4, 3, 2, backend="array_api_strict:device1", seed=0)
    x = bp_xp.to_device(rng.standard_normal((2, 4)), "array_api_strict", dtype="float32")
    with pytest.raises(BackendMismatchError, match="x is on .*CPU_DEVICE.*W is on .*device1"):
        net.predict(x)


def test_to_moves_a_copy_and_leaves_the_original(xb, rng):
    net = TwoLayerNet(4, 3, 2, backend="numpy", seed=0)
    moved = net.to(xb.backend)
    assert moved.backend == xb.backend and net.backend.name == "numpy"
    for key in net.params:
        xb.assert_close(moved.params[key], net.params[key], "float32")
    x = rng.standard_normal((3, 4))
    xb.assert_close(moved.predict(xb.asarray(x, "float32")), net.predict(x.astype(np.float32)), "float32")
    if xb.case.float64:
        wide = net.to(dtype="float64")
        xb_wide = wide.to(xb.backend)
        xb.assert_on_backend(xb_wide.params["W1"], "float64")
        assert net.params["W1"].dtype == np.float32


@REPEATING_ROWS
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_multilayer_net_gradients_with_weight_decay(xb, rng, activation):
    if not xb.case.float64:
        pytest.skip("float64 is not available on this device")
    net = MultiLayerNet(6, [5, 4], 3, activation=activation, weight_init_std=activation,
                        weight_decay_lambda=0.1, backend=xb.backend, dtype="float64", seed=1)
    assert list(net.params) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    x = xb.asarray(rng.standard_normal((4, 6)), "float64")
    t = xb.asarray(np.array([0, 2, 1, 2]), "int32")
    for key, err in bp_xp.gradient_check(net, x, t).items():
        assert err < 1e-6, f"{key}: {err:.2e}"


def test_multilayer_init_scales():
    he = MultiLayerNet(400, [300], 10, weight_init_std="he", dtype="float64", seed=0)
    xavier = MultiLayerNet(400, [300], 10, weight_init_std="xavier", dtype="float64", seed=0)
    assert np.std(he.params["W1"]) == pytest.approx(np.sqrt(2 / 400), rel=0.05)
    assert np.std(xavier.params["W1"]) == pytest.approx(np.sqrt(1 / 400), rel=0.05)
    with pytest.raises(ValueError, match="activation must be one of"):
        MultiLayerNet(4, [3], 2, activation="tanh")
    with pytest.raises(ValueError, match="positive integers"):
        TwoLayerNet(4, 0, 2)
