"""Trainer on the matrix: it learns, it is the same on every backend, it never syncs in a step."""

import math

import numpy as np
import pytest

import bp_xp
import reference as ref
from bp_xp.data import DatasetError
from bp_xp.train import Trainer, plot, seconds_per_epoch

N_TRAIN, N_TEST, FEATURES, CLASSES, HIDDEN = 200, 60, 20, 3, 16


def _dataset(rng):
    """Three classes a random linear teacher separates: learnable in a few epochs."""
    teacher = rng.standard_normal((FEATURES, CLASSES))
    x = rng.standard_normal((N_TRAIN + N_TEST, FEATURES))
    t = np.argmax(x @ teacher, axis=1)
    return x[:N_TRAIN], t[:N_TRAIN], x[N_TRAIN:], t[N_TRAIN:]


def _net(backend, dtype):
    return bp_xp.TwoLayerNet(FEATURES, HIDDEN, CLASSES, weight_init_std=0.3, backend=backend,
                             dtype=dtype, seed=5)


def _host_params(net):
    return {key: bp_xp.to_numpy(value).copy() for key, value in net.params.items()}


def test_a_short_run_lowers_the_loss_and_keeps_everything_on_the_device(xb, dtype, rng):
    x, t, xt, tt = _dataset(rng)
    data = [xb.asarray(x, dtype), xb.asarray(t, "int64"), xb.asarray(xt, dtype),
            xb.asarray(tt, "int64")]
    net = _net(xb.backend, dtype)
    # Evaluating 40 samples, the batch size, spares JAX compiling every op for two more shapes.
    trainer = Trainer(net, *data, epochs=3, batch_size=40, optimizer="sgd",
                      optimizer_params={"lr": 1.0}, seed=0, evaluate_sample_num=40,
                      progress=False)
    history = trainer.train()

    per_epoch = trainer.iters_per_epoch
    assert per_epoch == N_TRAIN // 40
    assert len(history["loss"]) == 3 * per_epoch
    assert history["epoch"] == [1.0, 2.0, 3.0]
    assert history["iteration"] == [per_epoch * k for k in (1, 2, 3)]
    first, last = np.mean(history["loss"][:per_epoch]), np.mean(history["loss"][-per_epoch:])
    assert last < 0.6 * first, f"loss went from {first:.3f} to {last:.3f}"
    assert history["test_acc"][-1] > 0.7  # chance is 1/3
    assert history["train_loss"][0] == pytest.approx(first, rel=1e-6)
    for key in net.params:
        xb.assert_on_backend(net.params[key], dtype)
    xb.assert_on_backend(trainer.x_train, dtype)
    for array, host in zip(data, (x, t, xt, tt)):  # the caller's data is untouched
        np.testing.assert_array_equal(xb.to_numpy(array), host.astype(xb.to_numpy(array).dtype))


def test_history_holds_plain_python_numbers(rng):
    x, t, xt, tt = _dataset(rng)
    history = Trainer(_net("numpy", "float32"), x, t, xt, tt, iters=25, batch_size=20,
                      seed=0, progress=False).train()
    for key in ("loss", "epoch", "train_loss", "train_acc", "test_acc", "time"):
        assert history[key] and all(type(v) is float for v in history[key]), key
    assert all(type(v) is int for v in history["iteration"])
    assert history["iteration"] == [10, 20, 25]  # the last step is always evaluated
    assert history["epoch"] == [1.0, 2.0, 2.5]
    assert len(history["loss"]) == 25


def test_evaluate_sample_num_takes_the_first_samples(rng):
    x, t, xt, tt = _dataset(rng)
    net = _net("numpy", "float64")
    trainer = Trainer(net, x, t, xt, tt, iters=7, batch_size=20, evaluate_sample_num=15,
                      progress=False)
    trainer.train()
    record = trainer.evaluate()
    assert record["train_acc"] == pytest.approx(float(net.accuracy(x[:15], t[:15])), abs=1e-12)
    assert record["test_acc"] == pytest.approx(float(net.accuracy(xt[:15], tt[:15])), abs=1e-12)
    assert math.isnan(record["train_loss"])  # no step since the last evaluation
    assert record["iteration"] == 7 and len(trainer.history["train_acc"]) == 2


def _reference_losses(x, t, params, *, epochs, batch_size, lr, seed):
    """The documented minibatch order and plain SGD, in float64 NumPy."""
    order_rng = np.random.default_rng(seed)
    per_epoch = len(x) // batch_size
    losses = []
    for _ in range(epochs):
        batches = order_rng.permutation(len(x))[:per_epoch * batch_size].reshape(per_epoch, -1)
        for idx in batches:
            _, loss, grads = ref.two_layer_forward_backward(x[idx], t[idx], **params)
            losses.append(loss)
            params = {k: params[k] - lr * grads[k] for k in params}
    return np.array(losses)


def test_same_seed_gives_the_books_loss_curve_on_every_backend(xb, rng):
    if not xb.case.float64:
        pytest.skip(f"{xb.case.id} has no float64; the curve is compared to 1e-10 in float64")
    x, t, xt, tt = _dataset(rng)
    net = _net(xb.backend, "float64")
    expected = _reference_losses(x, t, _host_params(net), epochs=2, batch_size=40, lr=0.3,
                                 seed=123)
    history = Trainer(net, x, t, xt, tt, epochs=2, batch_size=40, optimizer_params={"lr": 0.3},
                      seed=123, evaluate_sample_num=40, progress=False).train()
    np.testing.assert_allclose(history["loss"], expected, rtol=1e-10, atol=1e-12)
    assert expected[-1] < expected[0]  # the reference itself learned something


def test_a_train_step_computes_nothing_on_dask(rng):
    dask = pytest.importorskip("dask")
    from dask.callbacks import Callback

    x, t, xt, tt = _dataset(rng)
    net = _net("dask", "float64")
    trainer = Trainer(net, x, t, xt, tt, epochs=2, batch_size=50, optimizer="momentum",
                      optimizer_params={"lr": 0.1}, seed=0, progress=False)
    started = []

    class CountComputes(Callback):
        def _start(self, dsk):
            started.append(len(dsk))

    with CountComputes():
        for _ in range(trainer.iters_per_epoch + 1):  # across an epoch boundary
            trainer.train_step()
        assert started == [], f"{len(started)} computes inside train_step"
        trainer.evaluate()
    assert started, "the callback saw no compute at all, so it counted nothing"
    # evaluate() persisted the parameters and the optimizer's velocities: their graphs no
    # longer hold the steps, so the next epoch does not recompute them.
    velocities = trainer.optimizer.state_dict()["state"]["v"]
    for array in (*net.params.values(), *velocities.values()):
        assert isinstance(array, dask.array.Array)
        assert len(array.__dask_graph__()) == array.npartitions
    assert len(trainer.history["loss"]) == trainer.iters_per_epoch + 1


def _bad(rng, change):
    x, t, xt, tt = _dataset(rng)
    kwargs = {"epochs": 1, "batch_size": 20}
    data = {"x_train": x, "t_train": t, "x_test": xt, "t_test": tt}
    change(data, kwargs)
    return data, kwargs


BAD_INPUTS = {
    "x_features": (lambda d, k: d.update(x_train=d["x_train"][:, :5]),
                   DatasetError, r"train data: x has shape \(200, 5\).*expects 20"),
    "x_1d": (lambda d, k: d.update(x_train=d["x_train"][:, 0]),
             DatasetError, "at least 2 dimensions"),
    "n_mismatch": (lambda d, k: d.update(t_train=d["t_train"][:-1]),
                   DatasetError, "x has 200 samples but t has 199"),
    "label_out_of_range": (lambda d, k: d.update(t_test=np.full(N_TEST, CLASSES)),
                           DatasetError, r"test data: t: label 3 at index 0 is out of range 0..2"),
    "nan": (lambda d, k: d.update(x_train=np.where(np.arange(N_TRAIN)[:, None] == 7, np.nan,
                                                   d["x_train"])),
            DatasetError, "NaN.*first in row 7"),
    "batch_zero": (lambda d, k: k.update(batch_size=0), ValueError,
                   "batch_size must be an integer >= 1, got 0"),
    "batch_too_big": (lambda d, k: k.update(batch_size=201), ValueError,
                      r"between 1 and the number of training samples \(200\), got 201"),
    "iters_negative": (lambda d, k: k.update(epochs=None, iters=-3), ValueError,
                       "iters must be an integer >= 1, got -3"),
    "progress_string": (lambda d, k: k.update(progress="yes"), TypeError, "progress must be"),
    "batch_float": (lambda d, k: k.update(batch_size=20.0), TypeError, "batch_size must be an int"),
    "epochs_zero": (lambda d, k: k.update(epochs=0), ValueError, "epochs must be an integer >= 1"),
    "epochs_and_iters": (lambda d, k: k.update(iters=5), ValueError, "epochs or iters, not both"),
    "optimizer_name": (lambda d, k: k.update(optimizer="adamw"), ValueError, "unknown optimizer"),
    "optimizer_object": (lambda d, k: k.update(optimizer=object()), TypeError, "update"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_and_changes_nothing(case, rng):
    change, error, match = BAD_INPUTS[case]
    data, kwargs = _bad(rng, change)
    copies = {k: v.copy() for k, v in data.items()}
    net = _net("numpy", "float32")
    before = _host_params(net)
    with pytest.raises(error, match=match):
        Trainer(net, **data, **kwargs)
    for key, value in _host_params(net).items():
        np.testing.assert_array_equal(value, before[key])
    for key, value in data.items():
        np.testing.assert_array_equal(value, copies[key])


def test_data_on_another_backend_is_moved_to_the_networks(rng):
    strict = bp_xp.resolve_backend("array_api_strict:device1")
    x, t, xt, tt = _dataset(rng)
    net = _net("numpy", "float32")
    trainer = Trainer(net, strict.asarray(x), strict.asarray(t), strict.asarray(xt),
                      strict.asarray(tt), iters=3, batch_size=20, progress=False)
    assert isinstance(trainer.x_train, np.ndarray) and trainer.x_train.dtype == np.float32
    trainer.train()
    assert isinstance(net.params["W1"], np.ndarray)


def test_the_plot_is_a_png_drawn_by_agg(tmp_path, rng):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    x, t, xt, tt = _dataset(rng)
    history = Trainer(_net("numpy", "float32"), x, t, xt, tt, epochs=2, batch_size=20,
                      progress=False).train()
    path = tmp_path / "curves.png"
    figure = plot(history, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert isinstance(figure.canvas, FigureCanvasAgg)
    with pytest.raises(KeyError, match="test_acc"):
        plot({"loss": [1.0], "epoch": [1.0], "train_acc": [0.5]}, tmp_path / "bad.png")


def test_progress_bar_only_on_a_terminal_and_verbose_lines(capsys, rng):
    x, t, xt, tt = _dataset(rng)

    def run(**kwargs):
        Trainer(_net("numpy", "float32"), x, t, xt, tt, epochs=2, batch_size=20,
                **kwargs).train()
        return capsys.readouterr()

    quiet = run()  # pytest's captured stderr is not a terminal
    assert quiet.err == "" and quiet.out == ""
    forced = run(progress=True)
    assert "20/20" in forced.err
    verbose = run(progress=False, verbose=True)
    lines = verbose.out.splitlines()
    assert len(lines) == 2 and all("train acc" in line and "test acc" in line for line in lines)
    assert verbose.err == ""


def test_seconds_per_epoch_scales_partial_intervals():
    history = {"iteration": [10, 20, 25], "time": [3.0, 2.0, 0.5]}
    assert seconds_per_epoch(history, 10) == 2.0  # medians of 3.0, 2.0 and 0.5 * 2
    with pytest.raises(ValueError, match="no evaluation"):
        seconds_per_epoch({"iteration": [], "time": []}, 10)
