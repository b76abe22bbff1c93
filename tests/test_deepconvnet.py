"""The book's chapter-8 DeepConvNet on the matrix: shapes, names, the forward pass against
a loop reference, gradient check in float64, moving, checkpoints, Trainer and the CLI."""

import numpy as np
import pytest

import bp_xp
import bp_xp.testing
from bp_xp import DeepConvNet
from bp_xp.convnet import DEEP_CONV_PARAMS
from layer_checks import loop_conv, loop_max_pool

#: A DeepConvNet small enough for central differences: 2-3 filters per convolution on
#: 8x8 images (8 -> pool 4 -> pad 2: 6 -> pool 3 -> pool 1), and no dropout (its masks
#: are random, a numerical gradient needs a deterministic loss).
SMALL = {
    "input_dim": (1, 8, 8),
    **{f"conv_param_{k}": {"filter_num": n} for k, n in enumerate((2, 2, 3, 3, 2, 2), start=1)},
    "hidden_size": 4,
    "output_size": 3,
}


def test_the_books_layers_names_and_shapes():
    net = DeepConvNet(seed=0)
    assert list(net.params) == [f"{p}{k}" for k in range(1, 9) for p in "Wb"]
    shapes = {k: tuple(v.shape) for k, v in net.params.items()}
    assert shapes["W1"] == (16, 1, 3, 3) and shapes["W4"] == (32, 32, 3, 3)
    assert shapes["W6"] == (64, 64, 3, 3) and shapes["W7"] == (64 * 4 * 4, 50)
    assert shapes["W8"] == (50, 10) and shapes["b8"] == (10,)
    kinds = [type(layer).__name__ for layer in net.layers.values()]
    assert kinds == ["Convolution", "Relu", "Convolution", "Relu", "Pooling"] * 3 + [
        "Affine", "Relu", "Dropout", "Affine", "Dropout"]
    assert [net.layers[f"Conv{k}"].pad for k in range(1, 7)] == [1, 1, 1, 2, 1, 1]
    # He initialisation: sqrt(2 / fan_in), the book's weight_init_scales
    fan_in = [1 * 9, 16 * 9, 16 * 9, 32 * 9, 32 * 9, 64 * 9, 64 * 16, 50]
    for k, fan in enumerate(fan_in, start=1):
        std = float(np.std(net.params[f"W{k}"]))
        assert std == pytest.approx(np.sqrt(2.0 / fan), rel=0.2 if k in (1, 8) else 0.05), k
        assert not np.any(net.params[f"b{k}"])
    assert DEEP_CONV_PARAMS[3]["pad"] == 2


def _reference_scores(host, x, ratio):
    """The network by loops, float64 NumPy: conv-relu x2 + pool, three times, then affines."""
    h = x
    for k in range(1, 7):
        pad = DEEP_CONV_PARAMS[k - 1]["pad"]
        h = np.maximum(loop_conv(h, host[f"W{k}"], host[f"b{k}"], 1, pad), 0)
        if k % 2 == 0:
            h = loop_max_pool(h, 2, 2, 2, 0)
    h = np.maximum(h.reshape(len(h), -1) @ host["W7"] + host["b7"], 0) * (1 - ratio)
    return (h @ host["W8"] + host["b8"]) * (1 - ratio)


def test_predict_matches_a_loop_reference(xb, dtype, rng):
    host_net = DeepConvNet(**SMALL, dtype="float64", seed=3)
    host = {k: np.asarray(v) for k, v in host_net.params.items()}
    net = host_net.to(xb.backend, dtype=dtype)
    hx = rng.standard_normal((3, 1, 8, 8))
    y = net.predict(xb.asarray(hx, dtype))
    xb.assert_close(y, _reference_scores(host, hx.astype(dtype).astype(np.float64), 0.5), dtype,
                    rtol=1e-4 if dtype == "float32" else None,
                    atol=1e-5 if dtype == "float32" else None)


def test_gradient_check_in_float64_on_numpy(rng):
    _gradient_check(bp_xp.testing.XB(bp_xp.testing.CASES[0], bp_xp.resolve_backend("numpy")), rng)


@pytest.mark.slow  # 500 small forward passes: 3-20 s a backend
def test_gradient_check_in_float64(xb, rng):
    _gradient_check(xb, rng)


#: For Dask, whose every loss evaluation builds and runs a task graph (about 1-2 s here):
#: one filter per convolution, 70 parameters instead of 320.
TINY = {**SMALL, **{f"conv_param_{k}": {"filter_num": 1} for k in range(1, 7)},
        "hidden_size": 2, "output_size": 3}


def _gradient_check(xb, rng):
    if not xb.case.float64:
        pytest.skip("the gradient check needs float64")
    sizes = TINY if xb.case.family == "dask" else SMALL
    net = DeepConvNet(**sizes, dropout_ratio=0.0, backend=xb.backend, seed=1)
    # Biases away from zero: with zero biases, a convolution whose window sees only zeros
    # (dead ReLUs, padding) outputs exactly 0, the ReLU's kink, where central differences
    # and the (sub)gradient rightly disagree.
    for key in [k for k in net.params if k.startswith("b")]:
        # positive, so that few ReLUs are dead (a parameter whose gradient is exactly zero
        # would be no check at all)
        net.params[key] = xb.asarray(0.1 + 0.3 * np.abs(rng.standard_normal(net.params[key].shape)),
                                     "float32")
    x = xb.asarray(rng.standard_normal((2, 1, 8, 8)), "float32")
    t = xb.asarray(np.array([0, 2]), "int64")
    errors = bp_xp.gradient_check(net, x, t)
    assert set(errors) == set(net.params)
    assert max(errors.values()) < 1e-6, errors


def test_dropout_trains_and_infers_as_the_book(rng):
    net = DeepConvNet(**SMALL, dtype="float64", seed=2)
    x, t = rng.standard_normal((4, 1, 8, 8)), np.array([0, 1, 2, 0])
    # loss() is the book's: training mode, a fresh dropout mask each call
    assert float(net.loss(x, t)) != float(net.loss(x, t))
    assert float(net.loss(x, t, train_flg=False)) == float(net.loss(x, t, train_flg=False))
    np.testing.assert_array_equal(net.predict(x), net.predict(x))


def test_moves_saves_and_loads(tmp_path, xb, rng):
    from bp_xp.checkpoint import load, save
    from bp_xp.optim import Adam

    net = DeepConvNet(**SMALL, seed=4)
    x = rng.standard_normal((3, 1, 8, 8)).astype(np.float32)
    t = rng.integers(0, 3, size=3)
    optimizer = Adam(lr=0.01)
    optimizer.update(net.params, net.gradient(x, t))
    moved = net.to(xb.backend)
    assert type(moved) is DeepConvNet and repr(moved).startswith("DeepConvNet(1x8x8 -> conv (2, 2")
    np.testing.assert_allclose(xb.to_numpy(moved.predict(xb.asarray(x, "float32"))),
                               net.predict(x), rtol=1e-5, atol=1e-6)
    path = tmp_path / "deep.npz"
    save(path, net, optimizer)
    loaded, opt = load(path, backend=xb.backend)
    assert type(loaded) is DeepConvNet and repr(loaded) == repr(moved)
    for key in net.params:
        xb.assert_close(loaded.params[key], net.params[key], "float32")
    assert opt.step_count == 1


def test_bad_configuration_names_what_is_wrong():
    with pytest.raises(ValueError, match=r"unknown conv_param_2 keys \['filters'\]"):
        DeepConvNet(conv_param_2={"filters": 3})
    with pytest.raises(ValueError, match=r"conv_param_5\['stride'\] must be an integer >= 1"):
        DeepConvNet(conv_param_5={"stride": 0})
    with pytest.raises(ValueError, match=r"DeepConvNet's pooling 3: the filter height 2 is larger"):
        DeepConvNet(input_dim=(1, 3, 3))
    with pytest.raises(ValueError, match="input_dim must be"):
        DeepConvNet(input_dim=(28, 28))


def test_trains_with_the_books_trainer_call(rng):
    from bp_xp.train import Trainer

    x = rng.random((40, 1, 8, 8)).astype(np.float32)
    t = (x[:, 0, :4].mean(axis=(1, 2)) > x[:, 0, 4:].mean(axis=(1, 2))).astype(np.int64)
    net = DeepConvNet(**{**SMALL, "output_size": 2}, seed=0)
    trainer = Trainer(net, x, t, x, t, epochs=2, mini_batch_size=10, optimizer="Adam",
                      optimizer_param={"lr": 0.001}, evaluate_sample_num_per_epoch=20,
                      verbose=False, progress=False, seed=0)
    trainer.train()
    assert len(trainer.train_loss_list) == 8 and len(trainer.test_acc_list) == 2
    assert all(np.isfinite(trainer.train_loss_list))


@pytest.mark.slow
def test_the_cli_trains_it(tmp_path, capsys):
    from bp_xp.cli import main

    status = main(["train", "--model", "deepconvnet", "--iters", "1", "--batch-size", "10",
                   "--no-progress", "--save", str(tmp_path / "d.npz")])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "DeepConvNet(1x28x28 -> conv (16, 16, 32, 32, 64, 64) -> 50 -> 10" in out
    loaded, _ = bp_xp.checkpoint.load(tmp_path / "d.npz")
    assert type(loaded) is DeepConvNet


def test_load_params_reads_a_file_written_as_the_books_save_params(tmp_path):
    import pickle

    source = DeepConvNet(**SMALL, dtype="float64", seed=5)
    path = tmp_path / "deep_convnet_params.pkl"
    with open(path, "wb") as f:  # the book's save_params: pickle.dump of a dict of arrays
        pickle.dump({k: np.asarray(v) for k, v in source.params.items()}, f)
    net = DeepConvNet(**SMALL, dtype="float64", seed=6)
    net.load_params(path)  # read without unpickling (bp_xp._book_pickle)
    for key in source.params:
        np.testing.assert_array_equal(net.params[key], source.params[key])
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8))
    np.testing.assert_array_equal(net.predict(x), source.predict(x))
