"""Checkpoints: bit-exact round trips across backends, atomic writes, clear errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bp_xp
from bp_xp import BackendUnavailableError, MultiLayerNet, TwoLayerNet
from bp_xp.checkpoint import CheckpointError, load, read_metadata, save
from bp_xp.optim import SGD, Adam, Momentum

KINDS = {
    "two_layer+adam": (lambda **kw: TwoLayerNet(6, 5, 3, weight_init_std=0.5, **kw),
                       lambda: Adam(lr=0.05, beta1=0.8)),
    "multi_layer+momentum": (
        lambda **kw: MultiLayerNet(6, [5, 4], 3, activation="sigmoid", weight_init_std="xavier",
                                   weight_decay_lambda=0.1, **kw),
        lambda: Momentum(lr=0.2, momentum=0.7)),
}


def _batch(xb, dtype, rng):
    hx = rng.standard_normal((8, 6))
    return xb.asarray(hx, dtype), xb.asarray(rng.integers(0, 3, size=8), "int64")


def _trained(xb, dtype, rng, kind, steps=1):
    make_net, make_optimizer = KINDS[kind]
    net, optimizer = make_net(backend=xb.backend, dtype=dtype, seed=4), make_optimizer()
    x, t = _batch(xb, dtype, rng)
    for _ in range(steps):
        optimizer.update(net.params, net.gradient(x, t))
    return net, optimizer, x, t


def _host_state(optimizer):
    return {slot: {k: bp_xp.to_numpy(a).copy() for k, a in arrays.items()}
            for slot, arrays in optimizer.state_dict()["state"].items()}


def _assert_same_bits(actual, expected):
    actual = bp_xp.to_numpy(actual)
    assert actual.dtype == expected.dtype
    np.testing.assert_array_equal(actual, expected)


def test_round_trip_across_backends_is_bit_exact(xb, dtype, rng, tmp_path):
    _check_round_trip(xb, dtype, rng, tmp_path, "two_layer+adam")


def test_round_trip_of_a_deeper_net_with_momentum(xb, rng, tmp_path):
    # float32 only: the dtype handling is the same code as above, and JAX compiles anew per dtype
    _check_round_trip(xb, "float32", rng, tmp_path, "multi_layer+momentum")


def _check_round_trip(xb, dtype, rng, tmp_path, kind):
    net, optimizer, x, t = _trained(xb, dtype, rng, kind)
    arrays_before = dict(net.params)
    params = {k: xb.to_numpy(v).copy() for k, v in net.params.items()}
    state = _host_state(optimizer)
    path = tmp_path / "net.npz"
    save(path, net, optimizer, metadata={"epoch": 2, "note": "test"})

    # Saving neither moved nor changed the model.
    assert net.backend == xb.backend
    for key in net.params:
        assert net.params[key] is arrays_before[key]
        _assert_same_bits(net.params[key], params[key])

    host_net, host_optimizer = load(path)  # default: NumPy on the host
    assert type(host_net) is type(net) and host_net.backend.name == "numpy"
    for key in params:
        assert isinstance(host_net.params[key], np.ndarray)
        _assert_same_bits(host_net.params[key], params[key])
    assert type(host_optimizer) is type(optimizer)
    assert host_optimizer.hyperparameters == optimizer.hyperparameters
    assert host_optimizer.step_count == optimizer.step_count == 1
    assert _host_state(host_optimizer).keys() == state.keys()
    for slot in state:
        for key in state[slot]:
            _assert_same_bits(host_optimizer.state_dict()["state"][slot][key], state[slot][key])

    # ...and back onto the case's backend, from a file the host wrote.
    save(tmp_path / "host.npz", host_net, host_optimizer)
    net2, optimizer2 = load(tmp_path / "host.npz", backend=xb.backend)
    for key in params:
        xb.assert_on_backend(net2.params[key], dtype)
        _assert_same_bits(net2.params[key], params[key])
    for slot, arrays in optimizer2.state_dict()["state"].items():
        for key, array in arrays.items():
            xb.assert_on_backend(array, dtype)
            _assert_same_bits(array, state[slot][key])
    assert net2.weight_decay_lambda == net.weight_decay_lambda

    # Resuming from the checkpoint continues the same trajectory.
    optimizer.update(net.params, net.gradient(x, t))
    optimizer2.update(net2.params, net2.gradient(x, t))
    for key in params:
        _assert_same_bits(net2.params[key], xb.to_numpy(net.params[key]))

    meta = read_metadata(path)
    assert meta["format"] == "bp_xp.checkpoint" and meta["format_version"] == 2
    assert meta["bp_xp_version"] == bp_xp.__version__
    assert meta["backend"] == str(xb.backend) and meta["dtype"] == dtype
    assert meta["network"]["network"] == f"bp_xp.nets.{type(net).__name__}"
    assert [layer["name"] for layer in meta["network"]["layers"]] == list(net.layers)
    assert meta["network"]["extra"]["sizes"] == list(net._sizes)
    assert meta["optimizer"]["type"] == optimizer.name and meta["optimizer"]["step"] == 1
    assert meta["user"] == {"epoch": 2, "note": "test"}


def test_dtype_is_kept_or_converted_when_asked(xb, rng, tmp_path):
    host = MultiLayerNet(6, [5], 3, weight_init_std=0.5, dtype="float64", seed=1)
    optimizer = Adam()
    optimizer.update(host.params, {k: np.full(v.shape, 0.5) for k, v in host.params.items()})
    save(tmp_path / "wide.npz", host, optimizer)
    if not xb.case.float64:
        with pytest.raises(BackendUnavailableError, match="'float64' is not available"):
            load(tmp_path / "wide.npz", backend=xb.backend)
    else:
        kept, _ = load(tmp_path / "wide.npz", backend=xb.backend)
        xb.assert_on_backend(kept.params["W1"], "float64")
        _assert_same_bits(kept.params["W1"], host.params["W1"])
    narrow, narrow_optimizer = load(tmp_path / "wide.npz", backend=xb.backend, dtype="float32")
    assert narrow.dtype == xb.dtype("float32")
    for key in host.params:
        xb.assert_on_backend(narrow.params[key], "float32")
        _assert_same_bits(narrow.params[key], host.params[key].astype(np.float32))
    for arrays in narrow_optimizer.state_dict()["state"].values():
        for array in arrays.values():
            xb.assert_on_backend(array, "float32")
    x, t = _batch(xb, "float32", rng)
    narrow_optimizer.update(narrow.params, narrow.gradient(x, t))  # state and params agree
    assert read_metadata(tmp_path / "wide.npz")["dtype"] == "float64"


# --------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------


def _failing_savez(file, **arrays):
    file.write(b"PK\x03\x04 half a checkpoint")
    raise OSError("No space left on device (simulated)")


def test_a_failed_write_leaves_no_file_and_no_temporary(tmp_path, monkeypatch):
    net = TwoLayerNet(4, 3, 2, seed=0)
    monkeypatch.setattr(np, "savez", _failing_savez)
    with pytest.raises(OSError, match="simulated"):
        save(tmp_path / "new.npz", net)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_keeps_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    old = TwoLayerNet(4, 3, 2, seed=0)
    path = tmp_path / "net.npz"
    save(path, old)
    before = path.read_bytes()
    monkeypatch.setattr(np, "savez", _failing_savez)
    with pytest.raises(OSError, match="simulated"):
        save(path, TwoLayerNet(4, 3, 2, seed=1))
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"]
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
        save(tmp_path / "net.npz", TwoLayerNet(4, 3, 2, seed=0))
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_what_it_cannot_restore(tmp_path):
    class NotANetwork:
        pass

    net = TwoLayerNet(4, 3, 2, seed=0)
    path = tmp_path / "net.npz"
    with pytest.raises(TypeError, match="saves a bp_xp.Sequential .*, not .*NotANetwork"):
        save(path, NotANetwork())
    with pytest.raises(TypeError, match="must be plain JSON data"):
        save(path, net, metadata={"when": object()})
    with pytest.raises(TypeError, match="must be plain JSON data"):
        save(path, net, metadata={"loss": float("nan")})
    with pytest.raises(TypeError, match="optimizers of bp_xp.optim"):
        save(path, net, optimizer=object())
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
    save(tmp_path / "net.npz", TwoLayerNet(4, 3, 2, seed=0), metadata={
        "acc": accuracy, "loss": np.float32(0.5), "epoch": np.int64(3)})
    user = read_metadata(tmp_path / "net.npz")["user"]
    assert user == {"acc": 0.75, "loss": 0.5, "epoch": 3}
    assert type(user["epoch"]) is int
    with pytest.raises(TypeError, match="must be plain JSON data.*ndarray is not JSON"):
        save(tmp_path / "bad.npz", TwoLayerNet(4, 3, 2, seed=0), metadata={"v": np.ones(2)})


# --------------------------------------------------------------------------------------
# Bad files
# --------------------------------------------------------------------------------------


@pytest.fixture
def good_checkpoint(tmp_path):
    net = TwoLayerNet(4, 3, 2, seed=0)
    optimizer = Adam()
    optimizer.update(net.params, {k: np.ones_like(v) for k, v in net.params.items()})
    path = tmp_path / "good.npz"
    save(path, net, optimizer)
    return path


def _rewrite(src, dst, *, meta=None, arrays=None):
    """Copy a checkpoint through plain NumPy, editing its metadata or arrays on the way."""
    with np.load(src, allow_pickle=False) as npz:
        members = {name: npz[name] for name in npz.files}
    document = json.loads(members.pop("metadata.json").tobytes())  # noqa: the test's own file
    if meta is not None:
        meta(document)
    if arrays is not None:
        arrays(members)
    members["metadata.json"] = np.frombuffer(json.dumps(document).encode(), dtype=np.uint8)
    np.savez(dst, **members)
    return dst


def test_truncated_and_foreign_files_are_refused(good_checkpoint, tmp_path):
    data = good_checkpoint.read_bytes()
    for size in (0, 10, len(data) // 3, len(data) // 2, len(data) - 30, len(data) - 1):
        cut = tmp_path / f"cut{size}.npz"
        cut.write_bytes(data[:size])
        with pytest.raises(CheckpointError, match=f"{cut}: not a readable bp_xp checkpoint"):
            load(cut)
    np.savez(tmp_path / "foreign.npz", weights=np.ones(3))
    with pytest.raises(CheckpointError, match="foreign.npz: not a bp_xp checkpoint .*weights"):
        load(tmp_path / "foreign.npz")
    np.save(tmp_path / "single.npy", np.ones(3))
    with pytest.raises(CheckpointError, match="single .npy array"):
        load(tmp_path / "single.npy")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="notes.txt: not a readable"):
        read_metadata(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.npz")
    assert issubclass(CheckpointError, ValueError)


def _drop(key, where=None):
    def edit(meta):
        del (meta[where] if where else meta)[key]
    return edit


@pytest.mark.parametrize(("meta", "arrays", "message"), [
    (_drop("network"), None, "the metadata lacks 'network'"),
    (_drop("dtype"), None, "the metadata lacks 'dtype'"),
    (_drop("extra", "network"), None, "the metadata lacks 'network.extra'"),
    (_drop("step", "optimizer"), None, "the metadata lacks 'optimizer.step'"),
    (lambda m: m.update(format="someone.else"), None, "not a bp_xp checkpoint .*'someone.else'"),
    (lambda m: m.update(format_version=3, bp_xp_version="9.0"), None,
     "format version 3 \\(by bp_xp 9.0\\); this bp_xp reads up to version 2"),
    (lambda m: m.update(format_version="1"), None, "format_version must be a positive integer"),
    (lambda m: m.update(dtype=3), None, "'dtype' has the wrong type"),
    (lambda m: m.update(dtype="int32"), None, "'dtype' is 'int32', expected one of float32, float64"),
    (lambda m: m["network"].update(network="ResNet"), None, "unknown network class 'ResNet'"),
    (lambda m: m["network"]["layers"][0].update(type="os.system"), None,
     "no layer class 'os.system' is defined in this process"),
    (lambda m: m["network"]["extra"].update(sizes=[4, 3]), None, "cannot rebuild .*TwoLayerNet"),
    (lambda m: m["network"].update(weight_decay_lambda=1e999), None,
     "weight_decay_lambda' must be a finite number"),
    (lambda m: m["optimizer"].update(type="lbfgs"), None, "unknown optimizer 'lbfgs'"),
    (lambda m: m["optimizer"].update(step=-3), None, "step must be an integer >= 0"),
    (lambda m: m["optimizer"].update(slots=[3]), None, "'optimizer.slots' must be a list of names"),
    (None, lambda a: a.update({"layer/0/params/W": np.zeros((3, 4), np.float32),
                               "layer/0/params/b": np.zeros(4, np.float32)}),
     r"TwoLayerNet\(4, 3, 2\) has weights of shapes \[\(4, 3\), \(3, 2\)\], got \[\(3, 4\)"),
    (None, lambda a: a.update({"layer/0/params/W": np.zeros((4, 3), np.int32)}),
     "array 'layer/0/params/W' has dtype int32"),
    (None, lambda a: a.pop("layer/2/params/b"),
     "cannot rebuild layer 'Affine2'"),
    (None, lambda a: a.update({"optimizer/m/W2": np.zeros(5, np.float32)}),
     r"optimizer state 'm' of 'W2' has shape \(5,\)"),
    (None, lambda a: a.pop("optimizer/m/W2"),
     "optimizer state 'm' lacks W2: resuming would silently restart"),
    (None, lambda a: a.update({"optimizer/m/W7": np.zeros(5, np.float32)}),
     "unexpected member 'optimizer/m/W7'"),
    (None, lambda a: a.update({"extra": np.zeros(1)}), "unexpected members extra"),
])
def test_bad_contents_name_the_file_and_the_problem(good_checkpoint, tmp_path, meta, arrays,
                                                    message):
    bad = _rewrite(good_checkpoint, tmp_path / "bad.npz", meta=meta, arrays=arrays)
    with pytest.raises(CheckpointError, match=f"{bad}: .*{message}"):
        load(bad)


def test_metadata_that_is_not_json_is_refused(good_checkpoint, tmp_path):
    with np.load(good_checkpoint) as npz:
        members = {name: npz[name] for name in npz.files}
    members["metadata.json"] = np.frombuffer(b"{not json", dtype=np.uint8)
    np.savez(tmp_path / "bad.npz", **members)
    with pytest.raises(CheckpointError, match="'metadata.json' is not valid JSON"):
        load(tmp_path / "bad.npz")


def test_loading_never_imports_the_backend_it_was_saved_from(good_checkpoint, tmp_path):
    from_gpu = _rewrite(good_checkpoint, tmp_path / "from_cupy.npz",
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
