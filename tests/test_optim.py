"""The chapter-6 optimizers on the matrix, against NumPy references and torch.optim."""

import math

import numpy as np
import pytest

import bp_xp
from bp_xp import BackendMismatchError, TwoLayerNet
from bp_xp.optim import (
    EPSILON,
    OPTIMIZERS,
    SGD,
    AdaGrad,
    Adam,
    HeldParameterError,
    Momentum,
    Nesterov,
    RMSprop,
    get_optimizer,
)

# Non-default hyperparameters, so that a rule that ignores one of them is caught.
SETTINGS = {
    "sgd": {"lr": 0.3},
    "momentum": {"lr": 0.2, "momentum": 0.7},
    "nesterov": {"lr": 0.2, "momentum": 0.6},
    "adagrad": {"lr": 0.4},
    "rmsprop": {"lr": 0.05, "decay_rate": 0.8},
    "adam": {"lr": 0.02, "beta1": 0.8, "beta2": 0.95},
}
SHAPES = {"W": (3, 4), "b": (4,)}


# --------------------------------------------------------------------------------------
# Float64 NumPy references, written the book's way (in place on private copies)
# --------------------------------------------------------------------------------------


def reference_steps(name, hyper, params, grad_steps):
    """Parameters after applying ``grad_steps`` one after another, in float64."""
    p = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    state = {k: {} for k in p}
    for t, grads in enumerate(grad_steps, start=1):
        for k in p:
            g = np.asarray(grads[k], dtype=np.float64)
            s = state[k]
            if name == "sgd":
                p[k] -= hyper["lr"] * g
            elif name == "momentum":
                v = s.setdefault("v", np.zeros_like(g))
                v *= hyper["momentum"]
                v -= hyper["lr"] * g
                p[k] += v
            elif name == "nesterov":  # the book's common/optimizer.py since January 2021
                v = s.setdefault("v", np.zeros_like(g))
                mu = hyper["momentum"]
                p[k] += mu * mu * v
                p[k] -= (1 + mu) * hyper["lr"] * g
                v *= mu
                v -= hyper["lr"] * g
            elif name == "adagrad":
                h = s.setdefault("h", np.zeros_like(g))
                h += g ** 2
                p[k] -= hyper["lr"] * g / (np.sqrt(h) + 1e-7)
            elif name == "rmsprop":
                h = s.setdefault("h", np.zeros_like(g))
                rho = hyper["decay_rate"]
                h[...] = rho * h + (1 - rho) * g ** 2
                p[k] -= hyper["lr"] * g / (np.sqrt(h) + 1e-7)
            elif name == "adam":
                b1, b2 = hyper["beta1"], hyper["beta2"]
                m = s.setdefault("m", np.zeros_like(g))
                v = s.setdefault("v", np.zeros_like(g))
                m[...] = b1 * m + (1 - b1) * g
                v[...] = b2 * v + (1 - b2) * g ** 2
                lr_t = hyper["lr"] * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                p[k] -= lr_t * m / (np.sqrt(v) + 1e-7)
    return p


def _host_problem(rng, dtype, steps):
    """Parameters and a sequence of gradients, rounded to ``dtype`` on the host."""
    params = {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
    grads = [{k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
             for _ in range(steps)]
    return params, grads


# --------------------------------------------------------------------------------------
# The rules, on every backend
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SETTINGS))
def test_steps_match_the_numpy_reference(xb, dtype, rng, name):
    host_params, host_grads = _host_problem(rng, dtype, steps=4)
    params = {k: xb.asarray(v, dtype) for k, v in host_params.items()}
    grads = [{k: xb.asarray(v, dtype) for k, v in g.items()} for g in host_grads]
    optimizer = get_optimizer(name, **SETTINGS[name])
    in_place = xb.case.family in ("numpy", "torch", "cupy") and not xb.case.readonly
    if not in_place:
        # Arrays that can only be replaced, also held outside the dict: the holder could
        # not see the step, so it is refused whole (test_book_dropin.py covers the rule).
        held = dict(params)
        with pytest.raises(HeldParameterError, match=r"params\['W'\] is a .* cannot write in place"):
            optimizer.update(params, grads[0])
        assert all(params[k] is held[k] for k in held) and optimizer.step_count == 0
        del held
    originals = dict(params) if in_place else {}

    optimizer.update(params, grads[0])
    expected = reference_steps(name, SETTINGS[name], host_params, host_grads[:1])
    for key in params:
        xb.assert_close(params[key], expected[key], dtype)
    for g in grads[1:]:
        optimizer.update(params, g)
    expected = reference_steps(name, SETTINGS[name], host_params, host_grads)
    for key in params:
        xb.assert_close(params[key], expected[key], dtype)
        if in_place:  # the book's semantics: the caller's own arrays took the steps
            assert params[key] is originals[key]
        for g, host_g in zip(grads, host_grads):  # gradients are never written
            np.testing.assert_array_equal(xb.to_numpy(g[key]), host_g[key])
    assert optimizer.step_count == 4
    for slot, arrays in optimizer.state_dict()["state"].items():
        assert set(arrays) == set(SHAPES), slot
        for array in arrays.values():
            xb.assert_on_backend(array, dtype)


def test_reassignment_updates_a_networks_read_only_params(xb, rng):
    dtype = "float32"  # about mutation, not numerics: one dtype suffices
    net = TwoLayerNet(6, 8, 3, weight_init_std=0.5, backend=xb.backend, dtype=dtype, seed=1)
    host = {k: xb.to_numpy(v).copy() for k, v in net.params.items()}
    for key in net.params:  # read-only on numpy_readonly, immutable on JAX
        net.params[key] = xb.asarray(host[key], dtype)
    before = dict(net.params)
    x = xb.asarray(rng.standard_normal((12, 6)), dtype)
    t = xb.asarray(rng.integers(0, 3, size=12), "int64")
    grads = net.gradient(x, t)
    host_grads = {k: xb.to_numpy(g).copy() for k, g in grads.items()}
    Momentum(lr=0.1).update(net.params, grads)
    expected = reference_steps("momentum", {"lr": 0.1, "momentum": 0.9}, host, [host_grads])
    for key in net.params:
        assert net.params[key] is not before[key]
        xb.assert_close(net.params[key], expected[key], dtype)
        np.testing.assert_array_equal(xb.to_numpy(before[key]), host[key])
        np.testing.assert_array_equal(xb.to_numpy(grads[key]), host_grads[key])
    assert net.layers["Affine1"].W is net.params["W1"]  # the layer sees the update


# Learning rates that make each rule lower the loss of a small net within a few steps.
TRAINING_LR = {"sgd": 0.5, "momentum": 0.1, "nesterov": 0.05, "adagrad": 0.1,
               "rmsprop": 0.01, "adam": 0.02}


@pytest.mark.parametrize("name", list(TRAINING_LR))
def test_training_a_net_lowers_its_loss(xb, rng, name):
    dtype = "float32"  # the float64 rows add time, not coverage: the rules are checked above
    net = TwoLayerNet(6, 8, 3, weight_init_std=0.3, backend=xb.backend, dtype=dtype, seed=5)
    for key in net.params:
        net.params[key] = xb.asarray(xb.to_numpy(net.params[key]), dtype)
    hx = rng.standard_normal((12, 6))
    x, t = xb.asarray(hx, dtype), xb.asarray(np.argmax(hx[:, :3], axis=1), "int64")
    optimizer = get_optimizer(name, lr=TRAINING_LR[name])
    before = float(xb.to_numpy(net.loss(x, t)))
    for _ in range(5):
        optimizer.update(net.params, net.gradient(x, t))
    after = float(xb.to_numpy(net.loss(x, t)))
    assert after < 0.8 * before, f"{name}: loss {before:.4f} -> {after:.4f}"
    for key in net.params:
        xb.assert_on_backend(net.params[key], dtype)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_a_step_traces_under_jax_jit_in_float32(name):
    """Tracing fails on any host sync (float(), bool(), a Python `if` on a value), and the
    traced program lists every dtype: with float64 enabled, none may appear."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    assert jax.config.jax_enable_x64  # bp_xp.testing enables it: float64 could appear
    optimizer = get_optimizer(name, **SETTINGS[name])

    def step(param, grad, state):
        resumed = get_optimizer(name, **SETTINGS[name])
        resumed.load_state_dict({"type": name, "hyperparameters": resumed.hyperparameters,
                                 "step": 3, "state": state})
        params = {"W": param}
        # The dict is the parameter's one holder: called eagerly, a variable still holding
        # the array the step replaces is refused (HeldParameterError; docs/porting.md).
        del param
        resumed.update(params, {"W": grad})
        return params["W"], resumed.state_dict()["state"]

    param, grad = jnp.ones((2, 3), dtype=jnp.float32), jnp.full((2, 3), 0.5, dtype=jnp.float32)
    state = {slot: {"W": jnp.full((2, 3), 0.25, dtype=jnp.float32)} for slot in optimizer.slots}
    program = str(jax.make_jaxpr(step)(param, grad, state))
    assert "f32[2,3]" in program and "f64" not in program, program
    new_param, new_state = jax.jit(step)(param, grad, state)
    eager_param, eager_state = step(jnp.array(param), grad, state)  # a copy nobody else holds
    np.testing.assert_allclose(np.asarray(new_param), np.asarray(eager_param), rtol=1e-6)
    assert new_param.dtype == jnp.float32
    for slot, arrays in new_state.items():
        assert arrays["W"].dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(arrays["W"]), np.asarray(eager_state[slot]["W"]),
                                   rtol=1e-6)


# --------------------------------------------------------------------------------------
# Errors change nothing
# --------------------------------------------------------------------------------------


def test_bad_gradients_are_refused_before_anything_changes(xb, rng):
    host_params, host_grads = _host_problem(rng, "float32", steps=2)
    params = {k: xb.asarray(v, "float32") for k, v in host_params.items()}
    optimizer = Adam(lr=0.1)
    optimizer.update(params, {k: xb.asarray(v, "float32") for k, v in host_grads[0].items()})
    after_one = dict(params)
    state_one = optimizer.state_dict()["state"]
    good = {k: xb.asarray(v, "float32") for k, v in host_grads[1].items()}
    other = "array_api_strict" if xb.backend.name != "array_api_strict" else "numpy"
    bad_cases = [
        ({"W": good["W"]}, ValueError,
         r"grads must have the keys of params \('W', 'b'\); no gradient for 'b'"),
        ({**good, "W9": good["b"]}, ValueError, "gradients for unknown parameters 'W9'"),
        # The bad key comes last, so that a rule applied key by key would already have
        # changed 'W' when it fails.
        ({"W": good["W"], "b": xb.asarray(np.zeros(5), "float32")}, ValueError,
         r"grads\['b'\] has shape \(5,\), expected the shape \(4,\) of params\['b'\]"),
        ({"W": good["W"], "b": bp_xp.to_device(host_grads[1]["b"], other, dtype="float32")},
         BackendMismatchError, r"grads\['b'\]"),
    ]
    if xb.case.float64:
        bad_cases.append(({"W": good["W"], "b": xb.asarray(host_grads[1]["b"], "float64")},
                          TypeError, r"grads\['b'\] has dtype .*float64"))
    for grads, error, message in bad_cases:
        with pytest.raises(error, match=message):
            optimizer.update(params, grads)
        assert optimizer.step_count == 1
        for key in params:
            assert params[key] is after_one[key]
            for slot in state_one:
                assert optimizer.state_dict()["state"][slot][key] is state_one[slot][key]


def test_state_left_on_another_backend_asks_to_move_the_optimizer():
    net = TwoLayerNet(4, 3, 2, backend="numpy", seed=0)
    x, t = np.ones((2, 4), dtype=np.float32), np.array([0, 1])
    optimizer = Momentum()
    optimizer.update(net.params, net.gradient(x, t))
    moved = net.to("array_api_strict")
    strict = bp_xp.resolve_backend("array_api_strict")
    grads = moved.gradient(strict.asarray(x), strict.asarray(t))
    W1 = moved.params["W1"]
    with pytest.raises(BackendMismatchError, match=r"'v' state of 'W1'.*optimizer\.to"):
        optimizer.update(moved.params, grads)
    assert moved.params["W1"] is W1
    optimizer = optimizer.to("array_api_strict")
    optimizer.update(moved.params, grads)
    assert optimizer.step_count == 2 and moved.params["W1"] is not W1


def test_state_for_another_network_is_refused():
    optimizer = AdaGrad()
    optimizer.update({"W1": np.zeros(2)}, {"W1": np.ones(2)})
    with pytest.raises(ValueError, match="holds 'h' state for 'W1', which params do not have"):
        optimizer.update({"W2": np.zeros(2)}, {"W2": np.ones(2)})
    with pytest.raises(ValueError, match=r"'h' state of 'W1' has shape \(2,\), expected the "
                                         r"shape \(3,\)"):
        optimizer.update({"W1": np.zeros(3)}, {"W1": np.ones(3)})


@pytest.mark.parametrize(("cls", "kwargs", "message"), [
    (SGD, {"lr": 0.0}, r"lr must lie in \(0.0, inf\), got 0.0"),
    (SGD, {"lr": -1}, "lr must lie in"),
    (SGD, {"lr": math.inf}, "lr must lie in"),
    (SGD, {"lr": math.nan}, "lr must lie in"),
    (SGD, {"lr": True}, "lr must be a real number"),
    (SGD, {"lr": "0.1"}, "lr must be a real number"),
    (Momentum, {"momentum": 1.0}, r"momentum must lie in \[0.0, 1.0\), got 1.0"),
    (Nesterov, {"momentum": -0.1}, "momentum must lie in"),
    (RMSprop, {"decay_rate": 1.5}, "decay_rate must lie in"),
    (Adam, {"beta1": 1.0}, "beta1 must lie in"),
    (Adam, {"beta2": -0.5}, "beta2 must lie in"),
])
def test_hyperparameters_are_range_checked(cls, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=f"{cls.__name__}: {message}"):
        cls(**kwargs)


def test_registry_and_book_attributes():
    assert list(OPTIMIZERS) == ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]
    assert OPTIMIZERS["rmsprop"] is RMSprop
    optimizer = get_optimizer("Adam", lr=0.5, beta2=0.9)
    assert isinstance(optimizer, Adam)
    assert (optimizer.lr, optimizer.beta1, optimizer.beta2) == (0.5, 0.9, 0.9)
    assert repr(optimizer) == "Adam(lr=0.5, beta1=0.9, beta2=0.9, step=0)"
    assert SGD().lr == 0.01 and Momentum().momentum == 0.9 and RMSprop().decay_rate == 0.99
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'; choose one of sgd, "
                                         "momentum, nesterov, adagrad, rmsprop, adam"):
        get_optimizer("lbfgs")
    with pytest.raises(TypeError):
        get_optimizer("sgd", momentum=0.9)
    with pytest.raises(AttributeError, match="no attribute 'momentum'"):
        SGD().momentum  # noqa: B018


# --------------------------------------------------------------------------------------
# State dicts and moving
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["momentum", "rmsprop", "adam"])
def test_state_dict_round_trip_resumes_bit_exactly(xb, dtype, rng, name):
    host_params, host_grads = _host_problem(rng, dtype, steps=3)
    grads = [{k: xb.asarray(v, dtype) for k, v in g.items()} for g in host_grads]
    first = {k: xb.asarray(v, dtype) for k, v in host_params.items()}
    optimizer = get_optimizer(name, **SETTINGS[name])
    for g in grads[:2]:
        optimizer.update(first, g)
    saved = optimizer.state_dict()
    assert saved["type"] == name and saved["step"] == 2
    assert saved["hyperparameters"] == SETTINGS[name] | {
        k: v for k, v in type(optimizer)().hyperparameters.items() if k not in SETTINGS[name]}
    resumed = get_optimizer(name)
    resumed.load_state_dict(saved)
    assert resumed.hyperparameters == optimizer.hyperparameters
    # Copies: with the same arrays in both dicts, a step written in place into `first` would
    # also be `second`'s (and a second holder of an immutable array is refused).
    second = {k: xb.asarray(xb.to_numpy(v), dtype) for k, v in first.items()}
    optimizer.update(first, grads[2])
    resumed.update(second, grads[2])
    for key in first:
        np.testing.assert_array_equal(xb.to_numpy(second[key]), xb.to_numpy(first[key]))


def test_load_state_dict_validates_and_changes_nothing_on_error():
    optimizer = Adam(lr=0.1)
    optimizer.update({"W": np.zeros(3)}, {"W": np.ones(3)})
    good = optimizer.state_dict()
    target = Adam()
    cases = [
        ({**good, "type": "sgd"}, "is for a 'sgd' optimizer, this is 'adam'"),
        ({k: v for k, v in good.items() if k != "step"}, "lacks step"),
        ({**good, "step": -1}, "step must be an integer >= 0"),
        ({**good, "hyperparameters": {"lr": 0.1}}, "hyperparameters .* do not match"),
        ({**good, "hyperparameters": {**good["hyperparameters"], "beta1": 2.0}}, "beta1 must lie"),
        ({**good, "state": {"m": good["state"]["m"]}}, r"slots \['m', 'v'\]"),
        ({**good, "state": {"m": good["state"]["m"], "v": {}}}, "hold different keys"),
        ({**good, "state": {"m": good["state"]["m"], "v": {"W": np.zeros(4)}}},
         r"'v' of 'W' has shape \(4,\)"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            target.load_state_dict(bad)
        assert target.step_count == 0 and target.lr == 0.001
        assert target.state_dict()["state"] == {"m": {}, "v": {}}
    target.load_state_dict(good)
    assert target.step_count == 1 and target.lr == 0.1


def test_to_moves_the_state_with_the_net(xb, rng):
    net = TwoLayerNet(6, 8, 3, weight_init_std=0.5, backend="numpy", seed=2)
    hx, ht = rng.standard_normal((12, 6)).astype(np.float32), rng.integers(0, 3, size=12)
    optimizer = Adam(lr=0.05)
    optimizer.update(net.params, net.gradient(hx, ht))
    moved_net, moved = net.to(xb.backend), optimizer.to(xb.backend)
    assert moved is not optimizer and moved.step_count == 1
    assert moved.hyperparameters == optimizer.hyperparameters
    for arrays in optimizer.state_dict()["state"].values():
        assert all(isinstance(a, np.ndarray) for a in arrays.values())  # the original stays
    for arrays in moved.state_dict()["state"].values():
        for a in arrays.values():
            xb.assert_on_backend(a, "float32")
    x, t = xb.asarray(hx, "float32"), xb.asarray(ht, "int64")
    moved.update(moved_net.params, moved_net.gradient(x, t))
    optimizer.update(net.params, net.gradient(hx, ht))
    for key in net.params:
        xb.assert_close(moved_net.params[key], net.params[key], "float32")
    if xb.case.float64:
        wide = moved.to(dtype="float64")
        for arrays in wide.state_dict()["state"].values():
            for a in arrays.values():
                xb.assert_on_backend(a, "float64")


# --------------------------------------------------------------------------------------
# Against torch.optim, in float64
# --------------------------------------------------------------------------------------


def _torch_cases():
    return {
        "sgd": lambda torch, p, h: torch.optim.SGD(p, lr=h["lr"]),
        "momentum": lambda torch, p, h: torch.optim.SGD(p, lr=h["lr"], momentum=h["momentum"]),
        "adagrad": lambda torch, p, h: torch.optim.Adagrad(p, lr=h["lr"], eps=EPSILON),
        "rmsprop": lambda torch, p, h: torch.optim.RMSprop(p, lr=h["lr"], alpha=h["decay_rate"],
                                                            eps=EPSILON),
        "adam": lambda torch, p, h: torch.optim.Adam(p, lr=h["lr"], betas=(h["beta1"], h["beta2"]),
                                                      foreach=False),
    }


def _run_torch(torch, make, name, hyper, host_params, host_grads, on_step=None):
    tensors = {k: torch.tensor(v, dtype=torch.float64) for k, v in host_params.items()}
    optimizer = make(torch, list(tensors.values()), hyper)
    history = []
    for t, grads in enumerate(host_grads, start=1):
        if name == "adam":
            # torch adds eps to sqrt(v_hat) = sqrt(v) / sqrt(1 - beta2**t); the book adds it
            # to sqrt(v). Scaling eps per step makes the two formulas identical.
            optimizer.param_groups[0]["eps"] = EPSILON / math.sqrt(1 - hyper["beta2"] ** t)
        for k, tensor in tensors.items():
            tensor.grad = torch.tensor(grads[k], dtype=torch.float64)
        optimizer.step()
        history.append({k: v.detach().numpy().copy() for k, v in tensors.items()})
        if on_step is not None:
            on_step(optimizer, tensors)
    return history


@pytest.mark.parametrize("name", list(_torch_cases()))
def test_matches_torch_optim_in_float64(rng, name):
    torch = pytest.importorskip("torch")
    host_params, host_grads = _host_problem(rng, "float64", steps=6)
    expected = _run_torch(torch, _torch_cases()[name], name, SETTINGS[name], host_params,
                          host_grads)
    params = {k: v.copy() for k, v in host_params.items()}
    optimizer = get_optimizer(name, **SETTINGS[name])
    for grads, want in zip(host_grads, expected):
        optimizer.update(params, grads)
        for key in params:
            np.testing.assert_allclose(params[key], want[key], rtol=1e-10, atol=1e-12)
    moved = {k: params[k] - host_params[k] for k in params}
    assert all(np.abs(d).max() > 1e-3 for d in moved.values())  # the runs really moved


def test_nesterov_equals_torch_sgd_with_nesterov_true(rng):
    """The book's current Nesterov is torch's, step for step, velocity and all."""
    torch = pytest.importorskip("torch")
    hyper = SETTINGS["nesterov"]
    lr, mu = hyper["lr"], hyper["momentum"]
    host_params, host_grads = _host_problem(rng, "float64", steps=8)
    buffers = []
    torch_history = _run_torch(
        torch, lambda torch, p, h: torch.optim.SGD(p, lr=lr, momentum=mu, nesterov=True),
        "nesterov", hyper, host_params, host_grads,
        on_step=lambda opt, ts: buffers.append(
            {k: opt.state[t]["momentum_buffer"].numpy().copy() for k, t in ts.items()}))
    params = {k: v.copy() for k, v in host_params.items()}
    optimizer = Nesterov(**hyper)
    for grads, want, buffer in zip(host_grads, torch_history, buffers):
        optimizer.update(params, grads)
        velocity = optimizer.state_dict()["state"]["v"]
        for key in params:
            np.testing.assert_allclose(params[key], want[key], rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(velocity[key], -lr * buffer[key], rtol=1e-10, atol=1e-12)
    # The first step has no velocity yet: (1 + mu) lr g, not the pre-2021 (1 + mu + mu**2) lr g.
    one = {k: v.copy() for k, v in host_params.items()}
    Nesterov(**hyper).update(one, host_grads[0])
    np.testing.assert_allclose(one["W"] - host_params["W"], -(1 + mu) * lr * host_grads[0]["W"],
                               rtol=1e-12)
    assert np.abs(params["W"] - host_params["W"]).max() > 1e-3  # the run really moved


@pytest.mark.parametrize("lr", [np.float32(0.1), np.float64(0.1), np.int64(1), 0.1, 1])
def test_numpy_scalars_are_accepted_as_hyperparameters(lr):
    optimizer = SGD(lr=lr)
    assert type(optimizer.lr) is float and optimizer.lr == float(lr)
    params = {"W": np.array([1.0], dtype=np.float32)}
    optimizer.update(params, {"W": np.array([1.0], dtype=np.float32)})
    assert params["W"].dtype == np.float32  # a Python float keeps the parameter's dtype
    np.testing.assert_allclose(params["W"], [1.0 - float(lr)], rtol=1e-6)


@pytest.mark.parametrize("lr", [np.float32("nan"), np.float32("inf"), np.float32(-0.1),
                                np.float64(0.0)])
def test_bad_numpy_scalar_hyperparameters_are_refused(lr):
    with pytest.raises(ValueError, match=r"SGD: lr must lie in \(0.0, inf\)"):
        SGD(lr=lr)
    with pytest.raises(ValueError, match="Momentum: momentum must lie in"):
        Momentum(momentum=np.float32(1.5))
    with pytest.raises(TypeError, match="lr must be a real number"):
        SGD(lr=np.True_)
