"""Checkpoints as an adversary writes them: bounded reads, only CheckpointError, nothing lost.

Every crafted file here is small; the library must refuse it by its declared sizes,
before allocating or inflating what it claims, and with :class:`CheckpointError` alone.
"""

import io
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from checkpoint_helpers import run_limited, save_v2, small_trained_net
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bp_xp
from bp_xp import MultiLayerNet, TwoLayerNet
from bp_xp.checkpoint import CheckpointError, load, read_metadata, save
from bp_xp.optim import Adam, Momentum

DATA = Path(__file__).parent / "data"
ROOT = str(Path(bp_xp.__file__).resolve().parent.parent)


def _npy_bytes(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _metadata_member(document):
    return _npy_bytes(np.frombuffer(json.dumps(document).encode(), dtype=np.uint8))


def _zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.fixture
def good(tmp_path):
    return save_v2(tmp_path / "good.npz", *small_trained_net())


def _members(path):
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


_peak_rss_of = run_limited


def _load_under_one_gib(path):
    """Load ``path`` in a subprocess that cannot map more than 1 GiB; return what it printed."""
    done = _peak_rss_of(f"""
        from bp_xp.checkpoint import load, CheckpointError
        try:
            load({str(path)!r})
        except CheckpointError as exc:
            print("refused:", exc)
    """, limit_bytes=1 << 30)
    assert done.returncode == 0, done.stderr
    return done.stdout


# --------------------------------------------------------------------------------------
# Bounded reads
# --------------------------------------------------------------------------------------


def test_a_member_that_claims_two_to_the_forty_floats_is_refused_before_reading(good, tmp_path):
    members = _members(good)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (2**40,)})
    members["layer/0/params/W.npy"] = header.getvalue() + b"\0" * 64
    out = _load_under_one_gib(_zip(tmp_path / "huge.npz", members))  # 4 TiB cannot be mapped
    assert "refused:" in out and "declares shape (1099511627776,)" in out


def test_a_compressed_member_is_refused_without_inflating_it(good, tmp_path):
    members = _members(good)
    members["layer/0/params/W.npy"] = _npy_bytes(np.zeros(16 << 20, np.float32))  # 64 MiB of zeros
    bomb = _zip(tmp_path / "bomb.npz", members, compression=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 200_000
    done = _peak_rss_of(f"""
        import resource
        from bp_xp.checkpoint import load, CheckpointError
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load({str(bomb)!r})
        except CheckpointError as exc:
            print("refused:", exc)
        print("grew_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
    """)
    assert done.returncode == 0, done.stderr
    assert "is compressed" in done.stdout
    grew = int(done.stdout.split("grew_kib")[1])
    assert grew < 16 * 1024  # far below the 64 MiB the member would inflate to


def test_v1_sizes_that_do_not_match_the_arrays_allocate_nothing(tmp_path):
    legacy = DATA / "v0.1-multilayer-momentum.npz"
    members = _members(legacy)
    document = json.loads(np.lib.format.read_array(io.BytesIO(members["metadata.json.npy"])).tobytes())
    document["architecture"].update({"class": "TwoLayerNet", "sizes": [30000, 30000, 2]})
    members["metadata.json.npy"] = _metadata_member(document)
    out = _load_under_one_gib(_zip(tmp_path / "sizes.npz", members))  # 30000**2 floats: 3.6 GB
    assert "refused:" in out and "30000" in out


def test_members_claiming_more_bytes_than_the_file_has_are_refused(good, tmp_path):
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as archive:
        info = archive.getinfo("layer/0/params/W.npy")
    # Patch both sizes in the member's central directory entry (offsets 20/24 from its
    # signature): it now claims 2 GiB in a file of a few KB.
    patched = 0
    for start in (i for i in range(len(data)) if data.startswith(b"PK\x01\x02", i)):
        name_length = struct.unpack_from("<H", data, start + 28)[0]
        if data[start + 46:start + 46 + name_length] == info.filename.encode():
            struct.pack_into("<II", data, start + 20, 1 << 31, 1 << 31)
            patched += 1
    assert patched == 1
    bad = tmp_path / "claims.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="claims.npz: "):
        load(bad)


def test_deeply_nested_json_is_a_checkpoint_error(good, tmp_path):
    members = _members(good)
    members["metadata.json.npy"] = _npy_bytes(np.frombuffer(b"[" * 100_000 + b"]" * 100_000,
                                                            dtype=np.uint8))
    bad = _zip(tmp_path / "deep.npz", members)
    with pytest.raises(CheckpointError, match="deep.npz: 'metadata.json' is not valid JSON"):
        load(bad)


def test_a_text_file_gets_no_advice_to_unpickle(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("these are my notes, not weights\n" * 20)
    with pytest.raises(CheckpointError) as caught:
        load(text)
    assert "pickle" not in str(caught.value).lower()
    assert str(text) in str(caught.value)


CORRUPTIONS = st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)),
                       min_size=1, max_size=6)


@pytest.mark.slow  # 300 examples per format; the crafted files above stay in the fast lane
@pytest.mark.parametrize("fixture", ["good", "good3"])  # format 2 (.npz), format 3
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=CORRUPTIONS, cut=st.one_of(st.none(), st.integers(min_value=0)))
def test_fuzzed_checkpoints_raise_only_checkpoint_error(request, tmp_path, fixture, flips, cut):
    data = bytearray(request.getfixturevalue(fixture).read_bytes())
    for position, value in flips:
        # half the flips land in the first bytes, where a safetensors header is
        data[position % (len(data) if position % 2 else min(len(data), 600))] = value
    if cut is not None:
        del data[cut % len(data):]
    path = tmp_path / "fuzzed.bin"
    path.write_bytes(bytes(data))
    for read in (read_metadata, load):
        try:
            read(path)
        except CheckpointError as exc:
            assert str(path) in str(exc)


# --------------------------------------------------------------------------------------
# Old files, new layers
# --------------------------------------------------------------------------------------


def test_a_bp_xp_0_1_checkpoint_still_loads_with_its_optimizer():
    net, optimizer = load(DATA / "v0.1-multilayer-momentum.npz")
    assert isinstance(net, MultiLayerNet) and repr(net) == (
        "MultiLayerNet(4-5-3, backend=numpy, dtype=float64)")
    assert net.weight_decay_lambda == 0.01 and list(net.layers) == ["Affine1", "Sigmoid1", "Affine2"]
    assert isinstance(optimizer, Momentum) and optimizer.step_count == 1
    x = np.linspace(-1, 1, 8).reshape(2, 4)
    # predictions saved by bp_xp 0.1's own code when it wrote the file
    expected = np.load(DATA / "v0.1-multilayer-momentum-predict.npy")
    np.testing.assert_array_equal(net.predict(x), expected)
    assert read_metadata(DATA / "v0.1-multilayer-momentum.npz")["user"] == {"epoch": 1}


# --------------------------------------------------------------------------------------
# Nothing lost, nothing replaced that is not ours
# --------------------------------------------------------------------------------------


def test_save_refuses_a_fifo_and_a_directory(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    net = TwoLayerNet(4, 3, 2, seed=0)
    with pytest.raises(OSError, match="not a regular file") as caught:
        save(fifo, net)
    assert str(fifo) in str(caught.value)
    assert fifo.is_fifo()
    with pytest.raises(IsADirectoryError):
        save(tmp_path, net)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_an_unwritable_directory_error_names_the_users_path(tmp_path):
    target = tmp_path / "missing-dir" / "net.npz"
    with pytest.raises(FileNotFoundError) as caught:
        save(target, TwoLayerNet(4, 3, 2, seed=0))
    assert str(target) in str(caught.value) and ".tmp" not in str(caught.value)


def test_a_save_killed_with_sigkill_leaves_no_stray_file_after_the_next_save(tmp_path):
    target = tmp_path / "net.npz"
    code = textwrap.dedent(f"""
        import os, signal, numpy as np, bp_xp
        from bp_xp import checkpoint
        def die(file, arrays, metadata):
            file.write(b"half a safetensors file")
            file.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        checkpoint._write = die
        checkpoint.save({str(target)!r}, bp_xp.TwoLayerNet(4, 3, 2, seed=0))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], env=env, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".net.npz.")  # the killed write's
    save(target, TwoLayerNet(4, 3, 2, seed=0))
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"]


def test_a_bp_xp_0_3_checkpoint_with_batch_norm_and_dropout_still_loads():
    # written by bp_xp's format-2 writer itself, before format 3 (tests/data)
    path = DATA / "v0.2-multilayer-bn-dropout-adam.npz"
    net, optimizer = load(path)
    assert repr(net) == "MultiLayerNet(4-5-3-2, backend=numpy, dtype=float64)"
    assert isinstance(optimizer, Adam) and optimizer.step_count == 2
    x = np.linspace(-1, 1, 8).reshape(2, 4)
    expected = np.load(DATA / "v0.2-multilayer-bn-dropout-adam-predict.npy")
    np.testing.assert_array_equal(net.predict(x, train_flg=False), expected)
    assert read_metadata(path)["user"] == {"epoch": 2}
    # ...and saved again, it is a format-3 file holding the same arrays
    torch_net, _ = load(path, backend="array_api_strict")
    np.testing.assert_array_equal(bp_xp.to_numpy(torch_net.predict(
        torch_net.backend.asarray(x), train_flg=False)), expected)


def _edit_v2_metadata(src, dst, text):
    members = _members(src)
    members["metadata.json.npy"] = _npy_bytes(np.frombuffer(text.encode(), dtype=np.uint8))
    return _zip(dst, members)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace('"step": 1', '"step": ' + "7" * 5000), "of 5000 digits"),
    (lambda t: t.replace('"step": 1', '"step": 1e999'), "out of a float's range"),
    (lambda t: t.replace('"weight_decay_lambda": 0.0', '"weight_decay_lambda": ' + "9" * 400),
     "of 400 digits"),
    (lambda t: t.replace('"weight_decay_lambda": 0.0', '"weight_decay_lambda": -Infinity'),
     "not a finite number"),
    (lambda t: t.replace('"lr": 0.001', '"lr": 1e308, "lr": 1'), "the key 'lr' twice"),
])
def test_numbers_of_a_format_2_file_are_range_checked(good, tmp_path, edit, message):
    text = json.loads(np.lib.format.read_array(io.BytesIO(_members(good)["metadata.json.npy"]))
                      .tobytes())
    original = json.dumps(text)
    changed = edit(original)
    assert changed != original
    bad = _edit_v2_metadata(good, tmp_path / "numbers.npz", changed)
    with pytest.raises(CheckpointError, match=f"numbers.npz: .*{message}"):
        load(bad)


# --------------------------------------------------------------------------------------
# Format 3 (safetensors) as an adversary writes it
# --------------------------------------------------------------------------------------


@pytest.fixture
def good3(tmp_path):
    path = tmp_path / "good.safetensors"
    save(path, *small_trained_net())
    return path


def _parts(path):
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length]), data[8 + length:]


def _write3(path, header, body, length=None):
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + body)
    return path


def _tensor_edit(name, **changes):
    def edit(header, body):
        header[name].update(changes)
        return header, body
    return edit


def _first_two_overlap(header, body):
    names = sorted((n for n in header if n != "__metadata__"),
                   key=lambda n: header[n]["data_offsets"][0])
    a, b = names[0], names[1]
    if header[a]["shape"] == header[b]["shape"] and header[a]["dtype"] == header[b]["dtype"]:
        header[b]["data_offsets"] = list(header[a]["data_offsets"])
    else:  # make b start inside a, keeping its size
        size = header[b]["data_offsets"][1] - header[b]["data_offsets"][0]
        start = header[a]["data_offsets"][0] + 4
        header[b]["data_offsets"] = [start, start + size]
    return header, body


CRAFTED = [
    (_tensor_edit("layer/0/params/W", shape=[2**40], data_offsets=[0, 4 * 2**40]),
     "past the file's"),
    (_tensor_edit("layer/0/params/W", shape=[2**40]), "declares shape \\(1099511627776,\\)"),
    (_tensor_edit("layer/0/params/W", shape=[2**31, 2**31, 2**31]), "declares shape"),
    (_tensor_edit("layer/0/params/W", shape=[-1, 12]), "not a list of at most 32 non-negative"),
    (_tensor_edit("layer/0/params/W", shape=[True, 12]), "not a list of at most 32"),
    (_tensor_edit("layer/0/params/W", shape=[1.5]), "not a list of at most 32"),
    (_tensor_edit("layer/0/params/W", shape="4x3"), "not a list of at most 32"),
    (_tensor_edit("layer/0/params/W", shape=[1] * 40), "not a list of at most 32"),
    (_tensor_edit("layer/0/params/W", data_offsets=[48, 0]), "not \\[begin, end\\]"),
    (_tensor_edit("layer/0/params/W", data_offsets=[0]), "not \\[begin, end\\]"),
    (_tensor_edit("layer/0/params/W", data_offsets={"begin": 0}), "not \\[begin, end\\]"),
    (_tensor_edit("layer/0/params/W", dtype="BF16"), "has dtype 'BF16', which bp_xp does not read"),
    (_tensor_edit("layer/0/params/W", dtype="F8_E4M3"), "has dtype 'F8_E4M3'"),
    (_tensor_edit("layer/0/params/W", dtype=4), "has dtype '4'"),
    (_tensor_edit("layer/0/params/W", dtype="F64"), "declares shape \\(4, 3\\) of float64"),
    (_tensor_edit("layer/0/params/W", extra=1), "header entry is not"),
    (lambda h, b: ({**h, "layer/0/params/W": [1, 2]}, b), "header entry is not"),
    (_first_two_overlap, "overlaps the tensor before it|leaves a gap"),
    (lambda h, b: (h, b + b"\0" * 8), "the tensors hold .* bytes, the file .* after its header"),
    (lambda h, b: (h, b[:-4]), "past the file's|the tensors hold"),
    (lambda h, b: ({k: v for k, v in h.items() if k != "__metadata__"}, b),
     "a safetensors file without"),
    (lambda h, b: ({**h, "__metadata__": {"bp_xp.checkpoint": 3}}, b), "without the"),
    (lambda h, b: ({**h, "__metadata__": ["bp_xp.checkpoint"]}, b), "without the"),
    (lambda h, b: ([h], b), "its header is not a JSON object"),
]


@pytest.mark.parametrize(("edit", "message"), CRAFTED)
def test_crafted_safetensors_headers_are_refused_before_reading(good3, tmp_path, edit, message):
    header, body = edit(*_parts(good3))
    bad = _write3(tmp_path / "crafted.safetensors", header, body)
    for read in (read_metadata, load):
        with pytest.raises(CheckpointError, match=f"crafted.safetensors: not a .*({message})"):
            read(bad)


def test_a_header_that_claims_four_tebibytes_allocates_nothing(good3, tmp_path):
    header, body = _parts(good3)
    header["layer/0/params/W"].update(shape=[2**40], data_offsets=[0, 4 * 2**40])
    out = _load_under_one_gib(_write3(tmp_path / "huge.safetensors", header, body))
    assert "refused:" in out and "past the file's" in out


def test_a_huge_or_lying_header_length_is_refused_without_reading_it(good3, tmp_path):
    header, body = _parts(good3)
    paths = [_write3(tmp_path / f"long{i}.safetensors", header, body, length=length)
             for i, length in enumerate([2**63, 2**40, (64 << 20) + 1, 10**6])]
    done = _peak_rss_of(f"""
        from bp_xp.checkpoint import load, CheckpointError
        for path in {[str(p) for p in paths]!r}:
            try:
                load(path)
            except CheckpointError as exc:
                print("refused:", exc)
    """)  # under 1 GiB of address space
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4 and all(line.startswith("refused:") for line in lines)
    assert all("more than a checkpoint's" in line or "the file has" in line for line in lines)


def test_a_header_that_is_not_json_is_refused(tmp_path):
    for name, raw in {"binary": b"\xff\xfe{}", "text": b"{not json}", "deep": b"[" * 50_000,
                      "dup": b'{"a": 1, "a": 2}', "nan": b'{"__metadata__": NaN}'}.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(struct.pack("<Q", len(raw)) + raw)
        with pytest.raises(CheckpointError, match=f"{name}.safetensors: not a readable"):
            load(path)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    done = _peak_rss_of(f"""
        from bp_xp.checkpoint import load, read_metadata, CheckpointError
        for read in (load, read_metadata):
            try:
                read({str(fifo)!r})
            except CheckpointError as exc:
                print("refused:", exc)
    """)  # a blocked open would end in the subprocess timeout
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("refused:") == 2 and "it is a FIFO" in done.stdout
    assert fifo.is_fifo()


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero here")
def test_a_device_file_is_refused_without_reading_it():
    for device in ("/dev/zero", "/dev/urandom", "/dev/null"):
        for read in (load, read_metadata):
            with pytest.raises(CheckpointError, match=f"{device}: not a bp_xp checkpoint: it is a device"):
                read(device)


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="it is a directory"):
        load(tmp_path)
