"""Device proofs without a GPU: the matrix rows that stand in for a GPU's failure modes.

- ``torch_meta`` (``"torch:meta"``): tensors with shapes and dtypes but no values. Any read
  back to the host, or any tensor made on another device and mixed in, fails. Forward,
  backward, every optimizer and ``compile_step`` of every network must run there; what
  reads the host by design (``to_numpy``, saving, evaluation, gradient checks) must say so
  with a clear :class:`bp_xp.BackendError`.
- ``jax_cpu1`` (``"jax:cpu:1"``): JAX's second CPU device (``XLA_FLAGS``, set by the
  ``bp_xp.testing`` plugin). An array made without naming its device lands on device 0
  and is caught: every output, gradient, optimizer state and checkpoint-loaded array must
  stay on device 1, and compiled steps run under ``jax.transfer_guard("disallow")``.

The network tests below are marked ``no_values`` (they read no value), so they run on every
row of the matrix, the meta row included.
"""

from __future__ import annotations

import numpy as np
import pytest

import bp_xp
import bp_xp.checkpoint
import bp_xp.compile
from bp_xp.optim import OPTIMIZERS, get_optimizer

NETWORKS = {
    "two_layer": lambda b: bp_xp.TwoLayerNet(12, 7, 3, backend=b, seed=0),
    "multi_relu_decay": lambda b: bp_xp.MultiLayerNet(12, [6, 5], 3, weight_decay_lambda=0.1,
                                                      backend=b, seed=0),
    "multi_sigmoid": lambda b: bp_xp.MultiLayerNet(12, [6], 3, activation="sigmoid", backend=b,
                                                   seed=0),
    "multi_batchnorm_dropout": lambda b: bp_xp.MultiLayerNet(12, [6], 3, use_batchnorm=True,
                                                             use_dropout=True, backend=b, seed=0),
    "convnet": lambda b: bp_xp.SimpleConvNet(
        input_dim=(1, 6, 6), conv_param={"filter_num": 2, "filter_size": 3, "pad": 0, "stride": 1},
        hidden_size=4, output_size=3, backend=b, seed=0),
}


def _batch(xb, net, n=4):
    rng = np.random.default_rng(0)
    shape = (n, 1, 6, 6) if "Conv1" in net.layers else (n, 12)
    return xb.asarray(rng.standard_normal(shape), "float32"), xb.asarray(np.arange(n) % 3, "int64")


@pytest.mark.slow
@pytest.mark.no_values
@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_every_network_steps_on_every_row_keeping_its_device(xb, network):
    """Forward, backward, every optimizer and compile_step; each result on the row's device.

    Slow: five networks times six optimizers on every row. The meta row also runs in the
    quick lane, below.
    """
    _steps_keeping_the_device(xb, network)


@pytest.mark.parametrize("network", [
    pytest.param(name, marks=[pytest.mark.slow] if name == "convnet" else []) for name in sorted(NETWORKS)])
def test_every_network_steps_on_the_meta_device(network):
    """The quick lane's share of the above: the row that stands in for a GPU on any machine.

    The convolutional net (seconds: six optimizers and compile_step through im2col) runs here
    in the slow lane only; its device handling is in the fast lane on ``strict_device1``
    (tests/test_convnet.py).
    """
    from bp_xp.testing import XB, cases

    case = next(c for c in cases() if not c.values)
    _steps_keeping_the_device(XB(case, _meta()), network)


def _steps_keeping_the_device(xb, network):
    net = NETWORKS[network](xb.backend)
    x, t = _batch(xb, net)
    scores = net.predict(x)
    xb.assert_on_backend(scores, "float32")
    assert tuple(scores.shape) == (4, 3)
    loss, grads = net.loss_and_gradient(x, t)
    xb.assert_on_backend(loss, "float32")
    assert tuple(loss.shape) == ()
    for key, grad in grads.items():
        xb.assert_on_backend(grad, "float32")
        assert tuple(grad.shape) == tuple(net.params[key].shape), key
    for name in sorted(OPTIMIZERS):
        optimizer = get_optimizer(name)
        optimizer.update(net.params, grads)
        for key in net.params:
            xb.assert_on_backend(net.params[key], "float32")
            for slot in optimizer.slots:
                xb.assert_on_backend(optimizer.state[slot][key], "float32")
    optimizer = get_optimizer("adam")
    if bp_xp.compile.untraceable_layers(net) and xb.backend.spec.compile_function is not None:
        with pytest.raises(ValueError, match="eager step"):
            bp_xp.compile_step(net, optimizer)
        return
    step = bp_xp.compile_step(net, optimizer)
    for _ in range(2):
        loss = step(x, t)
        xb.assert_on_backend(loss, "float32")
    for key in net.params:
        xb.assert_on_backend(net.params[key], "float32")
        for slot in optimizer.slots:
            xb.assert_on_backend(optimizer.state[slot][key], "float32")


def _meta():
    pytest.importorskip("torch")
    return bp_xp.resolve_backend("torch:meta")


def test_meta_host_reads_say_the_device_holds_no_values(tmp_path):
    backend = _meta()
    net = bp_xp.TwoLayerNet(12, 7, 3, backend=backend, seed=0)
    x = backend.asarray(np.ones((4, 12)), dtype="float32")
    t = backend.asarray(np.arange(4) % 3, dtype="int64")
    clear = r"'meta' device .* holds no values"
    with pytest.raises(bp_xp.BackendError, match=clear):
        bp_xp.to_numpy(net.params["W1"])
    with pytest.raises(bp_xp.BackendError, match=clear):
        bp_xp.checkpoint.save(tmp_path / "net.npz", net)
    assert not (tmp_path / "net.npz").exists()
    with pytest.raises(bp_xp.BackendError, match=clear):
        bp_xp.gradient_check(net, x, t)
    with pytest.raises(bp_xp.BackendError, match=clear):
        bp_xp.numerical_gradient(lambda w: net.loss(x, t), net.params["b1"])


def test_meta_training_reads_the_host_only_to_evaluate_and_says_so():
    from bp_xp.train import Trainer

    backend = _meta()
    rng = np.random.default_rng(0)
    net = bp_xp.TwoLayerNet(12, 7, 3, backend=backend, seed=0)
    x, t = rng.standard_normal((40, 12)).astype(np.float32), np.arange(40) % 3
    trainer = Trainer(net, x, t, x, t, iters=3, batch_size=8, progress=False)
    trainer.train_step()  # a step reads nothing back
    with pytest.raises(bp_xp.BackendError, match="'meta' device .* holds no values"):
        trainer.train()


# ------------------------------------------------------------------------------------------
# jax:cpu:1
# ------------------------------------------------------------------------------------------


def _jax_second_cpu():
    jax = pytest.importorskip("jax")
    if len(jax.devices("cpu")) < 2:
        pytest.skip(f"JAX has one CPU device here; set XLA_FLAGS={bp_xp.testing.XLA_TWO_CPUS} "
                    "before jax is imported")
    return jax, bp_xp.resolve_backend("jax:cpu:1")


def _on(jax, array, device):
    return array.devices() == {device}


@pytest.mark.slow
def test_jax_second_device_compiled_steps_run_without_a_transfer(tmp_path):
    jax, backend = _jax_second_cpu()
    device = backend.device
    net = bp_xp.TwoLayerNet(12, 7, 3, backend=backend, seed=0)
    optimizer = get_optimizer("adam", lr=0.01)
    rng = np.random.default_rng(0)
    x = backend.asarray(rng.standard_normal((4, 12)), dtype="float32")
    t = backend.asarray(np.arange(4) % 3, dtype="int64")
    step = bp_xp.compile_step(net, optimizer)
    step(x, t)  # the first call creates the optimizer's zeros: JAX makes those eagerly
    with jax.transfer_guard("disallow"):
        for _ in range(3):
            loss = step(x, t)
    assert _on(jax, loss, device)
    # A reloaded optimizer gets a new step counter: made on the network's device, by an
    # explicit copy, not left on the default device for an implicit transfer in each step.
    optimizer.load_state_dict(optimizer.state_dict())
    with jax.transfer_guard("disallow"):
        loss = step(x, t)
    assert _on(jax, loss, device) and optimizer.step_count == 5
    for key in net.params:
        assert _on(jax, net.params[key], device), key
        for slot in optimizer.slots:
            assert _on(jax, optimizer.state[slot][key], device), (slot, key)
    bp_xp.checkpoint.save(tmp_path / "net.npz", net, optimizer)
    loaded, loaded_optimizer = bp_xp.checkpoint.load(tmp_path / "net.npz", backend="jax:cpu:1")
    for key in loaded.params:
        assert _on(jax, loaded.params[key], device), key
        for slot in loaded_optimizer.slots:
            assert _on(jax, loaded_optimizer.state[slot][key], device), (slot, key)


@pytest.mark.slow
def test_jax_input_on_another_device_is_a_backend_mismatch_in_every_step():
    jax, backend = _jax_second_cpu()
    net = bp_xp.TwoLayerNet(12, 7, 3, backend=backend, seed=0)
    x0 = bp_xp.to_device(np.ones((4, 12)), "jax:cpu:0", dtype="float32")
    t = backend.asarray(np.arange(4) % 3, dtype="int64")
    step = bp_xp.compile_step(net, get_optimizer("sgd"))
    before = {k: np.asarray(bp_xp.to_numpy(v)) for k, v in net.params.items()}
    for run in (step, lambda x, t: bp_xp.compile.train_step(net, get_optimizer("sgd"), x, t)):
        with pytest.raises(bp_xp.BackendMismatchError, match="x is on cpu:0"):
            run(x0, t)
    for key, value in before.items():  # refused before anything was computed or donated
        np.testing.assert_array_equal(bp_xp.to_numpy(net.params[key]), value)


@pytest.mark.slow
def test_jax_an_empty_batch_keeps_its_device_through_a_relu():
    """Found by the jax_cpu1 row: JAX put ``where(mask, 0, x)`` of an empty ``x`` on device 0."""
    jax, backend = _jax_second_cpu()
    x = backend.asarray(np.zeros((0, 4)), dtype="float32")
    assert _on(jax, bp_xp.layers.Relu().forward(x), backend.device)
    assert _on(jax, bp_xp.backends.zero_where(x > 0, x), backend.device)
