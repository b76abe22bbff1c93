"""Checkpoints (format 3, safetensors): bit-exact round trips across backends, networks and
optimizers, files other tools open, atomic writes, clear errors."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
from checkpoint_helpers import small_trained_net
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bp_xp
from bp_xp import BackendUnavailableError, MultiLayerNet, Sequential, SimpleConvNet, TwoLayerNet
from bp_xp.checkpoint import METADATA_KEY, CheckpointError, load, read_metadata, save, tensor_names
from bp_xp.distributed import materialize
from bp_xp.layers import Affine, Relu
from bp_xp.optim import OPTIMIZERS, SGD, Adam, Momentum

# --------------------------------------------------------------------------------------
# A user's layers: a '/' in a parameter's name, a state array, any dtype
# --------------------------------------------------------------------------------------


class Gain(bp_xp.Layer):
    """``y = x * g`` per feature, with a call counter in ``state``: a layer of the user's own."""

    def __init__(self, gain, calls):
        self.params["per/feature"] = gain
        self.state["calls"] = calls

    @classmethod
    def from_config(cls, config, params, state):
        return cls(params["per/feature"], state["calls"])

    def forward(self, x):
        self.x = x
        self.state["calls"] = self.state["calls"] + 1
        return x * self.params["per/feature"]

    def backward(self, dout):
        xp = bp_xp.namespace_of(dout)
        self.grads["per/feature"] = xp.sum(dout * self.x, axis=0)
        return dout * self.params["per/feature"]


class Holder(bp_xp.Layer):
    """Holds whatever arrays it is given, under whatever names: for the property test."""

    def __init__(self, params=None, state=None):
        self.params.update(params or {})
        self.state.update(state or {})

    @classmethod
    def from_config(cls, config, params, state):
        return cls(params, state)

    def forward(self, x):
        return x

    def backward(self, dout):
        return dout


def _user_net(backend, dtype, seed):
    rng = np.random.default_rng(seed)
    target = bp_xp.resolve_backend(backend)

    def put(host):
        return target.asarray(host, dtype=dtype)

    return Sequential({
        "first": Affine(put(rng.standard_normal((6, 5))), put(np.zeros(5))),
        "my/gain": Gain(put(1 + 0.1 * rng.standard_normal(5)), put(np.zeros(3))),
        "act": Relu(),
        "last": Affine(put(rng.standard_normal((5, 3))), put(np.zeros(3))),
    }, weight_decay_lambda=0.01)


NETWORKS = {
    "two_layer": (lambda backend, dtype, seed: TwoLayerNet(6, 5, 3, weight_init_std=0.5,
                                                            backend=backend, dtype=dtype, seed=seed),
                  (8, 6)),
    "multi_bn_dropout": (lambda backend, dtype, seed: MultiLayerNet(
        6, [5, 4], 3, activation="sigmoid", weight_init_std="xavier", weight_decay_lambda=0.1,
        use_dropout=True, dropout_ratio=0.3, use_batchnorm=True, backend=backend, dtype=dtype,
        seed=seed), (8, 6)),
    "convnet": (lambda backend, dtype, seed: SimpleConvNet(
        (1, 6, 6), {"filter_num": 2, "filter_size": 3, "stride": 1, "pad": 0}, 5, 3,
        weight_init_std=0.3, backend=backend, dtype=dtype, seed=seed), (8, 1, 6, 6)),
    "user_layer": (_user_net, (8, 6)),
}

HYPERPARAMETERS = {"sgd": {"lr": 0.1}, "momentum": {"lr": 0.1, "momentum": 0.7},
                   "nesterov": {"lr": 0.1, "momentum": 0.8}, "adagrad": {"lr": 0.1},
                   "rmsprop": {"lr": 0.05, "decay_rate": 0.9}, "adam": {"lr": 0.05, "beta1": 0.8}}


def _optimizer(name):
    return OPTIMIZERS[name](**HYPERPARAMETERS.get(name, {}))


def _batch(xb, dtype, rng, shape):
    return xb.asarray(rng.standard_normal(shape), dtype), xb.asarray(rng.integers(0, 3, size=8),
                                                                    "int64")


def _host_state(optimizer):
    return {slot: {k: bp_xp.to_numpy(a).copy() for k, a in arrays.items()}
            for slot, arrays in optimizer.state_dict()["state"].items()}


def _host_arrays(net):
    return {f"{i}/{what}/{k}": bp_xp.to_numpy(v).copy()
            for i, layer in enumerate([*net.layers.values(), net.last_layer])
            for what in ("params", "state") for k, v in getattr(layer, what).items()}


def _assert_same_bits(actual, expected):
    actual = bp_xp.to_numpy(actual)
    assert actual.dtype == expected.dtype
    np.testing.assert_array_equal(actual, expected)


# --------------------------------------------------------------------------------------
# Round trips: every backend x every network x every optimizer, resuming bit for bit
# --------------------------------------------------------------------------------------

SLOW_OPTIMIZERS = [pytest.param(name, marks=[] if name == "adam" else [pytest.mark.slow])
                   for name in OPTIMIZERS]


@pytest.mark.parametrize("optimizer_name", SLOW_OPTIMIZERS)
@pytest.mark.parametrize("kind", list(NETWORKS))
def test_round_trip_resumes_training_bit_for_bit(xb, rng, tmp_path, kind, optimizer_name):
    _check_round_trip(xb, "float32", rng, tmp_path, kind, optimizer_name)


def test_round_trip_in_both_dtypes(xb, dtype, rng, tmp_path):
    _check_round_trip(xb, dtype, rng, tmp_path, "two_layer", "momentum")


def test_every_optimizer_and_network_round_trips_on_numpy(rng, tmp_path):
    class NumpyRow:  # the fast lane's row of the full product above
        backend = bp_xp.resolve_backend("numpy")
        asarray = staticmethod(lambda x, dtype: np.asarray(x, dtype=dtype))
        to_numpy = staticmethod(bp_xp.to_numpy)

        @staticmethod
        def assert_on_backend(array, dtype):
            assert isinstance(array, np.ndarray) and array.dtype == np.dtype(dtype)

    for kind in NETWORKS:
        for name in OPTIMIZERS:
            _check_round_trip(NumpyRow, "float64", rng, tmp_path, kind, name)


def _check_round_trip(xb, dtype, rng, tmp_path, kind, optimizer_name):
    make_net, shape = NETWORKS[kind]
    net, optimizer = make_net(xb.backend, dtype, 4), _optimizer(optimizer_name)
    x, t = _batch(xb, dtype, rng, shape)
    for _ in range(2):
        optimizer.update(net.params, net.gradient(x, t))
    materialize(net, optimizer)  # lazy rows: compute the steps once, not once per array read
    arrays_before = dict(net.params)
    arrays = _host_arrays(net)
    state = _host_state(optimizer)
    path = tmp_path / f"{kind}.safetensors"
    save(path, net, optimizer, metadata={"epoch": 2, "note": "test"})

    # Saving neither moved nor changed the model.
    assert net.backend == xb.backend
    for key in net.params:
        assert net.params[key] is arrays_before[key]
    for key, value in _host_arrays(net).items():
        _assert_same_bits(value, arrays[key])

    host_net, host_optimizer = load(path)  # default: NumPy on the host
    assert type(host_net) is type(net) and host_net.backend.name == "numpy"
    assert list(host_net.layers) == list(net.layers) and list(host_net.params) == list(net.params)
    for key, value in _host_arrays(host_net).items():
        _assert_same_bits(value, arrays[key])
    assert type(host_optimizer) is type(optimizer)
    assert host_optimizer.hyperparameters == optimizer.hyperparameters
    assert host_optimizer.step_count == optimizer.step_count == 2
    for slot in state:
        for key in state[slot]:
            _assert_same_bits(host_optimizer.state_dict()["state"][slot][key], state[slot][key])

    # ...and back onto the case's backend, from a file the host wrote.
    save(tmp_path / "host.safetensors", host_net, host_optimizer)
    net2, optimizer2 = load(tmp_path / "host.safetensors", backend=xb.backend)
    for key in net2.params:
        xb.assert_on_backend(net2.params[key], dtype)
    for key, value in _host_arrays(net2).items():
        _assert_same_bits(value, arrays[key])
    for slot, by_key in optimizer2.state_dict()["state"].items():
        for key, array in by_key.items():
            xb.assert_on_backend(array, dtype)
            _assert_same_bits(array, state[slot][key])
    assert net2.weight_decay_lambda == net.weight_decay_lambda
    assert repr(net2) == repr(net)

    # Resuming from the checkpoint continues the same trajectory (dropout masks included).
    for _ in range(2):
        optimizer.update(net.params, net.gradient(x, t))
        optimizer2.update(net2.params, net2.gradient(x, t))
    materialize(net, optimizer)
    materialize(net2, optimizer2)
    for key, value in _host_arrays(net2).items():
        _assert_same_bits(value, _host_arrays(net)[key])

    meta = read_metadata(path)
    assert meta["format"] == "bp_xp.checkpoint" and meta["format_version"] == 3
    assert meta["bp_xp_version"] == bp_xp.__version__
    assert meta["backend"] == str(xb.backend) and meta["dtype"] == dtype
    assert meta["network"]["network"] == type(net).network_type
    assert [layer["name"] for layer in meta["network"]["layers"]] == list(net.layers)
    assert meta["optimizer"]["type"] == optimizer.name and meta["optimizer"]["step"] == 2
    assert meta["user"] == {"epoch": 2, "note": "test"}


def test_dtype_is_kept_or_converted_when_asked(xb, rng, tmp_path):
    host = MultiLayerNet(6, [5], 3, weight_init_std=0.5, dtype="float64", seed=1)
    optimizer = Adam()
    optimizer.update(host.params, {k: np.full(v.shape, 0.5) for k, v in host.params.items()})
    save(tmp_path / "wide.safetensors", host, optimizer)
    if not xb.case.float64:
        with pytest.raises(BackendUnavailableError, match="'float64' is not available"):
            load(tmp_path / "wide.safetensors", backend=xb.backend)
    else:
        kept, _ = load(tmp_path / "wide.safetensors", backend=xb.backend)
        xb.assert_on_backend(kept.params["W1"], "float64")
        _assert_same_bits(kept.params["W1"], host.params["W1"])
    narrow, narrow_optimizer = load(tmp_path / "wide.safetensors", backend=xb.backend,
                                    dtype="float32")
    assert narrow.dtype == xb.dtype("float32")
    for key in host.params:
        xb.assert_on_backend(narrow.params[key], "float32")
        _assert_same_bits(narrow.params[key], host.params[key].astype(np.float32))
    for arrays in narrow_optimizer.state_dict()["state"].values():
        for array in arrays.values():
            xb.assert_on_backend(array, "float32")
    x, t = _batch(xb, "float32", rng, (8, 6))
    narrow_optimizer.update(narrow.params, narrow.gradient(x, t))  # state and params agree
    assert read_metadata(tmp_path / "wide.safetensors")["dtype"] == "float64"


@pytest.mark.parametrize("array_dtype", ["int64", "float16", "int8", "uint8", "bool"])
def test_every_dtype_a_network_holds_round_trips(xb, tmp_path, array_dtype):
    host = np.arange(6).reshape(2, 3) % 2 if array_dtype == "bool" else np.arange(6).reshape(2, 3)
    target = xb.backend
    if array_dtype not in target.supported_dtypes() and not (
            array_dtype == "float16" and target.name != "array_api_strict"):
        pytest.skip(f"{target} holds no {array_dtype}")
    if target.name == "array_api_strict" and array_dtype == "float16":
        pytest.skip("array_api_strict has no float16")
    net = Sequential({"keep": Holder({"weights/int": target.spec.from_host(
        host.astype(array_dtype), target.device, target.chunks)})}, backend=target)
    path = tmp_path / "ints.ckpt"  # any suffix: it is kept
    save(path, net)
    assert [p.name for p in tmp_path.iterdir()] == ["ints.ckpt"]
    assert read_metadata(path)["dtype"] == array_dtype
    loaded, _ = load(path, backend=target)
    _assert_same_bits(loaded.params["weights/int1"], host.astype(array_dtype))
    assert safetensors.numpy.load_file(path)["layer/0/params/weights/int"].dtype == array_dtype


def test_a_float16_checkpoint_is_refused_where_the_backend_has_no_float16(tmp_path):
    net = Sequential([Holder({"w": np.ones(3, np.float16)})])
    save(tmp_path / "half.safetensors", net)
    with pytest.raises(BackendUnavailableError, match="'float16' is not available on array_api"):
        load(tmp_path / "half.safetensors", backend="array_api_strict")


NAMES = st.text(min_size=1, max_size=12)
DTYPES = st.sampled_from(["float16", "float32", "float64", "int8", "int32", "int64", "uint8",
                          "uint64", "bool"])


@pytest.mark.slow  # 60 examples, a few seconds: the fixed round trips above stay in the fast lane
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), layer_name=NAMES,
       names=st.lists(NAMES, min_size=1, max_size=4, unique=True),
       state_names=st.lists(NAMES, max_size=2, unique=True))
def test_any_names_and_dtypes_round_trip(tmp_path, data, layer_name, names, state_names):
    dtype = data.draw(DTYPES)
    shapes = st.lists(st.integers(0, 3), max_size=3)
    params = {n: np.asarray(np.arange(np.prod(s, dtype=int)).reshape(s) % 3, dtype=dtype)
              for n, s in ((n, data.draw(shapes)) for n in names)}
    state = {n: np.full(data.draw(shapes), 7, dtype=data.draw(DTYPES)) for n in state_names}
    net = Sequential({layer_name: Holder(params, state), "act": Relu()})
    path = tmp_path / "any.safetensors"
    save(path, net)
    loaded, _ = load(path)
    assert list(loaded.layers) == [layer_name, "act"]
    for name, array in params.items():
        _assert_same_bits(loaded.params[f"{name}1"], array)
    for name, array in state.items():
        _assert_same_bits(loaded.layers[layer_name].state[name], array)
    on_disk = safetensors.numpy.load_file(path)
    assert set(on_disk) == {f"layer/0/params/{n}" for n in names} | {
        f"layer/0/state/{n}" for n in state_names}


# --------------------------------------------------------------------------------------
# Other tools open the file
# --------------------------------------------------------------------------------------


def test_safetensors_numpy_and_torch_open_a_bp_xp_checkpoint(tmp_path, rng):
    torch = pytest.importorskip("torch")
    import safetensors.torch

    net = MultiLayerNet(6, [5], 3, use_batchnorm=True, seed=3)
    optimizer = Adam()
    x, t = rng.standard_normal((8, 6)).astype(np.float32), rng.integers(0, 3, 8)
    optimizer.update(net.params, net.gradient(x, t))
    path = tmp_path / "net.safetensors"
    save(path, net, optimizer, metadata={"epoch": 1})
    names = tensor_names(net, optimizer)
    arrays = safetensors.numpy.load_file(path)
    tensors = safetensors.torch.load_file(path)
    assert set(arrays) == set(tensors) == set(names.values()) | {
        "layer/1/state/running_mean", "layer/1/state/running_var"}
    for key, array in net.params.items():
        np.testing.assert_array_equal(arrays[names[key]], array)
        np.testing.assert_array_equal(tensors[names[key]].numpy(), array)
        assert tensors[names[key]].dtype == torch.float32
    for slot, by_key in optimizer.state_dict()["state"].items():
        for key, array in by_key.items():
            np.testing.assert_array_equal(arrays[names[f"{slot}/{key}"]], array)
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as opened:
        document = json.loads(opened.metadata()[METADATA_KEY])
    assert document == read_metadata(path)


def test_a_file_written_by_safetensors_itself_loads(tmp_path):
    net = TwoLayerNet(4, 3, 2, seed=0)
    save(tmp_path / "net.safetensors", net)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "net.safetensors"), framework="numpy") as opened:
        metadata = opened.metadata()
    arrays = safetensors.numpy.load_file(tmp_path / "net.safetensors")
    arrays["layer/0/params/W"] = arrays["layer/0/params/W"] * 2
    safetensors.numpy.save_file(arrays, tmp_path / "edited.safetensors", metadata=metadata)
    edited, _ = load(tmp_path / "edited.safetensors")
    np.testing.assert_array_equal(edited.params["W1"], net.params["W1"] * 2)


def test_loading_onto_torch_leaves_the_file_untouched(tmp_path, rng):
    pytest.importorskip("torch")
    net = TwoLayerNet(6, 5, 3, seed=0)
    path = tmp_path / "net.safetensors"
    save(path, net)
    before = path.read_bytes()
    loaded, _ = load(path, backend="torch")
    optimizer = SGD(lr=0.5)
    x, t = rng.standard_normal((8, 6)), rng.integers(0, 3, 8)
    optimizer.update(loaded.params, loaded.gradient(bp_xp.resolve_backend("torch").asarray(
        x, dtype="float32"), bp_xp.resolve_backend("torch").asarray(t)))  # in place on torch
    assert path.read_bytes() == before
    assert not np.array_equal(bp_xp.to_numpy(loaded.params["W1"]), net.params["W1"])


# --------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------


def _failing_write(file, arrays, metadata):
    file.write(b"half a safetensors file")
    raise OSError("No space left on device (simulated)")


def test_a_failed_write_leaves_no_file_and_no_temporary(tmp_path, monkeypatch):
    net = TwoLayerNet(4, 3, 2, seed=0)
    monkeypatch.setattr(bp_xp.checkpoint, "_write", _failing_write)
    with pytest.raises(OSError, match="simulated"):
        save(tmp_path / "new.safetensors", net)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_keeps_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    old = TwoLayerNet(4, 3, 2, seed=0)
    path = tmp_path / "net.safetensors"
    save(path, old)
    before = path.read_bytes()
    monkeypatch.setattr(bp_xp.checkpoint, "_write", _failing_write)
    with pytest.raises(OSError, match="simulated"):
        save(path, TwoLayerNet(4, 3, 2, seed=1))
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["net.safetensors"]
    assert path.read_bytes() == before
    loaded, _ = load(path)
    for key in old.params:
        _assert_same_bits(loaded.params[key], old.params[key])


def test_a_failed_rename_removes_the_temporary(tmp_path, monkeypatch):
    def failing_replace(src, dst):
        assert Path(src).parent == tmp_path and Path(src).exists()  # written next to the target
        raise PermissionError("rename refused (simulated)")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(PermissionError, match="simulated"):
        save(tmp_path / "net.safetensors", TwoLayerNet(4, 3, 2, seed=0))
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_what_it_cannot_restore(tmp_path):
    class NotANetwork:
        pass

    net = TwoLayerNet(4, 3, 2, seed=0)
    path = tmp_path / "net.safetensors"
    with pytest.raises(TypeError, match="saves a bp_xp.Sequential .*, not .*NotANetwork"):
        save(path, NotANetwork())
    with pytest.raises(TypeError, match="must be plain JSON data"):
        save(path, net, metadata={"when": object()})
    with pytest.raises(TypeError, match="must be plain JSON data"):
        save(path, net, metadata={"loss": float("nan")})
    with pytest.raises(TypeError, match="optimizers of bp_xp.optim"):
        save(path, net, optimizer=object())
    with pytest.raises(TypeError, match="has dtype complex128, which a checkpoint cannot hold"):
        save(path, Sequential([Holder({"z": np.ones(2, complex)})]))
    stranger = SGD()
    used_elsewhere = Momentum()
    used_elsewhere.update({"W9": np.zeros(2)}, {"W9": np.ones(2)})
    with pytest.raises(ValueError, match="'v' state of 'W9' does not fit the network"):
        save(path, net, used_elsewhere)
    assert list(tmp_path.iterdir()) == []
    save(path, net, stranger)  # an optimizer without state is fine
    assert load(path)[1].step_count == 0


def test_numbers_in_metadata_may_be_numpy_scalars_or_0d_arrays(xb, tmp_path):
    accuracy = xb.asarray(np.array(0.75), "float32")
    save(tmp_path / "net.safetensors", TwoLayerNet(4, 3, 2, seed=0), metadata={
        "acc": accuracy, "loss": np.float32(0.5), "epoch": np.int64(3)})
    user = read_metadata(tmp_path / "net.safetensors")["user"]
    assert user == {"acc": 0.75, "loss": 0.5, "epoch": 3}
    assert type(user["epoch"]) is int
    with pytest.raises(TypeError, match="must be plain JSON data.*ndarray is not JSON"):
        save(tmp_path / "bad.safetensors", TwoLayerNet(4, 3, 2, seed=0), metadata={"v": np.ones(2)})


# --------------------------------------------------------------------------------------
# Bad contents
# --------------------------------------------------------------------------------------


@pytest.fixture
def good_checkpoint(tmp_path):
    path = tmp_path / "good.safetensors"
    save(path, *small_trained_net())
    return path


def rewrite(src, dst, *, meta=None, arrays=None, raw_meta=None):
    """Copy a checkpoint through safetensors itself, editing its metadata or arrays."""
    from safetensors import safe_open

    with safe_open(str(src), framework="numpy") as opened:
        text = opened.metadata()[METADATA_KEY]
    members = safetensors.numpy.load_file(src)
    document = json.loads(text)
    if meta is not None:
        meta(document)
    if arrays is not None:
        arrays(members)  # and the order list follows: this edit is about the arrays
        kept = [name for name in document["tensors"] if name in members]
        document["tensors"] = kept + sorted(set(members) - set(kept))
    text = json.dumps(document) if raw_meta is None else raw_meta
    safetensors.numpy.save_file(members, dst, metadata={METADATA_KEY: text})
    return dst


def test_truncated_and_foreign_files_are_refused(good_checkpoint, tmp_path):
    data = good_checkpoint.read_bytes()
    for size in (0, 5, 10, len(data) // 3, len(data) // 2, len(data) - 30, len(data) - 1):
        cut = tmp_path / f"cut{size}.safetensors"
        cut.write_bytes(data[:size])
        with pytest.raises(CheckpointError, match=f"{cut}: not a readable bp_xp checkpoint"):
            load(cut)
    safetensors.numpy.save_file({"weights": np.ones(3)}, tmp_path / "foreign.safetensors")
    with pytest.raises(CheckpointError, match="foreign.safetensors: not a bp_xp checkpoint"):
        load(tmp_path / "foreign.safetensors")
    np.save(tmp_path / "single.npy", np.ones(3))
    with pytest.raises(CheckpointError, match="single .npy array"):
        load(tmp_path / "single.npy")
    (tmp_path / "notes.txt").write_text("hello, these are my notes")
    with pytest.raises(CheckpointError, match="notes.txt: not a readable"):
        read_metadata(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.safetensors")
    assert issubclass(CheckpointError, ValueError)


def _drop(key, where=None):
    def edit(meta):
        del (meta[where] if where else meta)[key]
    return edit


BAD_CONTENTS = [
    (_drop("network"), None, "the metadata lacks 'network'"),
    (_drop("dtype"), None, "the metadata lacks 'dtype'"),
    (_drop("extra", "network"), None, "the metadata lacks 'network.extra'"),
    (_drop("step", "optimizer"), None, "the metadata lacks 'optimizer.step'"),
    (lambda m: m.update(format="someone.else"), None, "not a bp_xp checkpoint .*'someone.else'"),
    (lambda m: m.update(format_version=4, bp_xp_version="9.0"), None,
     "format version 4 \\(by bp_xp 9.0\\); this bp_xp reads up to version 3"),
    (lambda m: m.update(format_version=2), None, "format_version 2 in a safetensors file"),
    (lambda m: m.update(format_version="1"), None, "format_version must be a positive integer"),
    (lambda m: m.update(dtype=3), None, "'dtype' has the wrong type"),
    (lambda m: m.update(dtype="complex64"), None, "'dtype' is 'complex64', expected one of bool"),
    (lambda m: m.update(dtype="float64"), None, "the parameters are float32, the metadata says float64"),
    (lambda m: m.update(params=["W1", "b1", "W2"]), None, "the metadata lists W1, b1, W2"),
    (lambda m: m.update(params="W1"), None, "'params' has the wrong type"),
    (lambda m: m.update(user=None, network=[]), None, "'network' has the wrong type"),
    (lambda m: m["network"].update(network="ResNet"), None, "unknown network class 'ResNet'"),
    (lambda m: m["network"].update(layers={"a": 1}), None, "'network.layers' has the wrong type"),
    (lambda m: m["network"]["layers"].append(7), None, "'network.layers\\[3\\]' must be an object"),
    (lambda m: m["network"]["layers"][0].update(type="os.system"), None,
     "no layer class 'os.system' is defined in this process"),
    (lambda m: m["network"]["layers"][0].update(config={"W": 1}), None, "cannot rebuild layer 'Affine1'"),
    (lambda m: m["network"]["layers"][1].update(name="Affine1"), None, "the same name"),
    (lambda m: m["network"]["extra"].update(sizes=[4, 3]), None, "cannot rebuild .*TwoLayerNet"),
    (lambda m: m["network"]["extra"].update(sizes="4-3-2"), None, "cannot rebuild .*TwoLayerNet"),
    (lambda m: m["network"].update(weight_decay_lambda=-1), None,
     "weight_decay_lambda' must be a finite number"),
    (lambda m: m["network"].update(weight_decay_lambda=True), None,
     "'network.weight_decay_lambda' has the wrong type"),
    (lambda m: m["optimizer"].update(type="lbfgs"), None, "unknown optimizer 'lbfgs'"),
    (lambda m: m["optimizer"].update(type=["adam"]), None, "'optimizer.type' has the wrong type"),
    (lambda m: m["optimizer"].update(step=-3), None, "step must be an integer >= 0"),
    (lambda m: m["optimizer"].update(step=1.5), None, "'optimizer.step' has the wrong type"),
    (lambda m: m["optimizer"].update(slots=[3]), None, "'optimizer.slots' must be a list of names"),
    (lambda m: m["optimizer"]["hyperparameters"].update(lr="fast"), None,
     "bad optimizer hyperparameters"),
    (lambda m: m["optimizer"]["hyperparameters"].update(lr=1e308, beta1=1e308), None,
     "bad optimizer hyperparameters"),
    (lambda m: m["optimizer"]["hyperparameters"].update(rho=0.5), None,
     "bad optimizer hyperparameters"),
    (lambda m: m.update(generators=[]), None, "'generators' has the wrong type"),
    (_drop("tensors"), None, "the metadata lacks 'tensors'"),
    (lambda m: m["tensors"].pop(), None, "'tensors' does not list the file's tensors"),
    (lambda m: m["tensors"].append(m["tensors"][0]), None, "'tensors' does not list"),
    (lambda m: m["tensors"].__setitem__(0, 5), None, "'tensors' does not list"),
    (lambda m: m.update(generators={"layer/0": {"bit_generator": "PCG64"}}), None,
     "random stream for layer/0, whose layer \\(Affine\\) draws none"),
    (None, lambda a: a.update({"layer/0/params/W": np.zeros((3, 4), np.float32),
                               "layer/0/params/b": np.zeros(4, np.float32)}),
     r"TwoLayerNet\(4, 3, 2\) has weights of shapes \[\(4, 3\), \(3, 2\)\], got \[\(3, 4\)"),
    (None, lambda a: a.update({"layer/0/params/W": np.zeros((4, 3), np.int32)}),
     "Affine needs W and b of one dtype, got int32 and float32"),
    (None, lambda a: a.pop("layer/2/params/b"), "cannot rebuild layer 'Affine2'"),
    (None, lambda a: a.update({"layer/1/params/W": np.zeros(2, np.float32)}),
     "cannot rebuild layer 'Relu1'"),
    (None, lambda a: a.update({"optimizer/m/W2": np.zeros(5, np.float32)}),
     r"optimizer state 'm' of 'W2' has shape \(5,\)"),
    (None, lambda a: a.update({"optimizer/v/W2": np.zeros((3, 2), np.float64)}),
     "optimizer state 'v' of 'W2' is float64, the parameter float32"),
    (None, lambda a: a.pop("optimizer/m/W2"),
     "optimizer state 'm' lacks W2: resuming would silently restart"),
    (None, lambda a: a.update({"optimizer/m/W7": np.zeros(5, np.float32)}),
     "unexpected member 'optimizer/m/W7'"),
    (None, lambda a: a.update({"extra": np.zeros(1)}), "unexpected members extra"),
    (None, lambda a: a.update({"layer/9/params/W": np.zeros(1)}), "unexpected members layer/9"),
    (None, lambda a: a.update({"layer/0/grads/W": np.zeros(1)}), "unexpected members layer/0/grads"),
]


@pytest.mark.parametrize(("meta", "arrays", "message"), BAD_CONTENTS)
def test_bad_contents_name_the_file_and_the_problem(good_checkpoint, tmp_path, meta, arrays,
                                                    message):
    bad = rewrite(good_checkpoint, tmp_path / "bad.safetensors", meta=meta, arrays=arrays)
    with pytest.raises(CheckpointError, match=f"{bad}: .*{message}"):
        load(bad)


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "format 'list'"),
    ('{"format": "bp_xp.checkpoint", "format_version": 3, "format_version": 3}',
     "the key 'format_version' twice"),
    ('{"format": "bp_xp.checkpoint", "format_version": ' + "9" * 5000 + "}", "of 5000 digits"),
    ('{"format": "bp_xp.checkpoint", "format_version": 3, "x": 1e999}', "out of a float's range"),
    ('{"format": "bp_xp.checkpoint", "format_version": 3, "x": NaN}', "not a finite number"),
    ("[" * 100_000 + "]" * 100_000, "is not valid JSON"),
])
def test_metadata_that_is_no_checkpoint_json_is_refused(good_checkpoint, tmp_path, text, message):
    bad = rewrite(good_checkpoint, tmp_path / "bad.safetensors", raw_meta=text)
    for read in (read_metadata, load):
        with pytest.raises(CheckpointError, match=f"{bad}: .*{message}"):
            read(bad)


def test_a_simple_convnet_whose_arrays_contradict_its_configuration_is_refused(tmp_path):
    net = SimpleConvNet((1, 6, 6), {"filter_num": 2, "filter_size": 3, "stride": 1, "pad": 0}, 5, 3)
    save(tmp_path / "conv.safetensors", net)
    bad = rewrite(tmp_path / "conv.safetensors", tmp_path / "bad.safetensors",
                  meta=lambda m: m["network"]["extra"]["shape"].update(hidden_size=7))
    with pytest.raises(CheckpointError, match="bad.safetensors: cannot rebuild .*SimpleConvNet.*"
                                              "has parameters of shapes"):
        load(bad)
    bigger = rewrite(tmp_path / "conv.safetensors", tmp_path / "bigger.safetensors",
                     arrays=lambda a: a.update({"layer/0/params/W": np.zeros((2, 1, 5, 5), "f4")}))
    with pytest.raises(CheckpointError, match="has parameters of shapes"):
        load(bigger)


def test_loading_never_imports_the_backend_it_was_saved_from(good_checkpoint, tmp_path):
    from_gpu = rewrite(good_checkpoint, tmp_path / "from_cupy.safetensors",
                       meta=lambda m: m.update(backend="cupy:0"))
    code = (
        "import sys\n"
        "from bp_xp import checkpoint\n"
        f"net, optimizer = checkpoint.load({str(from_gpu)!r})\n"
        f"assert checkpoint.read_metadata({str(from_gpu)!r})['backend'] == 'cupy:0'\n"
        "print(net.backend, type(optimizer).__name__, optimizer.step_count)\n"
        "print(sorted(m for m in ('cupy', 'torch', 'jax', 'dask') if m in sys.modules))\n"
    )
    root = str(Path(bp_xp.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["numpy Adam 1", "[]"]


def test_the_header_is_plain_safetensors(good_checkpoint):
    data = good_checkpoint.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    assert set(header["__metadata__"]) == {METADATA_KEY}
    assert header["layer/0/params/W"]["dtype"] == "F32"
    assert header["layer/0/params/W"]["shape"] == [4, 3]


def test_a_header_whose_length_reads_like_a_pickle_is_still_safetensors(tmp_path):
    # A 640-byte header starts the file with 80 02 ..., the opening of a protocol-2 pickle.
    for n in range(1, 400):
        net = Sequential([Holder({"w" * n: np.arange(3.0)})])
        path = tmp_path / f"n{n}.safetensors"
        save(path, net)
        head = path.read_bytes()[:2]
        if head[0] == 0x80 and 2 <= head[1] <= 5:
            break
    else:
        pytest.fail("no name length gave a header of 0x280-0x5ff bytes")
    np.testing.assert_array_equal(load(path)[0].params["w" * n + "1"], np.arange(3.0))
    other = Sequential([Holder({"w" * n: np.zeros(3)})])
    other.load_params(path)
    np.testing.assert_array_equal(other.params["w" * n + "1"], np.arange(3.0))


def test_the_checkpoints_page_runs_and_prints_what_it_says(tmp_path, monkeypatch, capsys):
    """docs/checkpoints.md: its python blocks run in order; a print's comment is its output."""
    pytest.importorskip("torch")
    page = (Path(__file__).resolve().parent.parent / "docs" / "checkpoints.md").read_text()
    blocks = [block.split("```", 1)[0] for block in page.split("```python\n")[1:]]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    expected = []
    for block in blocks:
        exec(compile(block, "docs/checkpoints.md", "exec"), namespace)  # noqa: S102 - our page
        lines = block.splitlines()
        for line, after in zip(lines, [*lines[1:], ""]):
            if line.startswith("print(") and "  # " in line:
                expected.append(line.split("  # ", 1)[1])
            elif line.startswith("print(") and after.startswith("# "):
                expected.append(after[2:])
    printed = capsys.readouterr().out.splitlines()
    assert printed == expected


def test_bp_xp_train_save_writes_a_safetensors_file_under_the_given_name(tmp_path, capsys):
    from bp_xp.cli import main

    path = tmp_path / "run.npz"  # a name of the old format: the user's suffix is kept
    assert main(["train", "--iters", "5", "--hidden", "8", "--seed", "1", "--no-progress",
                 "--save", str(path)]) == 0, capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]
    arrays = safetensors.numpy.load_file(path)  # a safetensors file, whatever its name
    net, optimizer = load(path)
    names = tensor_names(net, optimizer)
    for key, array in net.params.items():
        np.testing.assert_array_equal(arrays[names[key]], array)
    assert read_metadata(path)["user"]["iteration"] == 5 and optimizer.step_count == 5
