"""Data parallelism on a real Dask cluster: a LocalCluster of two worker processes."""

import os
import time

import numpy as np
import pytest

import bp_xp

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("dask.distributed")
da = pytest.importorskip("dask.array")

from bp_xp.distributed import evaluate, materialize, shard, train_step  # noqa: E402
from bp_xp.optim import SGD  # noqa: E402

WORKER_MEMORY = 256 * 2**20


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, memory_limit=WORKER_MEMORY,
        dashboard_address=None, silence_logs=40,
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
            # after materialize the parameter is one persisted task, not a growing graph
            assert len(dnet.params[key].__dask_graph__()) == 1
            np.testing.assert_allclose(bp_xp.to_numpy(dnet.params[key]), net.params[key],
                                       rtol=1e-12, atol=1e-15)


def test_optimizer_state_is_persisted_too(client):
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


def test_a_worker_killed_mid_evaluation_is_survived(client):
    x, t = _big_lazy_dataset(32_768 * 2)
    net = bp_xp.TwoLayerNet(784, 32, 10, weight_init_std=0.05, dtype="float64", seed=4).to("dask")
    expected = evaluate(net, x, t)
    future = client.compute(net.accuracy(x, t))
    victim = next(iter(client.scheduler_info()["workers"]))
    deadline = time.monotonic() + 30
    while not client.processing().get(victim) and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        client.run(os._exit, 1, workers=[victim])
    except Exception:  # the worker dies before answering; that is the point
        pass
    assert float(future.result(timeout=120)) == pytest.approx(expected, abs=1e-12)
    client.wait_for_workers(2, timeout=60)
    # the nanny restarted the killed worker under a new address: it really died
    assert victim not in client.scheduler_info()["workers"]


def test_shard_arguments_are_checked():
    with pytest.raises(ValueError, match="needs rows_per_chunk or chunks"):
        shard(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="chunks must be >= 1, got 0"):
        shard(np.zeros((4, 2)), chunks=0)
    with pytest.raises(TypeError, match="expects Dask arrays"):
        evaluate(bp_xp.TwoLayerNet(2, 2, 2), np.zeros((1, 2)), np.zeros(1, dtype=int))


def test_shard_copies_values_into_row_chunks(client):
    host = np.arange(30.0).reshape(10, 3)
    sharded = shard(host, rows_per_chunk=4, dtype="float32")
    assert sharded.chunks == ((4, 4, 2), (3,))
    host[0, 0] = -1.0  # the shards are copies
    np.testing.assert_array_equal(sharded.compute(), np.arange(30.0, dtype=np.float32).reshape(10, 3))
