"""Changing an optimizer's hyperparameters: ``optimizer.lr = 0.01`` is the hyperparameter.

A learning-rate schedule assigns ``optimizer.lr``. Before 0.3 that made a plain attribute
which the rule read while ``hyperparameters``, ``state_dict()`` (so checkpoints) and a
compiled step kept the constructor's value, and a negative rate was taken silently. The
references are the book's update formulas on NumPy float64, written out here.
"""

from __future__ import annotations

import numpy as np
import pytest

import bp_xp
from bp_xp.optim import OPTIMIZERS, SGD, Adam, Momentum, get_optimizer


def test_an_assigned_learning_rate_is_the_one_the_rule_uses_and_reports():
    optimizer = SGD(lr=0.1)
    optimizer.lr = 0.5
    params = {"W": np.array([1.0, 2.0])}
    optimizer.update(params, {"W": np.array([1.0, -2.0])})
    np.testing.assert_array_equal(params["W"], [1.0 - 0.5, 2.0 + 1.0])  # W - lr * dW
    assert optimizer.lr == 0.5
    assert optimizer.hyperparameters == {"lr": 0.5}
    assert optimizer.state_dict()["hyperparameters"] == {"lr": 0.5}
    assert repr(optimizer) == "SGD(lr=0.5, step=1)"


def test_an_assigned_hyperparameter_reaches_a_stateful_rule():
    """Momentum: v <- momentum * v - lr * dW; W <- W + v, with the assigned momentum."""
    optimizer = Momentum(lr=0.1, momentum=0.9)
    params, grad = {"W": np.array([1.0])}, {"W": np.array([2.0])}
    optimizer.update(params, grad)  # v = -0.2, W = 0.8
    optimizer.momentum = 0.5
    optimizer.update(params, grad)  # v = 0.5 * -0.2 - 0.2 = -0.3, W = 0.5
    np.testing.assert_allclose(params["W"], [0.5], rtol=0, atol=1e-15)


@pytest.mark.parametrize(("name", "attr", "value"), [
    ("sgd", "lr", -0.1), ("sgd", "lr", 0.0), ("sgd", "lr", float("nan")), ("sgd", "lr", True),
    ("momentum", "momentum", 1.5), ("adam", "beta2", 1.0), ("rmsprop", "decay_rate", "0.9"),
])
def test_a_bad_assignment_is_refused_and_changes_nothing(name, attr, value):
    optimizer = get_optimizer(name)
    before, version = optimizer.hyperparameters, optimizer.hyperparameters_version
    with pytest.raises((ValueError, TypeError), match=attr):
        setattr(optimizer, attr, value)
    assert optimizer.hyperparameters == before
    assert optimizer.hyperparameters_version == version
    assert attr not in vars(optimizer)  # no shadowing attribute either


def test_the_version_counts_changes_of_hyperparameters_only():
    optimizer = Adam(lr=0.01)
    assert optimizer.hyperparameters_version == 0
    optimizer.update({"W": np.zeros(2)}, {"W": np.ones(2)})  # a step is not a change
    optimizer.not_a_hyperparameter = 3  # other attributes stay plain attributes
    assert optimizer.hyperparameters_version == 0 and optimizer.not_a_hyperparameter == 3
    optimizer.lr = 0.02
    assert optimizer.hyperparameters_version == 1
    state = optimizer.state_dict()
    state["hyperparameters"]["beta1"] = 0.5
    optimizer.load_state_dict(state)
    assert optimizer.hyperparameters_version == 2
    assert optimizer.beta1 == 0.5 and optimizer.lr == 0.02


def test_every_optimizer_takes_its_own_hyperparameters_by_assignment():
    for name, cls in OPTIMIZERS.items():
        optimizer = cls()
        for attr, value in optimizer.hyperparameters.items():
            setattr(optimizer, attr, value / 2)
            assert getattr(optimizer, attr) == value / 2, (name, attr)
        assert optimizer.hyperparameters_version == len(optimizer.hyperparameters), name


def _sgd_reference(hx, ht, lrs):
    """TwoLayerNet parameters after one SGD step per rate in ``lrs``: NumPy float64, eager,
    each step written as the book's ``W -= lr * dW``."""
    net = bp_xp.TwoLayerNet(8, 5, 3, weight_init_std=0.5, dtype="float64", seed=0)
    params = {k: np.array(v) for k, v in net.params.items()}
    for lr in lrs:
        _, grads = net.loss_and_gradient(hx, ht)
        for key in params:
            params[key] = params[key] - lr * np.asarray(grads[key])
            net.params[key] = params[key]
    return params


@pytest.mark.slow
def test_an_assigned_learning_rate_reaches_the_compiled_jax_step(rng):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    backend = bp_xp.resolve_backend("jax:cpu")
    net = bp_xp.TwoLayerNet(8, 5, 3, weight_init_std=0.5, backend=backend, dtype="float64",
                            seed=0)
    optimizer = SGD(lr=0.1)
    step = bp_xp.compile_step(net, optimizer)
    hx, ht = rng.standard_normal((6, 8)), rng.integers(0, 3, size=6)
    x, t = backend.asarray(hx), backend.asarray(ht)
    step(x, t)
    optimizer.lr = 0.5  # a schedule's assignment between steps
    step(x, t)
    step(x, t)
    for key, expected in _sgd_reference(hx, ht, [0.1, 0.5, 0.5]).items():
        np.testing.assert_allclose(bp_xp.to_numpy(net.params[key]), expected, rtol=1e-12,
                                   atol=1e-14, err_msg=key)
    assert step.trace_count == 2  # one trace per rate, not one per call
