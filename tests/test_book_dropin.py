"""The book's own idioms on bp_xp (issue 20, part 1), on the matrix.

A network written as the book writes it (a dict of layers holding the same arrays as its
``params`` dict) trained by bp_xp's optimizers; Python-number parameters; the optimizer's
all-or-nothing commit; floored convolution sizes; ``(N, 1)`` labels; a number bias; the
network's input cast; the book's Trainer names; and ``numerical_gradient``'s in-place idiom.
References are independent: float64 NumPy written here from the book's formulas, and
``torch.nn.functional`` for the convolution sizes.
"""

import math
import signal
import sys
import types
import weakref
from collections import OrderedDict
from collections.abc import MutableMapping

import numpy as np
import pytest

import bp_xp
from bp_xp import numerical_gradient
from bp_xp.layers import Affine, Convolution, Pooling, Relu, SoftmaxWithLoss
from bp_xp.optim import HeldParameterError, get_optimizer
from bp_xp.train import Trainer
from layer_checks import torch_or_skip

SETTINGS = {
    "sgd": {"lr": 0.3},
    "momentum": {"lr": 0.2, "momentum": 0.7},
    "nesterov": {"lr": 0.2, "momentum": 0.6},
    "adagrad": {"lr": 0.4},
    "rmsprop": {"lr": 0.05, "decay_rate": 0.8},
    "adam": {"lr": 0.02, "beta1": 0.8, "beta2": 0.95},
}


def _mutable_case(xb):
    return xb.case.family in ("numpy", "torch", "cupy") and not xb.case.readonly


# --------------------------------------------------------------------------------------
# The book's update rules, in place on float64 NumPy values (written from chapter 6)
# --------------------------------------------------------------------------------------


class BookRule:
    """``update(params, grads)`` in place, one rule per name, as chapter 6 states them."""

    def __init__(self, name, **hyper):
        self.name, self.hyper, self.state, self.t = name, hyper, {}, 0

    def update(self, params, grads):
        h, self.t = self.hyper, self.t + 1
        for key in params:
            g = grads[key]
            slot = self.state.setdefault(key, {})
            if self.name == "sgd":
                params[key] -= h["lr"] * g
            elif self.name == "momentum":
                v = slot["v"] = h["momentum"] * slot.get("v", 0.0 * g) - h["lr"] * g
                params[key] += v
            elif self.name == "nesterov":
                v_old = slot.get("v", 0.0 * g)
                mu = h["momentum"]
                params[key] += mu * mu * v_old - (1 + mu) * h["lr"] * g
                slot["v"] = mu * v_old - h["lr"] * g
            elif self.name == "adagrad":
                acc = slot["h"] = slot.get("h", 0.0 * g) + g * g
                params[key] -= h["lr"] * g / (np.sqrt(acc) + 1e-7)
            elif self.name == "rmsprop":
                rho = h["decay_rate"]
                acc = slot["h"] = rho * slot.get("h", 0.0 * g) + (1 - rho) * g * g
                params[key] -= h["lr"] * g / (np.sqrt(acc) + 1e-7)
            elif self.name == "adam":
                b1, b2 = h["beta1"], h["beta2"]
                m = slot["m"] = slot.get("m", 0.0 * g) + (1 - b1) * (g - slot.get("m", 0.0 * g))
                v = slot["v"] = slot.get("v", 0.0 * g) + (1 - b2) * (g * g - slot.get("v", 0.0 * g))
                lr_t = h["lr"] * np.sqrt(1.0 - b2 ** self.t) / (1.0 - b1 ** self.t)
                params[key] -= lr_t * m / (np.sqrt(v) + 1e-7)


def host_grads(p, x, t):
    """Affine - ReLU - Affine - softmax cross-entropy, float64 NumPy, by hand."""
    a = x @ p["W1"] + p["b1"]
    z = np.maximum(a, 0)
    s = z @ p["W2"] + p["b2"]
    e = np.exp(s - s.max(axis=1, keepdims=True))
    y = e / e.sum(axis=1, keepdims=True)
    ds = y.copy()
    ds[np.arange(len(t)), t] -= 1
    ds /= len(t)
    dz = ds @ p["W2"].T
    da = dz * (a > 0)
    return {"W1": x.T @ da, "b1": da.sum(0), "W2": z.T @ ds, "b2": ds.sum(0)}


class BookTwoLayerNet:
    """Chapter 5's TwoLayerNet as the book builds it: layers share ``params``' arrays."""

    def __init__(self, params):
        self.params = params
        self.layers = OrderedDict()
        self.layers["Affine1"] = Affine(self.params["W1"], self.params["b1"])
        self.layers["Relu1"] = Relu()
        self.layers["Affine2"] = Affine(self.params["W2"], self.params["b2"])
        self.lastLayer = SoftmaxWithLoss()

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        return self.lastLayer.forward(self.predict(x), t)

    def accuracy(self, x, t):
        y = np.argmax(bp_xp.to_numpy(self.predict(x)), axis=1)
        return np.sum(y == bp_xp.to_numpy(t)) / float(x.shape[0])

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.lastLayer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        return {"W1": self.layers["Affine1"].dW, "b1": self.layers["Affine1"].db,
                "W2": self.layers["Affine2"].dW, "b2": self.layers["Affine2"].db}


def _problem(rng, dtype):
    host = {"W1": 0.5 * rng.standard_normal((5, 7)), "b1": 0.1 * rng.standard_normal(7),
            "W2": 0.5 * rng.standard_normal((7, 3)), "b2": 0.1 * rng.standard_normal(3)}
    host = {k: v.astype(dtype).astype(np.float64) for k, v in host.items()}
    x = rng.standard_normal((8, 5)).astype(dtype).astype(np.float64)
    t = rng.integers(0, 3, size=8)
    return host, x, t


@pytest.mark.parametrize("name", list(SETTINGS))
def test_a_book_shaped_network_trains_like_the_book(xb, dtype, rng, name):
    host, hx, ht = _problem(rng, dtype)
    params = {k: xb.asarray(v, dtype) for k, v in host.items()}
    net = BookTwoLayerNet(params)
    x, t = xb.asarray(hx, dtype), xb.asarray(ht, "int64")
    optimizer = get_optimizer(name, **SETTINGS[name])
    if not _mutable_case(xb):
        # Arrays that cannot be written in place (JAX, Dask, strict, read-only NumPy): the
        # step could only replace the dict's entries, which the book's layers would never
        # see. It is refused, naming the key, the holder and the ways out; nothing changes.
        message = (r"(SGD|Momentum|Nesterov|AdaGrad|RMSprop|Adam)\.update: params\['W1'\] is "
                   r"a \w+ array, which this backend cannot write in place, and 1 more "
                   r"reference\(s\) to it exist outside the params dict \(held as "
                   r"BookTwoLayerNet.layers\['Affine1'\].params\['W'\]\). The step"
                   r".*would silently not learn. Nothing was changed. Ways out: train a bp_xp "
                   r"network")
        with pytest.raises(HeldParameterError, match=message):
            optimizer.update(net.params, net.gradient(x, t))
        assert net.layers["Affine1"].W is net.params["W1"]
        assert net.layers["Affine2"].b is net.params["b2"]
        for key in host:
            np.testing.assert_array_equal(xb.to_numpy(net.params[key]), host[key].astype(dtype))
        assert optimizer.step_count == 0 and optimizer.state_dict()["state"] == {
            slot: {} for slot in optimizer.slots}
        return
    reference, book = {k: v.copy() for k, v in host.items()}, BookRule(name, **SETTINGS[name])
    for _ in range(5):
        optimizer.update(net.params, net.gradient(x, t))
        book.update(reference, host_grads(reference, hx, ht))
        for key in reference:  # step for step, the book's rule
            xb.assert_close(net.params[key], reference[key], dtype)
    layers = {"W1": net.layers["Affine1"].W, "b1": net.layers["Affine1"].b,
              "W2": net.layers["Affine2"].W, "b2": net.layers["Affine2"].b}
    assert all(layers[k] is net.params[k] for k in layers)  # the very arrays were stepped
    xb.assert_close(net.predict(x), _host_predict(reference, hx), dtype)


def _host_predict(p, x):
    return np.maximum(x @ p["W1"] + p["b1"], 0) @ p["W2"] + p["b2"]


@pytest.mark.parametrize("name", list(SETTINGS))
def test_python_number_parameters_as_in_optimizer_compare_naive(name):
    def df(x, y):  # the book's f(x, y) = x**2 / 20 + y**2
        return x / 10.0, 2.0 * y

    params, reference = {"x": -7.0, "y": 2.0}, {"x": np.float64(-7.0), "y": np.float64(2.0)}
    optimizer, book = get_optimizer(name, **SETTINGS[name]), BookRule(name, **SETTINGS[name])
    for _ in range(30):
        gx, gy = df(params["x"], params["y"])
        optimizer.update(params, {"x": gx, "y": gy})
        rx, ry = df(reference["x"], reference["y"])
        book.update(reference, {"x": rx, "y": ry})
        assert type(params["x"]) is float and type(params["y"]) is float
        assert params["x"] == pytest.approx(float(reference["x"]), rel=1e-12, abs=1e-300)
        assert params["y"] == pytest.approx(float(reference["y"]), rel=1e-12, abs=1e-300)
    with pytest.raises(TypeError, match=r"params\['x'\] is a number, so grads\['x'\] must be"):
        optimizer.update(params, {"x": np.zeros(1), "y": 1.0})
    state = optimizer.state_dict()
    assert state["step"] == 30


# --------------------------------------------------------------------------------------
# All or nothing
# --------------------------------------------------------------------------------------


class RefusesB(dict):
    """A parameter mapping that refuses to store key ``b`` (after ``W`` was stored)."""

    def __setitem__(self, key, value):
        if key == "b":
            raise RuntimeError("b is locked")
        super().__setitem__(key, value)


def _read_only(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


def test_a_mapping_that_refuses_one_key_leaves_every_parameter_as_it_was():
    params = RefusesB(W=_read_only([1.0, 2.0]), b=_read_only([3.0]))
    # ids, not the arrays: a second holder of an array that can only be replaced is refused
    # before the commit (the held-parameter tests below); the arrays stay alive in params throughout
    before = {key: id(value) for key, value in params.items()}
    optimizer = get_optimizer("momentum", lr=0.1)
    with pytest.raises(RuntimeError, match="b is locked"):
        optimizer.update(params, {"W": np.ones(2), "b": np.ones(1)})
    assert all(id(params[k]) == before[k] for k in before)  # W was put back
    assert optimizer.step_count == 0 and optimizer.state_dict()["state"]["v"] == {}


class InterruptsOnB(dict):
    """Delivers SIGINT (as Ctrl-C does) in the middle of the commit.

    The handler installed now is called directly: ``signal.raise_signal`` would leave the
    moment the interpreter runs it to chance (on a busy machine, a few bytecodes later).
    """

    def __setitem__(self, key, value):
        if key == "b":
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
        super().__setitem__(key, value)


def test_ctrl_c_during_the_commit_arrives_after_the_whole_step():
    # Python's own Ctrl-C handler, whatever an earlier test or library left installed
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        params = InterruptsOnB(W=_read_only([1.0, 2.0]), b=_read_only([3.0]), c=_read_only([4.0]))
        optimizer = get_optimizer("sgd", lr=0.5)
        with pytest.raises(KeyboardInterrupt):
            optimizer.update(params, {"W": np.ones(2), "b": np.ones(1), "c": np.ones(1)})
        np.testing.assert_array_equal(params["W"], [0.5, 1.5])
        np.testing.assert_array_equal(params["b"], [2.5])
        np.testing.assert_array_equal(params["c"], [3.5])
        assert optimizer.step_count == 1
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


# --------------------------------------------------------------------------------------
# A step the holders of a parameter could not see is refused (bp_xp/_holders.py)
# --------------------------------------------------------------------------------------


def _stepped(xb, rng):
    host = {"W": rng.standard_normal((2, 3)), "b": rng.standard_normal(3)}
    params = {k: xb.asarray(v, "float32") for k, v in host.items()}
    grads = {k: xb.asarray(np.ones_like(v), "float32") for k, v in host.items()}
    return host, params, grads


def test_a_variable_holding_a_parameter_that_can_only_be_replaced_is_refused(xb, rng):
    host, params, grads = _stepped(xb, rng)
    old = params["b"]
    optimizer = get_optimizer("momentum", lr=0.5)
    if _mutable_case(xb):  # written in place: the holder sees the step, as in the book
        optimizer.update(params, grads)
        assert params["b"] is old
        xb.assert_close(old, host["b"] - 0.5, "float32")
        return
    with pytest.raises(HeldParameterError, match=r"params\['b'\] is a \w+ array, which this "
                       r"backend cannot write in place, and 1 more reference\(s\) to it exist "
                       r"outside the params dict \(e.g. a variable"):
        optimizer.update(params, grads)
    assert params["b"] is old and optimizer.step_count == 0  # nothing changed (W neither)
    np.testing.assert_array_equal(xb.to_numpy(params["W"]), host["W"].astype("float32"))
    # The ways out the message gives for a holder kept on purpose: a copy, or no holder.
    copy = xb.xp.asarray(old, copy=True)
    del old
    optimizer.update(params, grads)
    xb.assert_close(params["b"], host["b"] - 0.5, "float32")
    np.testing.assert_array_equal(xb.to_numpy(copy), host["b"].astype("float32"))
    assert optimizer.step_count == 1


def test_what_is_not_a_holder(xb, rng, monkeypatch):
    host, params, grads = _stepped(xb, rng)
    optimizer = get_optimizer("sgd", lr=0.5)
    try:  # a weak reference does not keep the old array alive: it hides no step
        ref = weakref.ref(params["W"])
    except TypeError:
        ref = None
    optimizer.update(params, grads)  # the optimizer's own snapshot is not a holder either
    xb.assert_close(params["W"], host["W"] - 0.5, "float32")
    assert ref is None or ref() is None or ref() is params["W"]
    # A mapping other than a dict: how many references it holds is unknown, not checked.
    held = params["W"]
    optimizer.update(OtherMapping(params), grads)
    # Without sys.getrefcount (PyPy) nothing is checked.
    monkeypatch.delattr(sys, "getrefcount")
    optimizer.update(params, grads)
    assert held is params["W"] or not _mutable_case(xb)
    xb.assert_close(params["W"], host["W"] - 1.5, "float32")


class OtherMapping(MutableMapping):
    """A MutableMapping that is not a dict, over a dict."""

    def __init__(self, inner):
        self.inner = inner

    def __getitem__(self, key):
        return self.inner[key]

    def __setitem__(self, key, value):
        self.inner[key] = value

    def __delitem__(self, key):
        del self.inner[key]

    def __iter__(self):
        return iter(self.inner)

    def __len__(self):
        return len(self.inner)


def test_the_reference_count_baseline_is_measured_not_assumed():
    from bp_xp import _holders

    probe = object()
    first, second = {"k": probe}, {"k": probe}
    # CPython counts every strong reference, the argument's own included: the two dicts,
    # this frame's `probe` and getrefcount's argument.
    assert sys.getrefcount(probe) == 4
    del probe
    assert _holders._references(second, "k") == _holders._baseline()
    assert first["k"] is second["k"]


def test_book_numbers_held_elsewhere_are_not_holders():
    # optimizer_compare_naive.py keeps floats and reads them back from the dict; a float
    # has no identity anything could rely on, and the step is always seen through the dict
    params = {"x": -7.0, "y": 2.0}
    x_before = params["x"]
    for _ in range(3):
        get_optimizer("adam", lr=0.3).update(params, {"x": params["x"] / 10.0,
                                                      "y": 2.0 * params["y"]})
    assert x_before == -7.0 and params["x"] > x_before


def test_the_trainer_refuses_a_book_network_that_could_not_learn(xb, rng):
    host, hx, ht = _problem(rng, "float32")
    # Dask: the backend's own chunks (the matrix's uneven ones do not meet the Trainer's x)
    place = xb.backend.asarray if xb.case.family == "dask" else xb.asarray
    net = BookTwoLayerNet({k: place(v, "float32") for k, v in host.items()})
    x, t = hx.astype(np.float32), ht
    trainer = Trainer(net, x, t, x, t, epochs=2, mini_batch_size=4, optimizer="SGD",
                      optimizer_param={"lr": 0.1}, verbose=False, progress=False, seed=0)
    if _mutable_case(xb):
        trainer.train()  # the book's layers hold the stepped arrays
        assert net.layers["Affine1"].W is net.params["W1"]
        assert not np.array_equal(xb.to_numpy(net.params["W1"]), host["W1"].astype("float32"))
        return
    with pytest.raises(HeldParameterError, match=r"held as BookTwoLayerNet.layers\['Affine1'\]"):
        trainer.train()
    assert trainer.iteration == 0 and trainer.optimizer.step_count == 0
    np.testing.assert_array_equal(xb.to_numpy(net.params["W1"]), host["W1"].astype("float32"))


def test_bp_xp_networks_train_on_every_backend(xb, rng):
    # Their params own the layers' arrays (Params): replaced through the owner, never refused.
    x = rng.standard_normal((40, 4)).astype(np.float32)
    t = (x[:, 0] > 0).astype(np.int64)
    net = bp_xp.TwoLayerNet(4, 6, 2, weight_init_std=0.5, backend=xb.backend, seed=0)
    W1 = xb.to_numpy(net.params["W1"]).copy()
    trainer = Trainer(net, x, t, x, t, epochs=2, batch_size=10, optimizer="adam",
                      optimizer_params={"lr": 0.05}, progress=False, seed=0)
    trainer.train()
    step = bp_xp.compile_step(net, get_optimizer("sgd", lr=0.1))
    step(xb.asarray(x[:10], "float32"), xb.asarray(t[:10], "int64"))
    assert not np.array_equal(xb.to_numpy(net.params["W1"]), W1)
    assert trainer.optimizer.step_count == 8


def test_a_read_only_mapping_works_in_place_or_is_refused(xb, rng):
    host = {"W": rng.standard_normal((2, 3)), "b": rng.standard_normal(3)}
    inner = {k: xb.asarray(v, "float32") for k, v in host.items()}
    params = types.MappingProxyType(inner)
    grads = {k: xb.asarray(np.ones_like(v), "float32") for k, v in host.items()}
    optimizer = get_optimizer("sgd", lr=0.5)
    if _mutable_case(xb):
        optimizer.update(params, grads)
        for key in host:
            xb.assert_close(params[key], host[key] - 0.5, "float32")
    else:
        with pytest.raises(TypeError, match="read-only mappingproxy.*caller would never see"):
            optimizer.update(params, grads)
        for key in host:
            np.testing.assert_array_equal(xb.to_numpy(inner[key]), host[key].astype("float32"))
        assert optimizer.step_count == 0


# --------------------------------------------------------------------------------------
# Layers: floored sizes, (N, 1) labels, a number bias
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "stride", "pad"), [((2, 3, 8, 7), 2, 0), ((1, 2, 9, 10), 3, 1)])
def test_strides_that_do_not_divide_floor_as_pytorch(xb, rng, shape, stride, pad):
    if not xb.case.float64:
        pytest.skip("compared in float64")
    torch = torch_or_skip()
    F = torch.nn.functional
    hx, hW, hb = rng.standard_normal(shape), rng.standard_normal((4, shape[1], 3, 3)), rng.standard_normal(4)
    conv = Convolution(xb.asarray(hW, "float64"), xb.asarray(hb, "float64"), stride, pad)
    pool = Pooling(2, 2, stride=2)
    out = pool.forward(conv.forward(xb.asarray(hx, "float64")))
    tx, tW, tb = (torch.tensor(a, requires_grad=True) for a in (hx, hW, hb))
    tout = F.max_pool2d(F.conv2d(tx, tW, tb, stride=stride, padding=pad), 2, 2)
    assert tuple(out.shape) == tuple(tout.shape)
    hd = rng.standard_normal(tuple(tout.shape))
    tout.backward(torch.tensor(hd))
    dx = conv.backward(pool.backward(xb.asarray(hd, "float64")))
    xb.assert_close(out, tout.detach().numpy(), "float64")
    xb.assert_close(dx, tx.grad.numpy(), "float64")
    xb.assert_close(conv.dW, tW.grad.numpy(), "float64")


def test_softmax_with_loss_takes_a_column_of_labels(xb, dtype, rng):
    hx, ht = rng.standard_normal((4, 3)), rng.integers(0, 3, size=4)
    flat, column = SoftmaxWithLoss(), SoftmaxWithLoss()
    x = xb.asarray(hx, dtype)
    loss = column.forward(x, xb.asarray(ht.reshape(4, 1), "int64"))
    xb.assert_close(loss, xb.to_numpy(flat.forward(x, xb.asarray(ht, "int64"))), dtype)
    e = np.exp(hx - hx.max(1, keepdims=True))
    y = e / e.sum(1, keepdims=True)
    xb.assert_close(loss, -np.log(y[np.arange(4), ht]).mean(), dtype)
    expected = y.copy()
    expected[np.arange(4), ht] -= 1
    xb.assert_close(column.backward(), expected / 4, dtype)


@pytest.mark.parametrize("bias", [0, 0.25])
def test_convolution_takes_a_number_bias(xb, dtype, rng, bias):
    hW, hx = rng.standard_normal((2, 1, 3, 3)), rng.standard_normal((1, 1, 5, 5))
    conv = Convolution(xb.asarray(hW, dtype), bias)
    xb.assert_close(conv.b, np.full(2, bias), dtype)
    reference = Convolution(xb.asarray(hW, dtype), xb.asarray(np.full(2, bias), dtype))
    x = xb.asarray(hx, dtype)
    xb.assert_close(conv.forward(x), xb.to_numpy(reference.forward(x)), dtype)


# --------------------------------------------------------------------------------------
# The network boundary
# --------------------------------------------------------------------------------------


def test_a_network_casts_floating_inputs_to_its_dtype(xb, rng):
    if not xb.case.float64:
        pytest.skip("needs float64")
    hx, ht = rng.standard_normal((3, 4)), np.array([0, 2, 1])
    for net_dtype, x_dtype in (("float64", "float32"), ("float32", "float64")):
        net = bp_xp.TwoLayerNet(4, 5, 3, weight_init_std=0.5, backend=xb.backend,
                                dtype=net_dtype, seed=0)
        x = xb.asarray(hx, x_dtype)
        cast = xb.xp.astype(x, xb.dtype(net_dtype))
        y = net.predict(x)
        xb.assert_on_backend(y, net_dtype)  # a float32 net stays float32
        np.testing.assert_array_equal(xb.to_numpy(y), xb.to_numpy(net.predict(cast)))
        t = xb.asarray(ht, "int64")
        assert float(xb.to_numpy(net.loss(x, t))) == float(xb.to_numpy(net.loss(cast, t)))
        np.testing.assert_array_equal(xb.to_numpy(x), hx.astype(x_dtype))  # not written
    if xb.case.family == "torch":  # torch's matmul refuses mixed dtypes instead
        return
    # a single layer keeps the Array API's promotion: float64 weights, float32 x -> float64
    layer = Affine(xb.asarray(np.ones((4, 2)), "float64"), xb.asarray(np.zeros(2), "float64"))
    xb.assert_on_backend(layer.forward(xb.asarray(hx, "float32")), "float64")


# --------------------------------------------------------------------------------------
# Trainer with the book's names
# --------------------------------------------------------------------------------------


def test_trainer_takes_the_books_trainer_signature(rng):
    x = rng.standard_normal((60, 4)).astype(np.float32)
    t = (x[:, 0] > 0).astype(np.int64)

    def run(**kwargs):
        net = bp_xp.TwoLayerNet(4, 6, 2, weight_init_std=0.5, seed=0)
        trainer = Trainer(net, x, t, x, t, epochs=3, optimizer="Adam", seed=1,
                                      progress=False, **kwargs)
        trainer.train()
        return trainer

    book = run(mini_batch_size=10, optimizer_param={"lr": 0.01},
               evaluate_sample_num_per_epoch=20, verbose=False)
    ours = run(batch_size=10, optimizer_params={"lr": 0.01}, evaluate_sample_num=20)
    assert len(book.train_loss_list) == 18 and len(book.train_acc_list) == 3
    assert len(book.test_acc_list) == 3
    assert book.train_loss_list == ours.history["loss"]
    assert book.test_acc_list == ours.history["test_acc"]
    with pytest.raises(TypeError, match="give batch_size or the book's mini_batch_size, not both"):
        run(batch_size=10, mini_batch_size=10)


def test_trainer_trains_a_network_written_the_books_way(rng):
    # the book's ch07/train_convnet.py and ch08/train_deepnet.py hand the Trainer their own
    # network classes; the Trainer adapts them and bp_xp's optimizers step them in place
    x = rng.standard_normal((80, 5))
    t = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    host, _, _ = _problem(rng, "float64")
    net = BookTwoLayerNet({k: v.copy() for k, v in host.items()})
    W1 = net.params["W1"]
    trainer = Trainer(net, x, t, x, t, epochs=10, mini_batch_size=10, optimizer="SGD",
                      optimizer_param={"lr": 0.1}, verbose=False, progress=False, seed=0)
    trainer.train()
    assert net.params["W1"] is W1 and net.layers["Affine1"].W is W1
    assert not np.array_equal(W1, host["W1"])
    assert trainer.test_acc_list[-1] > 0.85 and len(trainer.train_loss_list) == 80
    assert trainer.train_loss_list[-1] < trainer.train_loss_list[0]
    with pytest.raises(ValueError, match="trains eagerly"):
        Trainer(net, x, t, x, t, compile=True)
    with pytest.raises(TypeError, match="has no params, gradient, loss, predict, accuracy"):
        Trainer(object(), x, t, x, t)


# --------------------------------------------------------------------------------------
# numerical_gradient, the book's way
# --------------------------------------------------------------------------------------


def test_the_books_lambda_idiom(xb, rng):
    if not xb.case.float64:
        pytest.skip("needs float64")
    host, hx, ht = _problem(rng, "float64")
    net = BookTwoLayerNet({k: xb.asarray(v, "float64") for k, v in host.items()})
    x, t = xb.asarray(hx, "float64"), xb.asarray(ht, "int64")
    W = net.params["W1"]
    before = xb.to_numpy(W).copy()
    if _mutable_case(xb):
        grad = numerical_gradient(lambda W: net.loss(x, t), net.params["W1"])
        xb.assert_close(grad, host_grads(host, hx, ht)["W1"], "float64", rtol=1e-6, atol=1e-8)
        assert net.params["W1"] is W
    else:
        with pytest.warns(RuntimeWarning, match="not written in place"):
            grad = numerical_gradient(lambda W: net.loss(x, t), net.params["W1"])
        xb.assert_equal(grad, np.zeros_like(before))
    assert xb.to_numpy(W).tobytes() == before.tobytes()  # bit for bit


def test_an_exception_inside_f_restores_the_array_bit_for_bit(xb, rng):
    host = rng.standard_normal((3, 3)).astype(np.float32)
    host[0, 0] = -0.0
    x = xb.asarray(host, "float32")
    calls = []

    def f(v):
        calls.append(1)
        if len(calls) == 5:
            raise ZeroDivisionError("stop")
        return xb.xp.sum(v * v)

    with pytest.raises(ZeroDivisionError):
        numerical_gradient(f, x)
    assert xb.to_numpy(x).tobytes() == host.tobytes()
    assert math.copysign(1.0, float(xb.to_numpy(x)[0, 0])) == -1.0
