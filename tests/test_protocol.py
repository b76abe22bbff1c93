"""The layer protocol, proven from outside: a layer bp_xp has never seen works everywhere.

``Tanh`` and ``Scale`` below are written here, in the test, exactly as a user would:
no bp_xp file knows them. They run through ``Sequential``, the Trainer,
``gradient_check``, a checkpoint round trip, ``.to()`` and every backend of the matrix.
"""

import math

import numpy as np
import pytest

import bp_xp
from bp_xp import Layer, Sequential, TwoLayerNet
from bp_xp.checkpoint import load, save
from bp_xp.layers import Affine, Relu, SoftmaxWithLoss
from bp_xp.optim import SGD
from bp_xp.train import Trainer
from layer_checks import REPEATING_ROWS


class Tanh(Layer):
    """The ten-line layer of the architecture docs."""

    def forward(self, x):
        self.out = bp_xp.namespace_of(x).tanh(x)
        return self.out

    def backward(self, dout):
        return dout * (1 - self.out ** 2)


class Scale(Layer):
    """A layer with a parameter, a constructor argument and state, to exercise config()."""

    def __init__(self, scale, *, shift=0.0):
        self.params["s"] = scale
        self.shift = shift

    def config(self):
        return {"shift": self.shift}

    @classmethod
    def from_config(cls, config, params, state):
        layer = cls(params["s"], **config)
        layer.state.update(state)
        return layer

    def forward(self, x, train_flg=True):
        self.x = x
        if train_flg:
            self.state["seen"] = bp_xp.namespace_of(x).mean(x, axis=0)
        return x * self.params["s"] + self.shift

    def backward(self, dout):
        xp = bp_xp.namespace_of(dout)
        self.grads["s"] = xp.sum(dout * self.x, axis=0)
        return dout * self.params["s"]


def _net(backend, dtype, seed=0):
    rng = np.random.default_rng(seed)
    b = bp_xp.resolve_backend(backend)
    return Sequential([
        Affine(b.asarray(rng.standard_normal((4, 6)), dtype=dtype), b.asarray(np.zeros(6), dtype=dtype)),
        Tanh(),
        Scale(b.asarray(rng.uniform(0.5, 1.5, 6), dtype=dtype), shift=0.25),
        Affine(b.asarray(rng.standard_normal((6, 3)), dtype=dtype), b.asarray(np.zeros(3), dtype=dtype)),
    ], SoftmaxWithLoss())


def _reference_loss_and_grads(params, x, t):
    """The same network in float64 NumPy, written out by hand (independent of the layers)."""
    a1 = x @ params["W1"] + params["b1"]
    h = np.tanh(a1)
    s = h * params["s1"] + 0.25
    z = s @ params["W2"] + params["b2"]
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    n = x.shape[0]
    loss = -np.log(p[np.arange(n), t]).mean()
    dz = p.copy()
    dz[np.arange(n), t] -= 1
    dz /= n
    grads = {"W2": s.T @ dz, "b2": dz.sum(0)}
    ds = dz @ params["W2"].T
    grads["s1"] = (ds * h).sum(0)
    dh = ds * params["s1"]
    da1 = dh * (1 - h ** 2)
    grads["W1"], grads["b1"] = x.T @ da1, da1.sum(0)
    return loss, grads


def test_a_user_layer_computes_the_right_gradient_on_every_backend(xb, dtype, rng):
    net = _net(xb.backend, dtype)
    assert list(net.layers) == ["Affine1", "Tanh1", "Scale1", "Affine2"]
    assert list(net.params) == ["W1", "b1", "s1", "W2", "b2"]
    hx, ht = rng.standard_normal((5, 4)), rng.integers(0, 3, 5)
    host_params = {k: xb.to_numpy(v).astype(np.float64) for k, v in net.params.items()}
    expected_loss, expected = _reference_loss_and_grads(host_params, hx.astype(dtype).astype(np.float64), ht)
    loss, grads = net.loss_and_gradient(xb.asarray(hx, dtype), xb.asarray(ht, "int64"))
    xb.assert_close(loss, np.asarray(expected_loss), dtype)
    for key in expected:
        xb.assert_close(grads[key], expected[key], dtype)


@REPEATING_ROWS
def test_a_user_layer_passes_gradient_check(xb, rng):
    net = _net(xb.backend, "float32")
    x = xb.asarray(rng.standard_normal((3, 4)), "float32")
    t = xb.asarray(rng.integers(0, 3, 3), "int64")
    if xb.case.float64:
        errors = bp_xp.gradient_check(net, x, t)
        assert max(errors.values()) < 1e-7, errors
    else:
        # float32 central differences are rounding noise; the check must say so, and the
        # gradient itself is proven against the float64 reference in the test above
        with pytest.warns(RuntimeWarning, match="has no float64; checking in"):
            errors = bp_xp.gradient_check(net, x, t)
        assert sorted(errors) == sorted(net.params)


def test_train_flg_reaches_only_the_layers_that_take_it(xb, rng):
    net = _net(xb.backend, "float32")
    x = xb.asarray(rng.standard_normal((5, 4)), "float32")
    scale = net.layers["Scale1"]
    net.predict(x)  # inference: Scale sees train_flg=False, Tanh is called without it
    assert "seen" not in scale.state
    net.predict(x, train_flg=True)
    assert tuple(scale.state["seen"].shape) == (6,)


def test_a_user_layer_saves_loads_and_moves(xb, rng, tmp_path):
    net = _net("numpy", "float32")
    x = rng.standard_normal((5, 4)).astype(np.float32)
    net.predict(x, train_flg=True)  # fills Scale's state
    path = tmp_path / "custom.npz"
    save(path, net)
    loaded, _ = load(path, backend=xb.backend)
    assert type(loaded) is Sequential and list(loaded.params) == list(net.params)
    assert isinstance(loaded.layers["Tanh1"], Tanh) and loaded.layers["Scale1"].shift == 0.25
    xb.assert_equal(loaded.layers["Scale1"].state["seen"], net.layers["Scale1"].state["seen"])
    moved = net.to(xb.backend)
    for other in (loaded, moved):
        for key in net.params:
            xb.assert_equal(other.params[key], net.params[key], "float32")
        xb.assert_close(other.predict(xb.asarray(x, "float32")), net.predict(x), "float32")


@REPEATING_ROWS
def test_a_user_layer_trains_with_the_trainer(xb, rng):
    # a separable problem: class = sign of the first feature (three classes by thirds)
    x = rng.standard_normal((300, 4)).astype(np.float32)
    t = np.digitize(x[:, 0], [-0.43, 0.43])
    net = _net(xb.backend, "float32", seed=1)
    trainer = Trainer(net, x, t, x, t, epochs=15, batch_size=30, seed=0, progress=False,
                      optimizer=SGD(lr=0.5))
    history = trainer.train()
    assert history["test_acc"][-1] > 0.9
    assert history["train_loss"][-1] < history["train_loss"][0]


def test_book_nets_are_sequential_with_the_book_names_and_numbers():
    net = TwoLayerNet(4, 5, 3, seed=7)
    assert isinstance(net, Sequential)
    assert list(net.layers) == ["Affine1", "Relu1", "Affine2"]
    assert net.layers["Affine1"].W is net.params["W1"] is net.layers["Affine1"].params["W"]
    # the same seed draws the same weights as the book's recipe, std * standard normal
    rng = np.random.default_rng(7)
    np.testing.assert_array_equal(net.params["W1"], (0.01 * rng.standard_normal((4, 5))).astype(np.float32))
    np.testing.assert_array_equal(net.params["W2"], (0.01 * rng.standard_normal((5, 3))).astype(np.float32))


def test_protocol_errors_name_the_problem():
    with pytest.raises(TypeError, match="layer 'x' is a type, not a bp_xp.Layer"):
        Sequential({"x": Relu, "y": Relu()})
    with pytest.raises(TypeError, match="is a loss layer; pass it as loss="):
        Sequential([Relu(), SoftmaxWithLoss()])
    with pytest.raises(TypeError, match="loss must be a bp_xp.layers.LossLayer"):
        Sequential([Relu()], Relu())
    relu = Relu()
    with pytest.raises(ValueError, match="appears twice"):
        Sequential([relu, relu])
    with pytest.raises(ValueError, match="weight_decay_lambda must be a finite number"):
        Sequential([Relu()], weight_decay_lambda=math.nan)
    a = Scale(np.ones(3))
    b = Scale(np.ones(3))
    with pytest.raises(ValueError, match="would both name a parameter 's1'"):
        Sequential([a, b])


def test_a_network_refuses_a_batch_of_another_dtype_on_every_backend(xb, rng):
    # Floating batches are cast at the network's boundary (tests/test_book_dropin.py);
    # integer ones are refused.
    net = _net(xb.backend, "float32")
    x = xb.asarray(rng.integers(0, 3, size=(2, 4)), "int32")
    with pytest.raises(TypeError, match=r"x has dtype int32 but the network's parameters "
                                        r"are float32"):
        net.loss(x, xb.asarray(np.array([0, 1]), "int64"))
