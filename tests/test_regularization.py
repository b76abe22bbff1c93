"""Dropout and BatchNormalization on every backend: the book's formulas, seeds, modes,
numerical gradients and PyTorch's batch_norm."""

import numpy as np
import pytest

from bp_xp.layers import BatchNormalization, Dropout
from layer_checks import REPEATING_ROWS, numeric_grad, rel_error, torch_or_skip

EPS = 1e-6  # the book's 10e-7


def test_dropout_mask_follows_the_seed_and_is_shared_by_backward(xb, dtype, rng):
    hx, hd = rng.standard_normal((6, 5)) + 3.0, rng.standard_normal((6, 5))
    x, dout = xb.asarray(hx, dtype), xb.asarray(hd, dtype)
    layer = Dropout(0.3, seed=7)
    y = layer.forward(x)
    # Independent reference: the same host generator, drawn the documented way.
    keep = np.random.default_rng(7).random((6, 5)) > 0.3
    xb.assert_close(y, np.where(keep, hx.astype(dtype), 0.0), dtype)
    xb.assert_close(layer.backward(dout), np.where(keep, hd.astype(dtype), 0.0), dtype)
    second = xb.to_numpy(layer.forward(x)) != 0  # the next step draws a fresh mask
    assert not np.array_equal(second, keep)
    xb.assert_close(layer.forward(x, train_flg=False), hx * 0.7, dtype)
    for arr, host in ((x, hx), (dout, hd)):
        np.testing.assert_array_equal(xb.to_numpy(arr), host.astype(dtype))


def test_dropout_ratio_is_the_dropped_fraction():
    y = Dropout(0.25, seed=0).forward(np.ones((200, 200)))
    assert abs(np.mean(y == 0) - 0.25) < 0.01


def test_dropout_backward_matches_numerical(xb, rng):
    if not xb.case.float64:
        pytest.skip("needs float64")
    hx, hd = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    dout = xb.asarray(hd, "float64")
    layer = Dropout(0.5, seed=3)
    layer.forward(xb.asarray(hx, "float64"))
    dx = layer.backward(dout)
    # a fresh layer with the same seed draws the same first mask
    numeric = numeric_grad(xb, lambda v: xb.xp.sum(Dropout(0.5, seed=3).forward(v) * dout), hx)
    assert rel_error(xb.to_numpy(dx), numeric) < 1e-7


def _bn_reference(x, gamma, beta):
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return gamma * (x - mu) / np.sqrt(var + EPS) + beta, mu, var


@pytest.mark.parametrize("shape", [(8, 5), (4, 2, 3, 3)], ids=["2d", "image"])
def test_batchnorm_train_and_test_mode(xb, dtype, rng, shape):
    hx = rng.standard_normal(shape) * 3 + 1
    d = int(np.prod(shape[1:]))
    hg, hb = rng.standard_normal(d), rng.standard_normal(d)
    x = xb.asarray(hx, dtype)
    layer = BatchNormalization(xb.asarray(hg, dtype), xb.asarray(hb, dtype), momentum=0.8)
    flat = hx.reshape(shape[0], d)
    out, mu, var = _bn_reference(flat, hg, hb)
    y = layer.forward(x)
    assert tuple(y.shape) == shape
    xb.assert_close(y, out.reshape(shape), dtype, rtol=1e-3 if dtype == "float32" else None)
    xb.assert_close(layer.running_mean, 0.2 * mu, dtype)
    xb.assert_close(layer.running_var, 0.2 * var, dtype, rtol=1e-3 if dtype == "float32" else None)
    y2 = layer.forward(x, train_flg=False)  # test mode: running statistics, left unchanged
    expected = hg * (flat - 0.2 * mu) / np.sqrt(0.2 * var + EPS) + hb
    xb.assert_close(y2, expected.reshape(shape), dtype, rtol=1e-3 if dtype == "float32" else None)
    xb.assert_close(layer.running_mean, 0.2 * mu, dtype)
    np.testing.assert_array_equal(xb.to_numpy(x), hx.astype(dtype))


def test_batchnorm_gradients_match_numerical(xb, rng):
    if not xb.case.float64:
        pytest.skip("needs float64")
    hx, hg, hb = rng.standard_normal((5, 3)), rng.standard_normal(3), rng.standard_normal(3)
    hd = rng.standard_normal((5, 3))
    on = lambda a: xb.asarray(a, "float64")  # noqa: E731
    dout = on(hd)
    layer = BatchNormalization(on(hg), on(hb))
    layer.forward(on(hx))
    dx = layer.backward(dout)

    def loss(x=None, g=None, b=None):
        bn = BatchNormalization(on(hg) if g is None else g, on(hb) if b is None else b)
        return xb.xp.sum(bn.forward(on(hx) if x is None else x) * dout)

    assert rel_error(xb.to_numpy(dx), numeric_grad(xb, lambda v: loss(x=v), hx)) < 1e-7
    assert rel_error(xb.to_numpy(layer.dgamma), numeric_grad(xb, lambda v: loss(g=v), hg)) < 1e-7
    assert rel_error(xb.to_numpy(layer.dbeta), numeric_grad(xb, lambda v: loss(b=v), hb)) < 1e-7


def test_batchnorm_matches_torch_autograd(xb, dtype, rng):
    torch = torch_or_skip()
    hx, hg, hb = rng.standard_normal((6, 4)) * 2, rng.standard_normal(4), rng.standard_normal(4)
    hd = rng.standard_normal((6, 4))
    layer = BatchNormalization(xb.asarray(hg, dtype), xb.asarray(hb, dtype))
    y = layer.forward(xb.asarray(hx, dtype))
    dx = layer.backward(xb.asarray(hd, dtype))
    tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (hx, hg, hb))
    ty = torch.nn.functional.batch_norm(tx, None, None, tg, tb, training=True, eps=EPS)
    ty.backward(torch.tensor(hd))
    tol = {"rtol": 1e-3, "atol": 1e-4} if dtype == "float32" else {}
    xb.assert_close(y, ty.detach().numpy(), dtype, **tol)
    xb.assert_close(dx, tx.grad.numpy(), dtype, **tol)
    xb.assert_close(layer.dgamma, tg.grad.numpy(), dtype, **tol)
    xb.assert_close(layer.dbeta, tb.grad.numpy(), dtype, **tol)


def test_running_statistics_are_state_and_rebuild():
    bn = BatchNormalization(np.ones(2), np.zeros(2), momentum=0.5)
    bn.forward(np.array([[0.0, 2.0], [2.0, 6.0]]))
    assert sorted(bn.params) == ["beta", "gamma"]
    assert sorted(bn.state) == ["running_mean", "running_var"]
    again = BatchNormalization.from_config(bn.config(), dict(bn.params), dict(bn.state))
    np.testing.assert_array_equal(again.running_mean, [0.5, 2.0])
    np.testing.assert_array_equal(again.running_var, [0.5, 2.0])
    assert again.momentum == 0.5
    drop = Dropout.from_config(Dropout(0.2, seed=5).config(), {}, {})
    np.testing.assert_array_equal(drop.forward(np.ones((3, 3))),
                                  Dropout(0.2, seed=5).forward(np.ones((3, 3))))


def test_bad_arguments_name_what_was_wrong():
    bn = BatchNormalization(np.ones(4), np.zeros(4))
    with pytest.raises(ValueError, match=r"x of shape \(3, 5\).*4 features.*gamma of shape \(4,\)"):
        bn.forward(np.ones((3, 5)))
    with pytest.raises(ValueError, match=r"gamma \(4,\) and beta \(3,\)"):
        BatchNormalization(np.ones(4), np.zeros(3))
    with pytest.raises(ValueError, match=r"running_mean must have gamma's shape \(4,\)"):
        BatchNormalization(np.ones(4), np.zeros(4), running_mean=np.zeros(3))
    with pytest.raises(ValueError, match=r"dropout_ratio must be in \[0, 1\), got 1.0"):
        Dropout(1.0)
    drop = Dropout()
    drop.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(2, 3\)"):
        drop.backward(np.ones((3, 2)))
    bn.forward(np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"forward output's shape \(3, 4\), got \(3, 5\)"):
        bn.backward(np.ones((3, 5)))


# -- MultiLayerNet's chapter-6 options (the book's MultiLayerNetExtend) --------------------


def test_multilayer_net_extend_layers_and_names():
    from bp_xp import MultiLayerNet

    net = MultiLayerNet(6, [5, 4], 3, use_dropout=True, dropout_ration=0.2, use_batchnorm=True,
                        seed=0)
    assert list(net.layers) == ["Affine1", "BatchNorm1", "Relu1", "Dropout1", "Affine2",
                                "BatchNorm2", "Relu2", "Dropout2", "Affine3"]
    assert list(net.params) == ["W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2",
                                "W3", "b3"]
    assert net.layers["Dropout1"].dropout_ratio == pytest.approx(0.2)
    np.testing.assert_array_equal(net.params["gamma2"], np.ones(4, dtype=np.float32))
    same = MultiLayerNet(6, [5, 4], 3, use_dropout=True, dropout_ratio=0.2, seed=0)
    assert same.layers["Dropout1"].dropout_ratio == pytest.approx(0.2)
    with pytest.raises(ValueError, match="dropout_ration .* or dropout_ratio, not both"):
        MultiLayerNet(6, [5], 3, use_dropout=True, dropout_ration=0.3, dropout_ratio=0.2)
    plain = MultiLayerNet(6, [5, 4], 3, seed=0)  # the options change no weight
    np.testing.assert_array_equal(plain.params["W2"], net.params["W2"])


@REPEATING_ROWS
@pytest.mark.filterwarnings("ignore:numerical_gradient. f did not change:RuntimeWarning")
def test_multilayer_net_with_batchnorm_passes_gradient_check(xb, rng):
    import bp_xp

    net = bp_xp.MultiLayerNet(5, [4, 3], 3, use_batchnorm=True, weight_init_std=0.5,
                              backend=xb.backend, seed=1)
    x = xb.asarray(rng.standard_normal((6, 5)), "float32")
    t = xb.asarray(rng.integers(0, 3, size=6), "int64")
    if not xb.case.float64:
        with pytest.warns(RuntimeWarning, match="no float64"):
            bp_xp.gradient_check(net, x, t)
        return
    errors = bp_xp.gradient_check(net, x, t)
    assert sorted(errors) == sorted(net.params)
    # A bias right before batch normalisation is cancelled by the mean: its true gradient
    # is 0, which the numerical one gives exactly and backprop up to rounding.
    grads = net.to(dtype="float64").gradient(xb.xp.astype(x, xb.dtype("float64")), t)
    for key in ("b1", "b2"):
        assert np.max(np.abs(xb.to_numpy(grads[key]))) < 1e-12
    others = {k: v for k, v in errors.items() if k not in ("b1", "b2")}
    assert max(others.values()) < 1e-7, errors


def test_dropout_net_same_seed_same_training_loss_on_every_backend(xb, rng):
    from bp_xp import MultiLayerNet

    hx, ht = rng.standard_normal((8, 5)), rng.integers(0, 3, size=8)

    def losses(backend, x, t):
        net = MultiLayerNet(5, [6, 6], 3, use_dropout=True, backend=backend, seed=4)
        return [float(net.loss(x, t, train_flg=True)) for _ in range(3)]

    host = losses("numpy", hx.astype(np.float32), ht)
    assert len(set(host)) == 3  # a new mask per step
    got = losses(xb.backend, xb.asarray(hx, "float32"), xb.asarray(ht, "int64"))
    np.testing.assert_allclose(got, host, rtol=1e-5)


def test_running_statistics_survive_to_and_checkpoints(xb, tmp_path, rng):
    from bp_xp import MultiLayerNet
    from bp_xp.checkpoint import load, save

    net = MultiLayerNet(5, [4], 3, use_batchnorm=True, use_dropout=True, seed=2)
    x = rng.standard_normal((10, 5)).astype(np.float32)
    net.loss(x, np.zeros(10, dtype=np.int64), train_flg=True)  # moves the running statistics
    mean = np.asarray(net.layers["BatchNorm1"].running_mean)
    assert np.any(mean != 0)
    moved = net.to(xb.backend)
    xb.assert_on_backend(moved.layers["BatchNorm1"].running_mean, "float32")
    np.testing.assert_array_equal(xb.to_numpy(moved.layers["BatchNorm1"].running_mean), mean)
    np.testing.assert_allclose(xb.to_numpy(moved.predict(xb.asarray(x, "float32"))),
                               net.predict(x), rtol=1e-5, atol=1e-6)
    path = tmp_path / "bn.npz"
    save(path, net)
    loaded, _ = load(path)
    assert list(loaded.layers) == list(net.layers)
    np.testing.assert_array_equal(loaded.layers["BatchNorm1"].running_var,
                                  net.layers["BatchNorm1"].running_var)
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))
    assert loaded.layers["Dropout1"].dropout_ratio == net.layers["Dropout1"].dropout_ratio


@pytest.mark.parametrize("kind", ["dropout", "batchnorm"])
def test_backward_after_an_eval_mode_forward_raises(xb, kind):
    """It used to answer silently for the last *training* batch."""
    x = xb.asarray(np.arange(12.0).reshape(4, 3), "float32")
    if kind == "dropout":
        layer = Dropout(0.5, seed=0)
    else:
        layer = BatchNormalization(xb.asarray(np.ones(3), "float32"),
                                   xb.asarray(np.zeros(3), "float32"))
    layer.forward(x, train_flg=True)
    layer.forward(x, train_flg=False)
    with pytest.raises(RuntimeError, match=r"after forward\(x, train_flg=False\)"):
        layer.backward(xb.asarray(np.ones((4, 3)), "float32"))
    layer.forward(x, train_flg=True)  # a training forward makes it differentiable again
    assert layer.backward(xb.asarray(np.ones((4, 3)), "float32")).shape == (4, 3)
