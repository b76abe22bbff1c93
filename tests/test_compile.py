"""``bp_xp.compile_step``: the compiled step equals the eager one, traces once, reads nothing back.

The reference for the compiled step is the eager step on the same backend
(``loss_and_gradient`` then ``optimizer.update``), which the rest of the suite checks
against NumPy formulas and numerical gradients; both are also compared with the eager
step on NumPy in float64.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest
from test_no_sync import HostReadError, _no_host_reads, _refusing, compute_counter  # noqa: F401

import bp_xp
from bp_xp import MultiLayerNet, TwoLayerNet
from bp_xp.optim import get_optimizer

OPTIMIZERS = ("sgd", "momentum", "adam")
STEPS = 3


def _net(backend, dtype, decay: float = 0.1):
    return MultiLayerNet(8, [6, 5], 3, weight_decay_lambda=decay, weight_init_std=0.5,
                         backend=backend, dtype=dtype, seed=0)


def _batch(rng: np.random.Generator, n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    return rng.standard_normal((n, 8)), rng.integers(0, 3, size=n)


def _install(xb, net, dtype) -> None:
    """Put the network's parameters on the case's arrays (read-only ones for that case)."""
    for key in net.params:
        net.params[key] = xb.asarray(xb.to_numpy(net.params[key]), dtype)


def _host_state(optimizer) -> dict[str, dict[str, np.ndarray]]:
    state = optimizer.state_dict()["state"]
    return {slot: {k: bp_xp.to_numpy(v) for k, v in arrays.items()} for slot, arrays in state.items()}


def _reference(name: str, hx, ht) -> tuple[list[float], dict[str, np.ndarray]]:
    """Losses and final parameters of the eager step on NumPy in float64."""
    net = _net("numpy", "float64")
    optimizer = get_optimizer(name, lr=0.1)
    losses = []
    for _ in range(STEPS):
        loss, grads = net.loss_and_gradient(hx, ht)
        optimizer.update(net.params, grads)
        losses.append(float(loss))
    return losses, {k: np.array(v) for k, v in net.params.items()}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_compiled_step_equals_the_eager_step(xb, dtype, rng, name):
    hx, ht = _batch(rng)
    x, t = xb.asarray(hx, dtype), xb.asarray(ht, "int64")
    compiled_net, eager_net = _net(xb.backend, dtype), _net(xb.backend, dtype)
    _install(xb, compiled_net, dtype)
    _install(xb, eager_net, dtype)
    compiled_opt, eager_opt = get_optimizer(name, lr=0.1), get_optimizer(name, lr=0.1)
    step = bp_xp.compile_step(compiled_net, compiled_opt)
    assert step.kind == xb.backend.spec.compiled_kind

    # float64: the two paths agree to rounding (XLA may fuse the update differently)
    rtol, atol = (1e-12, 1e-14) if dtype == "float64" else (1e-5, 1e-6)
    losses = []
    for _ in range(STEPS):
        loss = step(x, t)
        eager_loss, grads = eager_net.loss_and_gradient(x, t)
        eager_opt.update(eager_net.params, grads)
        xb.assert_on_backend(loss, dtype)
        assert loss.ndim == 0
        xb.assert_close(loss, xb.to_numpy(eager_loss), dtype, rtol=rtol, atol=atol)
        losses.append(float(xb.to_numpy(loss)))
    for key in eager_net.params:
        xb.assert_close(compiled_net.params[key], xb.to_numpy(eager_net.params[key]), dtype,
                        rtol=rtol, atol=atol)
    compiled_state, eager_state = _host_state(compiled_opt), _host_state(eager_opt)
    assert compiled_opt.step_count == eager_opt.step_count == STEPS
    for slot, arrays in eager_state.items():
        for key, expected in arrays.items():
            np.testing.assert_allclose(compiled_state[slot][key], expected, rtol=rtol, atol=atol)

    # and both are the NumPy float64 eager step, at the dtype's tolerance
    ref_losses, ref_params = _reference(name, hx, ht)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-4 if dtype == "float32" else 1e-10)
    for key, expected in ref_params.items():
        xb.assert_close(compiled_net.params[key], expected, dtype)


def _jax_case():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax, bp_xp.resolve_backend("jax:cpu")


def test_the_jax_step_traces_once_per_batch_shape(rng):
    _, backend = _jax_case()
    net = TwoLayerNet(8, 5, 3, weight_init_std=0.5, backend=backend, dtype="float64", seed=0)
    step = bp_xp.compile_step(net, get_optimizer("adam", lr=0.01))
    hx, ht = _batch(rng, 6)
    x, t = backend.asarray(hx), backend.asarray(ht)
    for _ in range(5):  # Adam's step count changes every step: it must not be a static value
        step(x, t)
    assert step.trace_count == 1
    small_x, small_t = backend.asarray(hx[:4]), backend.asarray(ht[:4])
    step(small_x, small_t)  # a shorter last batch: one more trace
    assert step.trace_count == 2
    step(x, t)
    step(small_x, small_t)
    assert step.trace_count == 2


def test_the_counter_sees_a_retrace(rng):
    """The trace count can fail: a new dtype of the labels is a new signature."""
    _, backend = _jax_case()
    net = TwoLayerNet(8, 5, 3, backend=backend, dtype="float64", seed=0)
    step = bp_xp.compile_step(net, get_optimizer("sgd"))
    hx, ht = _batch(rng)
    step(backend.asarray(hx), backend.asarray(ht, dtype="int64"))
    step(backend.asarray(hx), backend.asarray(ht, dtype="int32"))
    assert step.trace_count == 2


def test_the_jax_step_leaves_readable_params_state_and_caches(rng):
    jax, backend = _jax_case()
    net = _net(backend, "float64")
    optimizer = get_optimizer("momentum", lr=0.1)
    step = bp_xp.compile_step(net, optimizer)
    hx, ht = _batch(rng)
    x, t = backend.asarray(hx), backend.asarray(ht)
    before = {k: np.array(v) for k, v in net.params.items()}
    step(x, t)
    # nothing traced is left in the layers; the network still works eagerly
    for layer in [*net.layers.values(), net.last_layer]:
        for value in [*vars(layer).values(), *layer.params.values(), *layer.grads.values()]:
            assert not isinstance(value, jax.core.Tracer), f"{layer!r} kept a tracer"
    grads = net.gradient(x, t)
    assert set(grads) == set(net.params)
    for key in net.params:  # the parameters moved and are concrete, readable arrays
        assert not np.allclose(np.asarray(net.params[key]), before[key]), key
    assert set(optimizer.state_dict()["state"]["v"]) == set(net.params)


def test_donation_deletes_only_what_the_step_replaced(rng):
    _, backend = _jax_case()
    hx, ht = _batch(rng)
    x, t = backend.asarray(hx), backend.asarray(ht)
    for donate in (True, False):
        net = TwoLayerNet(8, 5, 3, backend=backend, dtype="float64", seed=0)
        step = bp_xp.compile_step(net, get_optimizer("sgd"), donate=donate)
        old = net.params["W1"]
        step(x, t)
        assert old.is_deleted() is donate
        assert not x.is_deleted() and not t.is_deleted()  # the caller's batch is never donated
        assert not net.params["W1"].is_deleted()


# Every way a JAX array reaches the host, and waiting for it: on the CPU,
# jax.transfer_guard does not see these (the buffer already is in host memory).
_JAX_READS = ("__float__", "__bool__", "__int__", "__index__", "__complex__", "__array__", "item",
              "tolist", "__repr__", "__str__", "__iter__", "__dlpack__", "_value",
              "block_until_ready", "copy_to_host_async")


@contextlib.contextmanager
def _no_jax_host_reads(jax) -> Iterator[list[str]]:
    array_type = type(jax.numpy.zeros(1))
    attempts: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        for name in _JAX_READS:
            if hasattr(array_type, name):
                refuse = _refusing(name, attempts)
                patch.setattr(array_type, name, property(refuse) if name == "_value" else refuse)
        yield attempts


def test_the_jax_step_reads_nothing_back_to_the_host(rng):
    jax, backend = _jax_case()
    net = _net(backend, "float64")
    step = bp_xp.compile_step(net, get_optimizer("adam", lr=0.01))
    hx, ht = _batch(rng)
    x, t = backend.asarray(hx), backend.asarray(ht)
    step(x, t)  # the first call traces and compiles
    with _no_jax_host_reads(jax) as attempts:
        for _ in range(3):
            loss = step(x, t)
        assert attempts == []
        # the patch can fail: reading the loss, as a logger would, is caught
        with pytest.raises(HostReadError, match="__float__"):
            float(loss)
    assert np.isfinite(float(loss))


def test_the_eager_step_reads_nothing_back_on_strict_device1(rng):
    backend = bp_xp.resolve_backend("array_api_strict:device1")
    net = _net(backend, "float64")
    step = bp_xp.compile_step(net, get_optimizer("adam", lr=0.01))
    hx, ht = _batch(rng)
    x, t = backend.asarray(hx, dtype="float64"), backend.asarray(ht, dtype="int64")
    with _no_host_reads() as attempts:
        for _ in range(2):
            loss = step(x, t)
    assert attempts == []
    assert np.isfinite(float(bp_xp.to_numpy(loss)))


def test_the_eager_step_runs_no_dask_compute(compute_counter, rng):  # noqa: F811
    da = pytest.importorskip("dask.array")
    net = _net("dask", "float64")
    step = bp_xp.compile_step(net, get_optimizer("momentum", lr=0.1))
    hx, ht = _batch(rng)
    x, t = da.from_array(hx, chunks=(3, 8)), da.from_array(ht, chunks=3)
    with compute_counter:
        for _ in range(2):
            loss = step(x, t)
    assert compute_counter.starts == 0
    assert isinstance(loss, da.Array) and loss.ndim == 0


def test_a_host_batch_on_a_jax_network_is_refused(rng):
    _, backend = _jax_case()
    net = TwoLayerNet(8, 5, 3, backend=backend, dtype="float64", seed=0)
    step = bp_xp.compile_step(net, get_optimizer("sgd"))
    hx, ht = _batch(rng)
    with pytest.raises(bp_xp.BackendMismatchError, match="x and t must be jax arrays.*numpy"):
        step(hx, backend.asarray(ht))
    assert step.trace_count == 0


def test_errors_of_the_layers_and_the_optimizer_surface_from_the_trace(rng):
    _, backend = _jax_case()
    net = TwoLayerNet(8, 5, 3, backend=backend, dtype="float64", seed=0)
    hx, ht = _batch(rng)
    step = bp_xp.compile_step(net, get_optimizer("sgd"))
    with pytest.raises(ValueError, match="7 features per sample.*expects 8"):
        step(backend.asarray(hx[:, :7]), backend.asarray(ht))
    other = TwoLayerNet(8, 4, 3, backend=backend, dtype="float64", seed=0)
    optimizer = get_optimizer("momentum")
    bp_xp.compile_step(other, optimizer)(backend.asarray(hx), backend.asarray(ht))
    before = {k: np.array(v) for k, v in net.params.items()}
    with pytest.raises(ValueError, match="'v' state of 'W1' has shape"):
        bp_xp.compile_step(net, optimizer)(backend.asarray(hx), backend.asarray(ht))
    for key, value in before.items():  # a failed step changes nothing
        np.testing.assert_array_equal(np.asarray(net.params[key]), value)


def test_compile_step_refuses_what_is_not_a_network_or_optimizer():
    net = TwoLayerNet(4, 3, 2, seed=0)
    with pytest.raises(TypeError, match="needs a bp_xp network"):
        bp_xp.compile_step(object(), get_optimizer("sgd"))
    with pytest.raises(TypeError, match="needs a bp_xp.optim optimizer"):
        bp_xp.compile_step(net, object())


def _train(backend, compile, rng_seed: int = 3):
    from bp_xp.train import Trainer

    rng = np.random.default_rng(rng_seed)
    x = rng.standard_normal((60, 8))
    t = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    net = TwoLayerNet(8, 6, 3, weight_init_std=0.5, backend=backend, dtype="float64", seed=0)
    trainer = Trainer(net, x, t, x, t, iters=12, batch_size=20, optimizer="adam",
                      optimizer_params={"lr": 0.05}, seed=1, progress=False, compile=compile)
    return trainer, trainer.train()


@pytest.mark.slow
def test_the_trainer_compiles_on_jax_by_default_and_matches_the_eager_run():
    _, backend = _jax_case()
    trainer, history = _train(backend, "auto")
    assert trainer._step_fn.kind == "jax.jit" and trainer._step_fn.trace_count == 1
    eager, eager_history = _train(backend, False)
    assert eager._step_fn.kind == "eager"
    np.testing.assert_allclose(history["loss"], eager_history["loss"], rtol=1e-12)
    reference, reference_history = _train("numpy", "auto")  # NumPy: the eager step either way
    assert reference._step_fn.kind == "eager"
    np.testing.assert_allclose(history["loss"], reference_history["loss"], rtol=1e-10)
    for key in trainer.network.params:
        np.testing.assert_allclose(np.asarray(trainer.network.params[key]),
                                   np.asarray(reference.network.params[key]), rtol=1e-10, atol=1e-12)


def test_the_trainer_refuses_an_unknown_compile_mode():
    with pytest.raises(TypeError, match="compile must be True, False or 'auto', got 'yes'"):
        _train("numpy", "yes")


class _HostWork(bp_xp.Layer):
    """A user layer that says its calls do host work a trace would freeze."""

    traceable = False

    def forward(self, x):
        return x

    def backward(self, dout):
        return dout


@pytest.mark.slow
def test_a_layer_that_says_it_is_not_traceable_is_never_traced(rng):
    pytest.importorskip("jax")
    from bp_xp.optim import SGD
    from bp_xp.train import Trainer

    net = bp_xp.MultiLayerNet(6, [8], 3, backend="jax", seed=0)
    net = bp_xp.Sequential({**net.layers, "Host": _HostWork()}, bp_xp.SoftmaxWithLoss())
    with pytest.raises(ValueError, match="Host do host work in every call"):
        bp_xp.compile_step(net, SGD(lr=0.1))
    x = rng.standard_normal((40, 6)).astype(np.float32)
    t = rng.integers(0, 3, 40)
    trainer = Trainer(net, x, t, x, t, iters=3, batch_size=10, seed=0, progress=False,
                      optimizer=SGD(lr=0.1))  # compile="auto" falls back to the eager step
    trainer.train()
    assert trainer._step().kind == "eager"


# ------------------------------------------------------------------------------------------
# Layers that draw random numbers (Dropout) in a compiled step
# ------------------------------------------------------------------------------------------


def _jax_backend(where: str):
    jax, _ = _jax_case()
    if where.count(":") == 2 and len(jax.devices("cpu")) < 2:
        pytest.skip(f"JAX has one CPU device here; set XLA_FLAGS={bp_xp.testing.XLA_TWO_CPUS}")
    return jax, bp_xp.resolve_backend(where)


def _dropout_net(kind: str, backend, dtype: str = "float64", seed: int = 0):
    if kind == "deep":
        net = bp_xp.DeepConvNet(backend=backend, dtype=dtype, seed=seed)
        for name, layer in net.layers.items():  # different seeds per layer, as a user might
            if isinstance(layer, bp_xp.layers.Dropout):
                layer.__init__(layer.dropout_ratio, seed=seed + len(name))
        return net
    return bp_xp.MultiLayerNet(8, [12, 10], 3, use_dropout=True, dropout_ratio=0.4,
                               weight_init_std=0.5, backend=backend, dtype=dtype, seed=seed)


def _dropout_batch(kind: str, backend, n: int, dtype: str = "float64"):
    rng = np.random.default_rng(7)
    hx = rng.random((n, 1, 28, 28)) if kind == "deep" else rng.standard_normal((n, 8))
    return (backend.asarray(hx, dtype=dtype),
            backend.asarray(rng.integers(0, 10 if kind == "deep" else 3, size=n), dtype="int32"))


def _dropouts(net):
    return [layer for layer in net.layers.values() if isinstance(layer, bp_xp.layers.Dropout)]


@pytest.mark.slow
@pytest.mark.parametrize("where", ["jax:cpu", "jax:cpu:1"])
@pytest.mark.parametrize("kind", ["multilayer", "deep"])
def test_a_compiled_dropout_step_equals_the_eager_step_given_its_masks(kind, where):
    """One float64 step: the compiled masks come from seeds the layers draw from their host
    generators; the eager net, handed the same seeds (``step_seed``), must match it."""
    _, backend = _jax_backend(where)
    compiled_net, eager_net = _dropout_net(kind, backend), _dropout_net(kind, backend)
    x, t = _dropout_batch(kind, backend, 3)
    step = bp_xp.compile_step(compiled_net, get_optimizer("sgd", lr=0.1))
    assert step.kind == "jax.jit"
    loss = step(x, t)
    layers = _dropouts(eager_net)
    assert layers
    for layer in layers:  # the seeds the compiled step drew, from the same generators
        layer.step_seed = backend.asarray([layer.next_seed()], dtype="uint32")[0]
    eager_loss, grads = eager_net.loss_and_gradient(x, t)
    get_optimizer("sgd", lr=0.1).update(eager_net.params, grads)
    kept = [bp_xp.to_numpy(layer.mask).mean() for layer in layers]
    assert all(0.3 < k < 0.9 for k in kept), kept  # real masks, neither all kept nor all dropped
    np.testing.assert_allclose(float(bp_xp.to_numpy(loss)), float(bp_xp.to_numpy(eager_loss)),
                               rtol=1e-10)
    for key in eager_net.params:
        got = compiled_net.params[key]
        assert got.devices() == {backend.device}, key
        np.testing.assert_allclose(bp_xp.to_numpy(got), bp_xp.to_numpy(eager_net.params[key]),
                                   rtol=1e-10, atol=1e-12, err_msg=key)
    # Without the seeds, the eager step draws its masks from NumPy's generator: other masks.
    for layer in layers:
        layer.step_seed = None
    other = _dropout_net(kind, backend)
    other_loss = other.loss_and_gradient(x, t)[0]
    assert abs(float(bp_xp.to_numpy(other_loss)) - float(bp_xp.to_numpy(loss))) > 1e-8


@pytest.mark.slow
def test_a_compiled_dropout_net_trains_and_is_reproducible_from_its_seed():
    _, backend = _jax_backend("jax:cpu")

    def run(seed: int, lr: float, steps: int = 30) -> list[float]:
        net = _dropout_net("multilayer", backend, seed=seed)
        step = bp_xp.compile_step(net, get_optimizer("adam", lr=lr))
        x, t = _dropout_batch("multilayer", backend, 32)
        return [float(bp_xp.to_numpy(step(x, t))) for _ in range(steps)]

    first = run(0, 0.05)
    assert first == run(0, 0.05)  # the same seed: the same masks, the same run, bit for bit
    assert first != run(1, 0.05)
    assert np.mean(first[-5:]) < 0.7 * np.mean(first[:5])  # it learns
    frozen = run(0, 1e-12, steps=4)  # (almost) no update: the losses differ by the masks
    assert len(set(frozen)) == len(frozen), frozen  # a new mask every step


@pytest.mark.slow
def test_a_compiled_deep_convnet_trains():
    _, backend = _jax_backend("jax:cpu")
    net = _dropout_net("deep", backend, dtype="float32")
    step = bp_xp.compile_step(net, get_optimizer("adam", lr=0.003))
    rng = np.random.default_rng(7)
    labels = np.arange(16) % 4
    images = 0.1 * rng.random((16, 1, 28, 28))
    for i, label in enumerate(labels):  # a learnable task: the class lights up a band of rows
        images[i, 0, 7 * label:7 * label + 7] += 1.0
    x, t = backend.asarray(images, dtype="float32"), backend.asarray(labels, dtype="int32")
    losses = [float(bp_xp.to_numpy(step(x, t))) for _ in range(25)]
    assert step.trace_count == 1
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), [round(v, 3) for v in losses]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["multilayer", "deep"])
def test_compiled_dropout_steps_on_a_second_device_make_no_implicit_transfer(kind):
    jax, backend = _jax_backend("jax:cpu:1")
    net = _dropout_net(kind, backend, dtype="float32")
    optimizer = get_optimizer("adam", lr=0.001)
    step = bp_xp.compile_step(net, optimizer)
    x, t = _dropout_batch(kind, backend, 4, dtype="float32")
    step(x, t)  # the first call creates the optimizer's zeros: JAX makes those eagerly
    with jax.transfer_guard("disallow"):  # the seeds travel by one explicit copy per call
        for _ in range(2):
            loss = step(x, t)
    assert loss.devices() == {backend.device}
    for key in net.params:
        assert net.params[key].devices() == {backend.device}, key


def test_random_layers_are_refused_where_a_compiling_backend_has_no_device_generator():
    import dataclasses
    import types

    from bp_xp.backends.jax import SPEC

    net = bp_xp.MultiLayerNet(4, [5], 3, use_dropout=True, seed=0)
    assert bp_xp.compile.untraceable_layers(net) == []  # NumPy: the eager step, nothing traced
    for spec, expected in ((SPEC, []),
                           (dataclasses.replace(SPEC, random_uniform=None), ["Dropout1"])):
        fake = types.SimpleNamespace(layers=net.layers, last_layer=net.last_layer,
                                     backend=types.SimpleNamespace(spec=spec))
        assert bp_xp.compile.untraceable_layers(fake) == expected


def test_a_step_seed_on_a_backend_without_a_device_generator_is_a_clear_error():
    drop = bp_xp.layers.Dropout(0.5, seed=0)
    drop.step_seed = np.uint32(3)
    with pytest.raises(TypeError, match="numpy has no device random generator"):
        drop.forward(np.ones((2, 3)))


# ------------------------------------------------------------------------------------------
# All or nothing, hyperparameters, untraceable layers (issue 18's compiled-step classes)
# ------------------------------------------------------------------------------------------


def _eager_reference(hx, ht, lrs):
    """Parameters after one SGD step per learning rate in ``lrs``: NumPy float64, eager."""
    net = TwoLayerNet(8, 5, 3, weight_init_std=0.5, dtype="float64", seed=0)
    for lr in lrs:
        loss, grads = net.loss_and_gradient(hx, ht)
        get_optimizer("sgd", lr=lr).update(net.params, grads)
    return {k: np.array(v) for k, v in net.params.items()}


def _jax_sgd_step(rng):
    """A float64 TwoLayerNet on JAX, its SGD, their compiled step, a batch on host and device."""
    _, backend = _jax_case()
    net = TwoLayerNet(8, 5, 3, weight_init_std=0.5, backend=backend, dtype="float64", seed=0)
    optimizer = get_optimizer("sgd", lr=0.1)
    hx, ht = _batch(rng)
    return (net, optimizer, bp_xp.compile_step(net, optimizer), (hx, ht),
            (backend.asarray(hx), backend.asarray(ht)))


@pytest.mark.slow
def test_a_learning_rate_restored_by_load_state_dict_reaches_the_compiled_step(rng):
    net, optimizer, step, (hx, ht), (x, t) = _jax_sgd_step(rng)
    step(x, t)
    state = optimizer.state_dict()
    state["hyperparameters"]["lr"] = 0.5
    optimizer.load_state_dict(state)
    step(x, t)
    for key, expected in _eager_reference(hx, ht, [0.1, 0.5]).items():
        np.testing.assert_allclose(bp_xp.to_numpy(net.params[key]), expected, rtol=1e-12,
                                   atol=1e-14, err_msg=key)
    assert step.trace_count == 2  # the new rate is a new constant of the trace


@pytest.mark.slow
def test_a_keyboard_interrupt_while_the_step_is_installed_leaves_no_donated_buffer(
        rng, monkeypatch):
    """The old buffers were donated: the new arrays must be installed whatever arrives."""
    net, optimizer, step, (hx, ht), (x, t) = _jax_sgd_step(rng)
    commit = type(optimizer).commit_step
    interrupts = []

    def interrupted_once(self, state):
        if not interrupts:
            interrupts.append(True)
            raise KeyboardInterrupt  # as if Ctrl-C arrived while the step was being installed
        commit(self, state)

    monkeypatch.setattr(type(optimizer), "commit_step", interrupted_once)
    old = dict(net.params)
    with pytest.raises(KeyboardInterrupt):
        step(x, t)
    assert interrupts and all(old[k].is_deleted() for k in old)  # donated, as designed
    assert not any(net.params[k].is_deleted() for k in net.params)
    assert optimizer.step_count == 1
    for key, expected in _eager_reference(hx, ht, [0.1]).items():
        np.testing.assert_allclose(bp_xp.to_numpy(net.params[key]), expected, rtol=1e-12,
                                   atol=1e-14, err_msg=key)
    step(x, t)  # and training goes on
    assert optimizer.step_count == 2


class _ReadsAValue(bp_xp.Layer):
    """A user layer that branches on an array's value: fine eagerly, untraceable."""

    def forward(self, x):
        self.positive = float(bp_xp.namespace_of(x).max(x)) > 0
        return x if self.positive else -x

    def backward(self, dout):
        return dout if self.positive else -dout


@pytest.mark.slow
def test_an_untraceable_user_layer_gets_a_bp_xp_error_naming_it(rng):
    _, backend = _jax_case()
    net = TwoLayerNet(8, 5, 3, backend=backend, dtype="float64", seed=0)
    layers = dict(net.layers)
    layers["Reads"] = _ReadsAValue()
    net = bp_xp.Sequential(layers, bp_xp.SoftmaxWithLoss())
    hx, ht = _batch(rng)
    x, t = backend.asarray(hx), backend.asarray(ht)
    net.loss_and_gradient(x, t)  # eagerly it runs
    before = {k: bp_xp.to_numpy(v) for k, v in net.params.items()}
    step = bp_xp.compile_step(net, get_optimizer("sgd"))
    with pytest.raises(bp_xp.compile.UntraceableError,
                       match=r"layer 'Reads' \(test_compile\._ReadsAValue\) reads an array's value"):
        step(x, t)
    for key, value in before.items():  # nothing was run, nothing donated
        np.testing.assert_array_equal(bp_xp.to_numpy(net.params[key]), value)
