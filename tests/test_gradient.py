"""numerical_gradient: central differences without writing into the caller's array."""

import numpy as np
import pytest

from bp_xp import numerical_gradient, relative_error


def test_numerical_gradient_of_a_quadratic(xb, dtype, rng):
    host = rng.standard_normal((3, 2))
    x = xb.asarray(host, dtype)
    # central differences are exact for a quadratic, so a coarse h isolates rounding
    h = 1e-2 if dtype == "float32" else 1e-4
    grad = numerical_gradient(lambda v: xb.xp.sum(v * v), x, h=h)
    xb.assert_close(grad, 2 * host.astype(dtype), dtype, rtol=1e-3 if dtype == "float32" else 1e-8)
    np.testing.assert_array_equal(xb.to_numpy(x), host.astype(dtype))


def test_a_function_that_ignores_its_argument_is_flagged():
    x = np.ones((2, 2))
    with pytest.warns(RuntimeWarning, match="does f use its argument"):
        numerical_gradient(lambda v: 1.0, x)


def test_relative_error():
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(np.sqrt(2) / 2)
