"""Issue 10 ("Trust"), silent wrong results and clear errors, on every row of the matrix.

Each test asserts the new behaviour against an independent reference (a float64 NumPy
formula or the numerical gradient) or a bp_xp error with its message.
"""

import math

import numpy as np
import pytest

import bp_xp
import reference as ref
from bp_xp import BackendMismatchError, LabelError, TwoLayerNet, checking, debug_checks, numerical_gradient
from bp_xp import functions as F
from bp_xp.layers import Relu, SoftmaxWithLoss

# (label values, label dtype): each holds one label outside [0, 4)
BAD_LABELS = [([3, 4, 0], "int64"), ([1, -1, 2], "int32"), ([2, 255, 1], "uint8")]
BAD_IDS = ["one-past-the-end", "minus-one", "uint8-255"]


def _logits(rng, n=3, c=4):
    return rng.standard_normal((n, c)) * 2


def _net(xb, dtype):
    return TwoLayerNet(5, 6, 4, weight_init_std=0.5, backend=xb.backend, dtype=dtype, seed=1)


# --------------------------------------------------------------------------------------
# Integer labels out of range: NaN, never silently dropped, no host read
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("labels", "label_dtype"), BAD_LABELS, ids=BAD_IDS)
def test_labels_out_of_range_give_a_nan_loss_and_nan_gradient_rows(xb, dtype, rng, labels,
                                                                  label_dtype):
    hx = _logits(rng)
    x, t = xb.asarray(hx, dtype), xb.asarray(np.array(labels), label_dtype)
    bad = next(i for i, v in enumerate(labels) if not 0 <= v < 4)
    for loss in (F.softmax_cross_entropy(x, t),
                 F.cross_entropy_error(F.softmax(x), t)):
        xb.assert_on_backend(loss, dtype)
        assert math.isnan(float(xb.to_numpy(loss)))
    layer = SoftmaxWithLoss()
    assert math.isnan(float(xb.to_numpy(layer.forward(x, t))))
    dx = xb.to_numpy(layer.backward(2.0))
    assert np.isnan(dx[bad]).all()
    good = [i for i in range(len(labels)) if i != bad]
    # the other rows keep the book's gradient, divided by the whole batch (N = 3)
    expected = 2.0 * (ref.softmax(hx) - ref.one_hot(np.clip(labels, 0, 3), 4)) / 3
    np.testing.assert_allclose(dx[good], expected[good], rtol=1e-5, atol=1e-6)


def test_a_label_out_of_range_is_not_dropped_from_the_mean(xb, rng):
    # v0.1: the loss of [3, 10] was half the loss of [3, 4] (the row was dropped)
    hx = rng.standard_normal((2, 10))
    x = xb.asarray(hx, "float32")
    ok = F.softmax_cross_entropy(x, xb.asarray(np.array([3, 4]), "int64"))
    xb.assert_close(ok, ref.cross_entropy_from_logits(hx, [3, 4]), "float32")
    assert math.isnan(float(xb.to_numpy(F.softmax_cross_entropy(x, xb.asarray(np.array([3, 10]),
                                                                              "int64")))))


def test_net_loss_and_gradient_are_nan_for_a_bad_label(xb, dtype, rng):
    net = _net(xb, dtype)
    x = xb.asarray(rng.standard_normal((3, 5)), dtype)
    t = xb.asarray(np.array([1, 4, 2]), "int64")
    assert math.isnan(float(xb.to_numpy(net.loss(x, t))))
    grads = net.gradient(x, t)
    for key in ("W2", "b2"):  # every output unit sees the NaN row
        assert np.isnan(xb.to_numpy(grads[key])).all(), key
    loss, _ = net.loss_and_gradient(x, xb.asarray(np.array([1, 3, 2]), "int64"))
    assert math.isfinite(float(xb.to_numpy(loss)))


def test_every_class_of_a_full_uint8_range_is_valid(xb, rng):
    # 256 classes: every uint8 value is a class, 255 included (no NaN path at all)
    hx = rng.standard_normal((3, 256))
    labels = np.array([255, 0, 128])
    loss = F.softmax_cross_entropy(xb.asarray(hx, "float32"), xb.asarray(labels, "uint8"))
    xb.assert_close(loss, ref.cross_entropy_from_logits(hx, labels), "float32")


def test_the_nan_rule_reads_nothing_back():
    # Under jax.jit the labels are tracers: any host read would raise. The rule still holds.
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    step = jax.jit(lambda x, t: F.softmax_cross_entropy(x, t))
    x = jnp.zeros((2, 3), dtype=jnp.float32)
    assert math.isnan(float(step(x, jnp.asarray([0, 3]))))
    assert float(step(x, jnp.asarray([0, 2]))) == pytest.approx(math.log(3), rel=1e-6)
    with checking():  # traced values cannot be checked; the jitted step still runs
        assert math.isnan(float(jax.jit(lambda x, t: F.softmax_cross_entropy(x, t))(
            x, jnp.asarray([0, 3]))))


def test_the_nan_rule_stays_lazy_on_dask():
    da = pytest.importorskip("dask.array")
    x = da.zeros((4, 3), chunks=2)
    loss = F.softmax_cross_entropy(x, da.from_array(np.array([0, 1, 2, 3]), chunks=2))
    assert isinstance(loss, da.Array)  # nothing was computed to find the bad label
    assert math.isnan(float(loss.compute()))


# --------------------------------------------------------------------------------------
# The opt-in debug checks
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("labels", "label_dtype"), BAD_LABELS, ids=BAD_IDS)
def test_debug_checks_name_the_bad_label(xb, rng, labels, label_dtype):
    net = _net(xb, "float32")
    hx = rng.standard_normal((3, 5))
    x, logits = xb.asarray(hx, "float32"), xb.asarray(_logits(rng), "float32")
    t = xb.asarray(np.array(labels), label_dtype)
    bad = next(i for i, v in enumerate(labels) if not 0 <= v < 4)
    value = labels[bad]
    calls = [  # (where the error says it was found, the call)
        ("softmax_cross_entropy", lambda: F.softmax_cross_entropy(logits, t)),
        ("cross_entropy_error", lambda: F.cross_entropy_error(F.softmax(logits), t)),
        ("SoftmaxWithLoss.forward", lambda: SoftmaxWithLoss().forward(logits, t)),
        ("one_hot", lambda: F.one_hot(t, 4)),
        ("SoftmaxWithLoss.forward", lambda: net.loss(x, t)),
        ("SoftmaxWithLoss.forward", lambda: net.gradient(x, t)),
        ("accuracy", lambda: net.accuracy(x, t)),
    ]
    with checking():
        for where, call in calls:
            with pytest.raises(LabelError, match=rf"^{where}: 1 of 3 integer labels lie outside "
                                                 rf"\[0, 4\) for 4 classes: {value} at index "
                                                 rf"\({bad},\)"):
                call()
    assert not debug_checks()  # the block restored the default
    good = xb.asarray(np.array([0, 3, 1]), label_dtype)
    with checking():  # labels in range pass and give the reference loss
        xb.assert_close(F.softmax_cross_entropy(logits, good),
                        ref.cross_entropy_from_logits(xb.to_numpy(logits), [0, 3, 1]), "float32")


def test_debug_checks_switch_and_restore():
    x, t = np.zeros((2, 3)), np.array([0, 3])
    assert debug_checks() is False
    assert debug_checks(True) is False  # returns the old setting
    try:
        with pytest.raises(LabelError):
            F.softmax_cross_entropy(x, t)
        with checking(False):
            assert math.isnan(float(F.softmax_cross_entropy(x, t)))
        with pytest.raises(LabelError):
            F.softmax_cross_entropy(x, t)
    finally:
        debug_checks(False)
    assert math.isnan(float(F.softmax_cross_entropy(x, t)))
    assert issubclass(LabelError, ValueError) and LabelError.__module__ == "bp_xp"


# --------------------------------------------------------------------------------------
# Soft targets: the backward is the gradient of the forward
# --------------------------------------------------------------------------------------


def test_soft_targets_not_summing_to_one_get_the_true_gradient(xb, rng):
    dtype = "float64" if xb.case.float64 else "float32"
    hx = rng.standard_normal((4, 3))
    # rows summing to 0.5, 1, 2 and 0 (an all-zero row contributes no loss and no gradient)
    ht = rng.random((4, 3))
    ht = ht / ht.sum(axis=1, keepdims=True) * np.array([[0.5], [1.0], [2.0], [0.0]])
    x, t = xb.asarray(hx, dtype), xb.asarray(ht, dtype)
    layer = SoftmaxWithLoss()
    layer.forward(x, t)
    dx = layer.backward(1.5)
    # independent references: the formula in float64 NumPy, and central differences
    expected = 1.5 * (ref.softmax(hx) * ht.sum(axis=1, keepdims=True) - ht) / 4
    xb.assert_close(dx, expected, dtype, rtol=1e-4 if dtype == "float32" else 1e-9)
    numeric = numerical_gradient(lambda v: 1.5 * SoftmaxWithLoss().forward(v, t), x,
                                 h=1e-2 if dtype == "float32" else 1e-5)
    xb.assert_close(dx, xb.to_numpy(numeric), dtype,
                    rtol=2e-2 if dtype == "float32" else 1e-7, atol=1e-4 if dtype == "float32"
                    else 1e-9)
    # the book's (y - t) / N would be wrong here by (y * (sum(t) - 1)) / N
    assert not np.allclose(xb.to_numpy(dx), 1.5 * (ref.softmax(hx) - ht) / 4, atol=1e-3)


# --------------------------------------------------------------------------------------
# Label dtypes too narrow for the classes: refused by dtype, before any value is read
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("label_dtype", "classes"), [("uint8", 300), ("int8", 200)])
def test_label_dtypes_too_narrow_for_the_classes_are_refused(xb, rng, label_dtype, classes):
    x = xb.asarray(rng.standard_normal((3, classes)), "float32")
    t = xb.asarray(np.array([0, 1, 2]), label_dtype)
    message = rf"labels of dtype {label_dtype} hold at most \d+, too few for {classes} classes"
    for call in (lambda: F.softmax_cross_entropy(x, t), lambda: SoftmaxWithLoss().forward(x, t),
                 lambda: F.one_hot(t, classes)):
        with pytest.raises(bp_xp.backends.DTypeError, match=message):
            call()
    # int16 holds them: the same labels give the reference loss
    wide = F.softmax_cross_entropy(x, xb.asarray(np.array([0, 1, 2]), "int16"))
    xb.assert_close(wide, ref.cross_entropy_from_logits(xb.to_numpy(x), [0, 1, 2]), "float32")


# --------------------------------------------------------------------------------------
# numerical_gradient of an integer array; relu of NaN
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("int_dtype", ["int32", "int64", "uint8"])
def test_numerical_gradient_refuses_integer_arrays(xb, int_dtype):
    x = xb.asarray(np.array([3, 4]), int_dtype)
    with pytest.raises(TypeError, match=f"x has dtype {int_dtype}; central differences need a "
                                        "real floating dtype"):
        numerical_gradient(lambda v: xb.xp.sum(v * v), x)
    grad = numerical_gradient(lambda v: xb.xp.sum(v * v), xb.asarray(np.array([3.0, 4.0]),
                                                                      "float32"), h=1e-2)
    xb.assert_close(grad, [6.0, 8.0], "float32", rtol=1e-3)  # v0.1 gave [25000, 35000] for ints


def test_relu_function_and_layer_agree_on_nan_and_infinities(xb, dtype):
    host = np.array([np.nan, -np.inf, np.inf, -0.0, 0.0, -1.5, 2.5])
    x = xb.asarray(host, dtype)
    from_function, from_layer = F.relu(x), Relu().forward(x)
    expected = np.array([np.nan, 0.0, np.inf, 0.0, 0.0, 0.0, 2.5])
    for out in (from_function, from_layer):
        xb.assert_on_backend(out, dtype)
        np.testing.assert_array_equal(xb.to_numpy(out), expected)


# --------------------------------------------------------------------------------------
# Clear errors for ordinary mistakes
# --------------------------------------------------------------------------------------


def test_python_numbers_where_arrays_are_expected(xb):
    net = _net(xb, "float32")
    x = xb.asarray(np.zeros((2, 5)), "float32")
    with pytest.raises(TypeError, match=r"SoftmaxWithLoss.forward: t must be an array of integer "
                                        r"labels \(N,\) or target rows \(N, C\).*got int 3"):
        net.loss(x, 3)
    with pytest.raises(TypeError, match=r"cannot set params\['W1'\]: the new value must be an "
                                        r"array like the parameter \(float32 array of shape "
                                        r"\(5, 6\)\), got float 1.0"):
        net.params["W1"] = 1.0
    with pytest.raises(TypeError, match="softmax_cross_entropy: t must be an array"):
        F.softmax_cross_entropy(x, [0, 1])
    with pytest.raises(TypeError, match="accuracy: t must be an array"):
        net.accuracy(x, 1)


def test_an_empty_batch_is_a_clear_value_error(xb):
    net = _net(xb, "float32")
    x = xb.asarray(np.zeros((0, 5)), "float32")
    t = xb.asarray(np.zeros(0), "int64")
    message = "the mean loss of an empty batch is undefined"
    for call in (lambda: net.loss(x, t), lambda: net.gradient(x, t),
                 lambda: F.softmax_cross_entropy(xb.asarray(np.zeros((0, 4)), "float32"), t),
                 lambda: SoftmaxWithLoss().forward(xb.asarray(np.zeros((0, 4)), "float32"), t)):
        with pytest.raises(ValueError, match=message):
            call()
    with pytest.raises(ValueError, match="accuracy of an empty batch is undefined"):
        net.accuracy(x, t)


def test_gradient_check_with_arrays_of_another_backend(xb, rng):
    net = _net(xb, "float32")
    other = "array_api_strict:device1" if xb.backend.name == "numpy" else "numpy"
    x = bp_xp.to_device(rng.standard_normal((2, 5)), other, dtype="float32")
    t = bp_xp.to_device(np.array([0, 3]), other)
    with pytest.raises(BackendMismatchError, match="x is a"):
        bp_xp.gradient_check(net, x, xb.asarray(np.array([0, 3]), "int64"))
    with pytest.raises(BackendMismatchError):
        bp_xp.gradient_check(net, xb.asarray(xb.to_numpy(x), "float32"), t)


def test_gradient_check_with_a_torch_x_on_a_numpy_net():
    torch = pytest.importorskip("torch")
    net = TwoLayerNet(5, 6, 4, backend="numpy", seed=0)
    with pytest.raises(BackendMismatchError, match=r"x is a torch:cpu array.*"
                                                   r"bp_xp.to_device\(x, 'numpy'\)"):
        bp_xp.gradient_check(net, torch.ones(2, 5), np.array([0, 1]))


def test_accuracy_refuses_targets_that_fit_no_label_form(xb, rng):
    net = _net(xb, "float32")
    x = xb.asarray(rng.standard_normal((3, 5)), "float32")
    with pytest.raises(TypeError, match=r"labels of shape \(3,\) must have an integer dtype"):
        net.accuracy(x, xb.asarray(np.array([0.0, 1.0, 2.0]), "float32"))
    with pytest.raises(ValueError, match="one-hot rows have 3 columns but the network predicts 4"):
        net.accuracy(x, xb.asarray(ref.one_hot([0, 1, 2], 3), "float32"))
    # a label out of range never matches a prediction: it counts as a miss, not dropped
    predicted = np.argmax(ref.softmax(xb.to_numpy(net.predict(x))), axis=1)
    labels = predicted.copy()
    labels[1] = 4
    accuracy = net.accuracy(x, xb.asarray(labels, "int64"))
    xb.assert_close(accuracy, 2 / 3, "float32")


@pytest.mark.parametrize("layer_class", [Relu, bp_xp.layers.Sigmoid])
def test_a_python_number_as_dout_after_an_array_forward(xb, layer_class):
    layer = layer_class()
    layer.forward(xb.asarray(np.array([1.0, -2.0]), "float32"))
    with pytest.raises(TypeError, match=rf"{layer_class.__name__}.backward: dout must be an array "
                                        r"of the forward output's shape \(2,\).*got float 1.0"):
        layer.backward(1.0)


def test_networks_take_python_and_numpy_float_dtypes_and_refuse_others(xb):
    for given, name in [(np.float32, "float32"), ("float32", "float32"),
                        *([(float, "float64"), (np.dtype("float64"), "float64")]
                          if xb.case.float64 else [])]:
        for net in (TwoLayerNet(3, 4, 2, backend=xb.backend, dtype=given, seed=0),
                    bp_xp.MultiLayerNet(3, [4], 2, backend=xb.backend, dtype=given, seed=0)):
            for value in net.params.values():
                xb.assert_on_backend(value, name)
    for bad in ("int32", bool, complex, np.uint8):
        with pytest.raises(bp_xp.backends.DTypeError, match="is not a float dtype"):
            TwoLayerNet(3, 4, 2, backend=xb.backend, dtype=bad)


@pytest.mark.parametrize("std", [math.nan, math.inf, -0.5])
def test_weight_init_std_must_be_finite_and_not_negative(std):
    with pytest.raises(ValueError, match="weight_init_std must be a finite number >= 0"):
        TwoLayerNet(3, 4, 2, weight_init_std=std)
    with pytest.raises(ValueError, match="weight_init_std must be a finite number >= 0"):
        bp_xp.MultiLayerNet(3, [4], 2, weight_init_std=std)
