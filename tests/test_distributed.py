"""Data parallelism on a real Dask cluster: a LocalCluster of two worker processes."""

import os
import threading
import time

import numpy as np
import pytest

import bp_xp

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("dask.distributed")
da = pytest.importorskip("dask.array")

from bp_xp.distributed import (  # noqa: E402
    StepLostError,
    evaluate,
    materialize,
    shard,
    train_step,
)
from bp_xp.optim import SGD, Momentum  # noqa: E402

#: Every test here starts a cluster of worker processes: seconds each.
pytestmark = pytest.mark.slow

WORKER_MEMORY = 256 * 2**20


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, memory_limit=WORKER_MEMORY,
        # ":0": any free port, so that two test runs side by side do not collide on 8787
        dashboard_address=":0", silence_logs=40,
    )
    client = distributed.Client(cluster, timeout="60s")
    try:
        yield client
    finally:
        client.close(timeout=30)
        cluster.close(timeout=30)



def _data(n=400, features=20, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, features)), rng.integers(0, classes, size=n)


def test_gradients_on_four_chunks_equal_the_numpy_ones(client):
    x, t = _data()
    net = bp_xp.TwoLayerNet(20, 16, 4, weight_init_std=0.3, dtype="float64", seed=1)
    expected = net.gradient(x, t)
    dnet = net.to("dask")
    dx, dt = shard(x, chunks=4), shard(t, chunks=4)
    assert dx.numblocks[0] == 4
    got = dask.compute(dnet.gradient(dx, dt))[0]
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-12, atol=1e-15)


def test_training_steps_match_numpy_step_for_step(client):
    x, t = _data()
    net = bp_xp.TwoLayerNet(20, 16, 4, weight_init_std=0.3, dtype="float64", seed=2)
    dnet = net.to("dask")
    dx, dt = shard(x, chunks=4), shard(t, chunks=4)
    opt, dopt = SGD(0.5), SGD(0.5)
    for _ in range(5):
        loss = float(net.loss(x, t))
        opt.update(net.params, net.gradient(x, t))
        dloss = train_step(dnet, dopt, dx, dt)
        assert float(dloss) == pytest.approx(loss, rel=1e-12)
        for key in net.params:
            # after materialize the parameter is one task holding its values, not a growing graph
            assert len(dnet.params[key].__dask_graph__()) == 1
            np.testing.assert_allclose(bp_xp.to_numpy(dnet.params[key]), net.params[key],
                                       rtol=1e-12, atol=1e-15)


def test_optimizer_state_is_materialized_too(client):
    from bp_xp.optim import Adam

    x, t = _data()
    dnet = bp_xp.TwoLayerNet(20, 16, 4, weight_init_std=0.3, dtype="float64", seed=2).to("dask")
    opt = Adam(lr=0.01)
    dx, dt = shard(x, chunks=4), shard(t, chunks=4)
    for _ in range(3):
        train_step(dnet, opt, dx, dt)
    for slot in opt.state_dict()["state"].values():
        for array in slot.values():
            assert len(array.__dask_graph__()) == 1


def test_the_scheduler_forgets_each_step(client):
    """Parameters held on the client carry no history: the scheduler's task count stays
    that of the shards however many steps run (a persisted step would keep its ancestry)."""
    x, t = _data()
    dnet = bp_xp.TwoLayerNet(20, 16, 4, weight_init_std=0.3, dtype="float64", seed=2).to("dask")
    dx, dt = shard(x, chunks=4), shard(t, chunks=4)
    opt = Momentum(0.1)

    def tasks_after(steps):
        for _ in range(steps):
            train_step(dnet, opt, dx, dt)
        deadline = time.monotonic() + 10
        while True:  # releases reach the scheduler asynchronously
            count = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
            if count <= 8 or time.monotonic() > deadline:
                return count
            time.sleep(0.05)

    assert tasks_after(2) == tasks_after(8) == 8  # the 4 + 4 chunks of dx and dt


def test_materialize_leaves_non_dask_parameters_alone():
    net = bp_xp.TwoLayerNet(3, 2, 2, seed=0)
    W1 = net.params["W1"]
    materialize(net)
    assert net.params["W1"] is W1


def _big_lazy_dataset(rows, features=784, seed=7):
    rng = da.random.default_rng(seed)
    x = rng.standard_normal((rows, features), chunks=(8192, features))
    t = rng.integers(0, 10, size=rows, chunks=8192)
    return x, t


def test_evaluation_over_data_larger_than_a_worker_memory(client):
    rows = 48_000  # 48k x 784 float64 = 301 MB > 256 MiB per worker
    x, t = _big_lazy_dataset(rows)
    assert x.nbytes > WORKER_MEMORY
    net = bp_xp.TwoLayerNet(784, 32, 10, weight_init_std=0.05, dtype="float64", seed=3).to("dask")
    accuracy = evaluate(net, x, t)
    # reference: the same chunks, predicted one at a time on the host with NumPy
    host_net = net.to("numpy")
    correct = 0
    for xb, tb in zip(x.to_delayed().ravel(), t.to_delayed().ravel()):
        xh, th = dask.compute(xb, tb, scheduler="sync")
        correct += int((host_net.predict(xh).argmax(axis=1) == th).sum())
    assert accuracy == pytest.approx(correct / rows, abs=1e-12)


def _kill_when_busy(client, victim, timeout=30.0):
    """Start a thread that kills ``victim``'s process as soon as it runs a task."""
    def kill():
        deadline = time.monotonic() + timeout
        while not client.processing().get(victim) and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            client.run(os._exit, 1, workers=[victim])
        except Exception:  # the worker dies before answering; that is the point
            pass

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread



def test_a_worker_killed_mid_evaluation_is_survived(client):
    x, t = _big_lazy_dataset(32_768 * 2)
    net = bp_xp.TwoLayerNet(784, 32, 10, weight_init_std=0.05, dtype="float64", seed=4).to("dask")
    expected = evaluate(net, x, t)
    future = client.compute(net.accuracy(x, t))
    victim = next(iter(client.scheduler_info()["workers"]))
    _kill_when_busy(client, victim).join(timeout=60)
    assert float(future.result(timeout=120)) == pytest.approx(expected, abs=1e-12)
    client.wait_for_workers(2, timeout=60)
    # the nanny restarted the killed worker under a new address: it really died
    assert victim not in client.scheduler_info()["workers"]


def test_shard_arguments_are_checked():
    with pytest.raises(ValueError, match="needs rows_per_chunk or chunks"):
        shard(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="shard: chunks must be an integer >= 1, got 0"):
        shard(np.zeros((4, 2)), chunks=0)
    with pytest.raises(TypeError, match="expects Dask arrays"):
        evaluate(bp_xp.TwoLayerNet(2, 2, 2), np.zeros((1, 2)), np.zeros(1, dtype=int))


def test_shard_copies_values_into_row_chunks(client):
    host = np.arange(30.0).reshape(10, 3)
    sharded = shard(host, rows_per_chunk=4, dtype="float32")
    assert sharded.chunks == ((4, 4, 2), (3,))
    host[0, 0] = -1.0  # the shards are copies
    np.testing.assert_array_equal(sharded.compute(), np.arange(30.0, dtype=np.float32).reshape(10, 3))


# -- a worker dying in the middle of train_step -----------------------------------------

def _slowly(x, seconds=0.5):
    """``x`` behind one slow task per chunk: the step runs long enough to kill a worker in it."""
    # A lambda is shipped to the workers by value (this test module is not importable there).
    return x.map_blocks(lambda block: (time.sleep(seconds), block)[1], dtype=x.dtype)


def _host_state(net, opt):
    """``(params, optimizer state)`` as NumPy arrays, flattened to ``{name: array}``."""
    arrays = {k: bp_xp.to_numpy(v) for k, v in net.params.items()}
    for slot, slot_arrays in opt.state_dict()["state"].items():
        arrays.update({f"{slot}/{k}": bp_xp.to_numpy(v) for k, v in slot_arrays.items()})
    return arrays


def _assert_same_state(got, expected, rtol=None):
    """Equal bit for bit (``rtol=None``), or to ``rtol``."""
    assert got.keys() == expected.keys()
    for key in expected:
        if rtol is None:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
        else:
            np.testing.assert_allclose(got[key], expected[key], rtol=rtol, atol=1e-15, err_msg=key)


def _reference_step(net, opt, x, t):
    """The same step on the host with NumPy (float64): the independent reference."""
    opt.update(net.params, net.gradient(x, t))


def _two_steps_in(seed):
    """Data, a NumPy net and its Dask copy (Momentum each), after two steps of each."""
    x, t = _data()
    host = bp_xp.TwoLayerNet(20, 16, 4, weight_init_std=0.3, dtype="float64", seed=seed)
    dnet = host.to("dask")
    opt, dopt = Momentum(0.2, momentum=0.9), Momentum(0.2, momentum=0.9)
    dx, dt = shard(x, chunks=4), shard(t, chunks=4)
    for _ in range(2):
        _reference_step(host, opt, x, t)
        train_step(dnet, dopt, dx, dt)
    return x, t, host, opt, dnet, dopt, dx, dt


def _settled_client(client):
    client.wait_for_workers(2, timeout=60)
    return list(client.scheduler_info()["workers"])


def test_a_worker_killed_during_train_step_is_survived(client):
    """The chunks (from shard) and parameters (from materialize) can be rebuilt anywhere:
    the step completes on the surviving worker and equals the NumPy step."""
    x, t, host, opt, dnet, dopt, dx, dt = _two_steps_in(seed=5)
    victim = _settled_client(client)[0]
    killer = _kill_when_busy(client, victim)
    _reference_step(host, opt, x, t)
    start = time.monotonic()
    train_step(dnet, dopt, _slowly(dx), dt)
    killer.join(timeout=30)
    assert time.monotonic() - start < 60
    assert victim not in client.scheduler_info()["workers"]  # it really died during the step
    _assert_same_state(_host_state(dnet, dopt), _host_state(host, opt), rtol=1e-12)
    for _ in range(2):  # and training goes on
        _reference_step(host, opt, x, t)
        train_step(dnet, dopt, dx, dt)
    _assert_same_state(_host_state(dnet, dopt), _host_state(host, opt), rtol=1e-12)


def test_a_step_that_lost_its_data_is_undone_saved_and_retried(client, tmp_path):
    """Data that only a dead worker held (scattered, not sharded) cannot be rebuilt: the
    step raises StepLostError, and the parameters and optimizer state are those of before
    it, bit for bit, savable; the step then succeeds with data the cluster can rebuild."""
    from bp_xp.checkpoint import load, save

    x, t, host, opt, dnet, dopt, dx, dt = _two_steps_in(seed=6)
    before = _host_state(dnet, dopt)
    victim = _settled_client(client)[0]
    # the whole batch in one scattered piece, only on the victim; its slow task runs there
    held = client.scatter(x, workers=[victim])
    x_lost = _slowly(da.from_delayed(held, shape=x.shape, dtype=x.dtype))
    killer = _kill_when_busy(client, victim)
    start = time.monotonic()
    with pytest.raises(StepLostError, match="the step was lost .*can be retried"):
        train_step(dnet, dopt, x_lost, dt)
    killer.join(timeout=30)
    assert time.monotonic() - start < 60
    _assert_same_state(_host_state(dnet, dopt), before)
    assert dopt.step_count == 2 and len(before) == 8  # 4 parameters, 4 velocities
    path = tmp_path / "net.npz"
    save(path, dnet, dopt)
    loaded, loaded_opt = load(path, backend="numpy")
    _assert_same_state(_host_state(loaded, loaded_opt), before)
    # retried with the sharded data, on the surviving (and restarted) workers
    _reference_step(host, opt, x, t)
    train_step(dnet, dopt, dx, dt)
    _assert_same_state(_host_state(dnet, dopt), _host_state(host, opt), rtol=1e-12)
