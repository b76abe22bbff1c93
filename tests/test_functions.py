"""bp_xp.functions on every backend, device and dtype, against float64 NumPy references."""

import numpy as np
import pytest

import reference as ref
from bp_xp import functions as F


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (F.sigmoid, ref.sigmoid),
        (F.relu, ref.relu),
        (F.softmax, ref.softmax),
        (F.log_softmax, ref.log_softmax),
    ],
    ids=["sigmoid", "relu", "softmax", "log_softmax"],
)
def test_elementwise_and_softmax_match_reference(xb, dtype, rng, fn, expected):
    host = rng.standard_normal((6, 5)) * 3
    x = xb.asarray(host, dtype)
    out = fn(x)
    xb.assert_close(out, expected(host.astype(dtype)), dtype)
    np.testing.assert_array_equal(xb.to_numpy(x), host.astype(dtype))  # input untouched


@pytest.mark.parametrize("scale", [1e3, 1e4])
def test_extreme_inputs_stay_finite_without_warnings(xb, dtype, scale):
    # warnings are errors in this suite, so an overflow warning fails the test by itself
    host = np.array([[-scale, 0.0, scale], [scale, scale, -scale]])
    x = xb.asarray(host, dtype)
    s = xb.to_numpy(F.sigmoid(x))
    np.testing.assert_allclose(s, [[0.0, 0.5, 1.0], [1.0, 1.0, 0.0]], atol=1e-7)
    sm = xb.to_numpy(F.softmax(x))
    np.testing.assert_allclose(sm, ref.softmax(host), atol=1e-6)
    lsm = xb.to_numpy(F.log_softmax(x))
    assert np.all(np.isfinite(lsm))
    np.testing.assert_allclose(lsm, ref.log_softmax(host), rtol=1e-6)
    loss = xb.to_numpy(F.softmax_cross_entropy(x, xb.asarray(np.array([0, 2]))))
    assert np.isfinite(loss)
    np.testing.assert_allclose(loss, ref.cross_entropy_from_logits(host, [0, 2]), rtol=1e-6)


@pytest.mark.parametrize("label_dtype", ["uint8", "int32", "int64"])
def test_integer_and_one_hot_labels_give_the_same_loss(xb, dtype, rng, label_dtype):
    logits = rng.standard_normal((8, 4))
    labels = rng.integers(0, 4, size=8)
    x = xb.asarray(logits, dtype)
    expected = ref.cross_entropy_from_logits(logits, labels)
    from_int = F.softmax_cross_entropy(x, xb.asarray(labels, label_dtype))
    from_hot = F.softmax_cross_entropy(x, xb.asarray(ref.one_hot(labels, 4), dtype))
    xb.assert_close(from_int, expected, dtype)
    xb.assert_close(from_hot, expected, dtype)


def test_cross_entropy_error_of_probabilities(xb, dtype, rng):
    probs = ref.softmax(rng.standard_normal((5, 3)))
    labels = np.array([0, 1, 2, 1, 0])
    y = xb.asarray(probs, dtype)
    expected = -np.log(probs[np.arange(5), labels]).mean()
    xb.assert_close(F.cross_entropy_error(y, xb.asarray(labels, "int32")), expected, dtype)
    xb.assert_close(F.cross_entropy_error(y, xb.asarray(ref.one_hot(labels, 3), dtype)),
                    expected, dtype)


def test_cross_entropy_error_of_zero_probability_is_finite(xb, dtype):
    y = xb.asarray(np.array([[0.0, 1.0]]), dtype)
    loss = float(xb.to_numpy(F.cross_entropy_error(y, xb.asarray(np.array([0], dtype=np.int32)))))
    assert np.isfinite(loss) and loss > 80  # -log(tiny): large, but not inf


def test_book_example_of_cross_entropy_error():
    # the book's example: t = 2, y[2] = 0.6 -> 0.510825...
    y = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
    t = np.zeros(10)
    t[2] = 1
    assert float(F.cross_entropy_error(y, t)) == pytest.approx(-np.log(0.6), rel=1e-12)


@pytest.mark.parametrize("label_dtype", ["uint8", "int32", "int64"])
def test_one_hot(xb, label_dtype):
    labels = np.array([3, 0, 2, 2])
    out = F.one_hot(xb.asarray(labels, label_dtype), 4, dtype=xb.dtype("float32"))
    xb.assert_close(out, ref.one_hot(labels, 4), "float32")


def test_float32_stays_float32_with_python_constants(xb):
    x = xb.asarray(np.linspace(-3, 3, 12).reshape(3, 4), "float32")
    for out in (F.sigmoid(x), F.relu(x), F.softmax(x), F.log_softmax(x)):
        xb.assert_on_backend(out, "float32")
    loss = F.softmax_cross_entropy(x, xb.asarray(np.array([0, 1, 3]), "uint8"))
    xb.assert_on_backend(loss, "float32")


def test_label_errors_are_clear():
    x = np.zeros((2, 3))
    with pytest.raises(TypeError, match="integer dtype"):
        F.softmax_cross_entropy(x, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"one-hot labels must have the predictions' shape \(2, 3\)"):
        F.softmax_cross_entropy(x, np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"integer labels must have shape \(2,\)"):
        F.softmax_cross_entropy(x, np.array([0, 1, 2]))
