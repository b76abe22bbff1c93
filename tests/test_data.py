"""Tests of bp_xp.data: IDX parsing, MNIST loading and downloading, the
shipped offline 5k subset, dataset-by-name loading and validate_dataset.

Network access is only ever to a throwaway HTTP server on 127.0.0.1 started by
a fixture; nothing here needs the internet.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

import bp_xp.data as bd
from bp_xp.data import (
    DATASETS,
    ChecksumError,
    DatasetError,
    DownloadError,
    load_dataset,
    load_mnist,
    parse_idx,
    read_idx,
    validate_dataset,
    write_idx,
)

HAVE_5K = Path(bd.__file__).with_name("mnist_5k.npz").is_file()
needs_5k = pytest.mark.skipif(not HAVE_5K, reason="the shipped mnist_5k.npz is missing")

N_TRAIN, N_TEST = 23, 11
FILES = bd.MNIST_FILES


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def idx_bytes(code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    """Build an IDX file by hand (independent of write_idx)."""
    return struct.pack(">BBBB", 0, 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + payload


def fake_mnist() -> dict[str, tuple[np.ndarray, bytes]]:
    """Small MNIST-like splits: file name -> (array, gz bytes)."""
    rng = np.random.default_rng(123)
    out = {}
    for prefix, n in (("train", N_TRAIN), ("test", N_TEST)):
        imgs = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        imgs[0, 0, 0], imgs[0, 0, 1] = 0, 255  # make sure both extremes occur
        labels = (np.arange(n) % 10).astype(np.uint8)
        img_raw = idx_bytes(0x08, imgs.shape, imgs.tobytes())
        lab_raw = idx_bytes(0x08, labels.shape, labels.tobytes())
        out[FILES[f"{prefix}_img"]] = (imgs, gzip.compress(img_raw, mtime=0))
        out[FILES[f"{prefix}_label"]] = (labels, gzip.compress(lab_raw, mtime=0))
    return out


@pytest.fixture(scope="module")
def mnist_files() -> dict[str, tuple[np.ndarray, bytes]]:
    return fake_mnist()


@pytest.fixture(scope="module")
def checksums(mnist_files) -> dict[str, str]:
    return {name: hashlib.sha256(gz).hexdigest() for name, (_, gz) in mnist_files.items()}


def place(root: Path, mnist_files) -> Path:
    d = root / "mnist"
    d.mkdir(parents=True, exist_ok=True)
    for name, (_, gz) in mnist_files.items():
        (d / name).write_bytes(gz)
    return d


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# ---------------------------------------------------------------------------
# IDX parsing
# ---------------------------------------------------------------------------
def test_parse_handmade_idx3():
    data = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    arr = parse_idx(idx_bytes(0x08, (2, 3, 4), data.tobytes()), source="x")
    assert arr.shape == (2, 3, 4) and arr.dtype == np.uint8
    np.testing.assert_array_equal(arr, data)
    assert arr.flags.writeable


def test_parse_big_endian_int32():
    vals = np.array([1, -2, 70000], dtype=">i4")
    arr = parse_idx(idx_bytes(0x0C, (3,), vals.tobytes()))
    assert arr.dtype == np.dtype("int32") and arr.dtype.isnative
    assert arr.tolist() == [1, -2, 70000]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_write_read_roundtrip(tmp_path, dtype, suffix):
    a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    p = tmp_path / f"a-idx3{suffix}"
    write_idx(p, a)
    assert (p.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    b = read_idx(p)
    assert b.dtype == np.dtype(dtype) and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_gzip_detected_by_content_not_name(tmp_path):
    p = tmp_path / "labels-idx1-ubyte"  # no .gz, but gzip content
    p.write_bytes(gzip.compress(idx_bytes(0x08, (3,), bytes([1, 2, 3]))))
    assert read_idx(p).tolist() == [1, 2, 3]


def test_write_idx_rejects_bad_dtype(tmp_path):
    with pytest.raises(TypeError, match="no IDX code"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.uint64))


GOOD3 = idx_bytes(0x08, (2, 2, 2), bytes(8))


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "only 0 byte"),
        (b"\x00\x00", "only 2 byte"),
        (b"\x00\x01\x08\x01" + bytes(8), "bad magic number"),
        (b"<!DOCTYPE html><html>404</html>", "HTML"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"x", "unknown dtype code 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (GOOD3[:10], "truncated IDX header"),
        (GOOD3[:-1], "truncated"),
        (GOOD3 + b"\x00", "trailing bytes"),
        (gzip.compress(GOOD3)[:-6], "corrupt or truncated gzip"),
    ],
    ids=["empty", "tiny", "magic", "html", "dtype", "ndim0", "header", "short", "long", "gzip"],
)
def test_bad_idx_files_raise_dataset_error(tmp_path, content, match):
    p = tmp_path / "broken-idx3-ubyte.gz"
    p.write_bytes(content)
    with pytest.raises(DatasetError, match=match) as info:
        read_idx(p)
    assert str(p) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_hostile_header_does_not_allocate(tmp_path):
    p = tmp_path / "huge"
    p.write_bytes(idx_bytes(0x0E, (2**32 - 1,) * 4, b""))
    with pytest.raises(DatasetError, match="too large for any array"):
        read_idx(p)
    p.write_bytes(idx_bytes(0x0E, (2**16, 2**16), b""))  # representable, but not in the file
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(p)


# ---------------------------------------------------------------------------
# load_mnist on files placed in data_dir
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("flatten", [True, False])
@pytest.mark.parametrize("one_hot_label", [True, False])
def test_load_mnist_flags(tmp_path, mnist_files, checksums, normalize, flatten, one_hot_label):
    place(tmp_path, mnist_files)
    (x, t), (xt, tt) = load_mnist(
        normalize, flatten, one_hot_label, data_dir=tmp_path, download=False, checksums=checksums
    )
    for xs, ts, n, prefix in ((x, t, N_TRAIN, "train"), (xt, tt, N_TEST, "test")):
        imgs = mnist_files[FILES[f"{prefix}_img"]][0]
        labels = mnist_files[FILES[f"{prefix}_label"]][0]
        assert xs.shape == ((n, 784) if flatten else (n, 1, 28, 28))
        if normalize:
            assert xs.dtype == np.float32
            assert xs.min() == 0.0 and xs.max() == 1.0
            np.testing.assert_allclose(xs.reshape(n, 28, 28) * 255, imgs, atol=1e-3)
        else:
            assert xs.dtype == np.uint8
            np.testing.assert_array_equal(xs.reshape(n, 28, 28), imgs)
        if one_hot_label:
            assert ts.shape == (n, 10) and ts.dtype == np.float32
            np.testing.assert_array_equal(ts.argmax(axis=1), labels)
            np.testing.assert_array_equal(ts.sum(axis=1), 1.0)
        else:
            assert ts.shape == (n,) and ts.dtype == np.uint8
            np.testing.assert_array_equal(ts, labels)
        assert xs.flags.writeable and ts.flags.writeable


def test_load_mnist_module_checksums_can_be_monkeypatched(tmp_path, mnist_files, checksums, monkeypatch):
    place(tmp_path, mnist_files)
    for name, digest in checksums.items():
        monkeypatch.setitem(bd.MNIST_SHA256, name, digest)
    (x, _), _ = load_mnist(data_dir=tmp_path, download=False)
    assert x.shape == (N_TRAIN, 784)


def test_load_mnist_missing_without_download(tmp_path, checksums):
    with pytest.raises(DatasetError, match="download=False") as info:
        load_mnist(data_dir=tmp_path, download=False, checksums=checksums)
    msg = str(info.value)
    assert str(tmp_path / "mnist") in msg and "mnist-5k" in msg


def test_corrupt_cached_file_is_reported(tmp_path, mnist_files, checksums):
    d = place(tmp_path, mnist_files)
    bad = d / FILES["test_label"]
    bad.write_bytes(bad.read_bytes()[:-3])
    actual = hashlib.sha256(bad.read_bytes()).hexdigest()
    with pytest.raises(ChecksumError) as info:
        load_mnist(data_dir=tmp_path, download=False, checksums=checksums)
    msg = str(info.value)
    assert "cached" in msg and str(bad) in msg
    assert checksums[bad.name] in msg and actual in msg
    assert info.value.filename == bad.name and info.value.actual == actual
    assert bad.exists()  # possibly hand-placed: reported, not deleted


def _write_split(tmp_path, imgs, labels):
    d = tmp_path / "mnist"
    d.mkdir(exist_ok=True)
    sums = {}
    for prefix in ("train", "test"):
        for key, arr in ((f"{prefix}_img", imgs), (f"{prefix}_label", labels)):
            gz = gzip.compress(idx_bytes(0x08, arr.shape, arr.tobytes()))
            (d / FILES[key]).write_bytes(gz)
            sums[FILES[key]] = hashlib.sha256(gz).hexdigest()
    return sums


@pytest.mark.parametrize(
    "imgs, labels, match",
    [
        (np.zeros((3, 27, 27), np.uint8), np.zeros(3, np.uint8), r"shape \(N, 28, 28\)"),
        (np.zeros((3, 28, 28), np.uint8), np.zeros(2, np.uint8), "3 images but"),
        (np.zeros((2, 28, 28), np.uint8), np.array([1, 10], np.uint8), "label 10 out of range"),
    ],
    ids=["side", "count", "label"],
)
def test_load_mnist_rejects_wrong_structure(tmp_path, imgs, labels, match):
    sums = _write_split(tmp_path, imgs, labels)
    with pytest.raises(DatasetError, match=match):
        load_mnist(data_dir=tmp_path, download=False, checksums=sums)


def test_data_root_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("BP_XP_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert bd.data_root(tmp_path / "arg") == tmp_path / "arg"
    assert bd.data_root() == tmp_path / "env"
    assert bd.mnist_dir() == tmp_path / "env" / "mnist"
    monkeypatch.delenv("BP_XP_DATA_DIR")
    assert bd.data_root() == tmp_path / "xdg" / "bp_xp"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert bd.data_root() == tmp_path / "home" / ".cache" / "bp_xp"


def test_published_constants():
    assert set(bd.MNIST_SHA256) == set(FILES.values()) == set(bd.MNIST_SIZES)
    assert all(len(v) == 64 and int(v, 16) >= 0 for v in bd.MNIST_SHA256.values())
    assert len(bd.MNIST_MIRRORS) >= 2
    assert all(m.startswith(("http://", "https://")) and m.endswith("/") for m in bd.MNIST_MIRRORS)


# ---------------------------------------------------------------------------
# downloads from a local HTTP server
# ---------------------------------------------------------------------------
class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes: /good/F, /bad/F (wrong bytes), /short/F (closes early),
    /stall/F (sends part, then hangs until the test ends), /endless/F (no
    Content-Length, sends zeros until the client hangs up or 5 s pass),
    /biglen/F (announces 1 TB); anything else 404."""

    def log_message(self, format, *args):  # noqa: A002 - silence the server
        pass

    def do_GET(self):  # noqa: N802 - http.server API
        srv = self.server
        srv.hits.append(self.path)
        _, mode, name = (self.path.split("/", 2) + ["", ""])[:3]
        body = srv.files.get(name)
        if body is None or mode not in ("good", "bad", "short", "stall", "endless", "biglen"):
            self.send_error(404, "Not Found")
            return
        if mode in ("endless", "biglen"):
            self.send_response(200)
            if mode == "biglen":
                self.send_header("Content-Length", str(10**12))
            self.end_headers()
            deadline = time.monotonic() + 5
            chunk = bytes(1 << 16)
            try:
                while time.monotonic() < deadline and not srv.release.is_set():
                    self.wfile.write(chunk)
                    srv.sent[self.path] = srv.sent.get(self.path, 0) + len(chunk)
            except OSError:
                pass  # the client hung up: what we want
            self.close_connection = True
            return
        if mode == "bad":
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode in ("good", "bad"):
            self.wfile.write(body)
        elif mode == "short":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
        else:  # stall
            self.wfile.write(body[:10])
            self.wfile.flush()
            srv.release.wait(timeout=5)


@pytest.fixture
def server(mnist_files):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.files = {name: gz for name, (_, gz) in mnist_files.items()}
    srv.hits = []
    srv.sent = {}
    srv.release = threading.Event()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        yield srv
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)
        assert not thread.is_alive()


@pytest.fixture
def closed_port_url():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused
    return f"http://127.0.0.1:{port}/mnist/"


def test_download_good(tmp_path, server, mnist_files, checksums, closed_port_url):
    (x, t), (xt, tt) = load_mnist(
        False, False, data_dir=tmp_path, mirrors=[server.base + "/good/"], checksums=checksums, timeout=5
    )
    np.testing.assert_array_equal(x[:, 0], mnist_files[FILES["train_img"]][0])
    np.testing.assert_array_equal(tt, mnist_files[FILES["test_label"]][0])
    d = tmp_path / "mnist"
    assert leftovers(d) == sorted(FILES.values())  # no temp files
    for name, (_, gz) in mnist_files.items():
        assert (d / name).read_bytes() == gz
    assert len(server.hits) == 4
    # Second call: served from the verified cache, no network needed.
    (x2, _), _ = load_mnist(False, False, data_dir=tmp_path, mirrors=[closed_port_url], checksums=checksums)
    np.testing.assert_array_equal(x, x2)
    assert len(server.hits) == 4


def test_download_bad_checksum(tmp_path, server, checksums):
    name = FILES["train_img"]
    d = tmp_path / "mnist"
    with pytest.raises(ChecksumError) as info:
        bd.download_file(name, d, [server.base + "/bad/"], checksums[name], timeout=5)
    err = info.value
    assert err.filename == name and err.expected == checksums[name]
    assert err.actual != err.expected and len(err.actual) == 64
    msg = str(err)
    assert name in msg and err.expected in msg and err.actual in msg
    assert leftovers(d) == []  # neither final nor temp file


def test_download_bad_checksum_via_load_mnist(tmp_path, server, checksums):
    with pytest.raises(ChecksumError, match="wrong SHA-256"):
        load_mnist(data_dir=tmp_path, mirrors=[server.base + "/bad/"], checksums=checksums, timeout=5)
    assert leftovers(tmp_path / "mnist") == []


def test_download_offline(tmp_path, closed_port_url, checksums):
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as info:
        load_mnist(data_dir=tmp_path, mirrors=[closed_port_url], checksums=checksums, timeout=5)
    assert time.monotonic() - t0 < 5
    err = info.value
    msg = str(err)
    assert err.offline is True
    assert closed_port_url + FILES["train_img"] in msg
    assert "offline" in msg and "data_dir" in msg and "mnist-5k" in msg
    assert str(tmp_path / "mnist") in msg
    assert err.attempts[0][0] == closed_port_url + FILES["train_img"]
    assert leftovers(tmp_path / "mnist") == []


@pytest.mark.parametrize("mode, match", [("short", "interrupted"), ("stall", "timed out")])
def test_download_interrupted(tmp_path, server, checksums, mode, match):
    name = FILES["train_img"]
    d = tmp_path / "mnist"
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=match) as info:
        bd.download_file(name, d, [f"{server.base}/{mode}/"], checksums[name], timeout=0.5)
    assert time.monotonic() - t0 < 4
    assert f"{server.base}/{mode}/{name}" in str(info.value)
    assert leftovers(d) == []


def test_http_404_is_not_offline(tmp_path, server, checksums):
    name = FILES["test_label"]
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        bd.download_file(name, tmp_path, [server.base + "/nothing/"], checksums[name], timeout=5)
    assert info.value.offline is False
    assert "offline" not in str(info.value)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("first", ["closed", "404", "bad", "short"])
def test_first_mirror_fails_second_succeeds(tmp_path, server, mnist_files, checksums, closed_port_url, first):
    first_url = closed_port_url if first == "closed" else f"{server.base}/{first}/"
    (x, t), _ = load_mnist(
        data_dir=tmp_path,
        mirrors=[first_url, server.base + "/good/"],
        checksums=checksums,
        timeout=5,
    )
    assert x.shape == (N_TRAIN, 784) and t.tolist() == mnist_files[FILES["train_label"]][0].tolist()
    assert leftovers(tmp_path / "mnist") == sorted(FILES.values())
    assert sum(h.startswith("/good/") for h in server.hits) == 4


def test_empty_mirror_list(tmp_path, checksums):
    with pytest.raises(DownloadError, match="mirror list is empty"):
        load_mnist(data_dir=tmp_path, mirrors=[], checksums=checksums)


# ---------------------------------------------------------------------------
# offline default: the shipped 5k subset
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def five_k():
    if not HAVE_5K:
        pytest.skip("the shipped mnist_5k.npz is missing")
    return bd.load_mnist_5k(normalize=False)


@needs_5k
def test_5k_shapes_and_values(five_k):
    (x, t), (xt, tt) = five_k
    assert x.shape == (4000, 784) and xt.shape == (1000, 784)
    assert x.dtype == np.uint8 and t.dtype == np.uint8
    assert x.max() == 255 and x.min() == 0
    assert np.bincount(t, minlength=10).tolist() == [400] * 10
    assert np.bincount(tt, minlength=10).tolist() == [100] * 10
    # Not sorted by class any more.
    assert (np.diff(t.astype(int)) < 0).any()
    with pytest.warns(bd.DataRangeWarning, match="raw 0..255 pixels"):
        validate_dataset(x, t, 10)
    validate_dataset(xt, tt, 10, max_abs=None)


@needs_5k
def test_5k_split_is_disjoint(five_k):
    (x, _), (xt, _) = five_k
    train_rows = {row.tobytes() for row in x}
    assert len(train_rows) == 4000
    assert not train_rows & {row.tobytes() for row in xt}


@needs_5k
def test_5k_deterministic_and_fresh(five_k):
    (x, t), (xt, tt) = five_k
    bd.mnist5k._load_cached.cache_clear()
    (x2, t2), (xt2, tt2) = bd.load_mnist_5k(normalize=False)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(t, t2)
    np.testing.assert_array_equal(xt, xt2)
    np.testing.assert_array_equal(tt, tt2)
    x2[:] = 0  # returned arrays are copies: the cache is unaffected
    (x3, _), _ = bd.load_mnist_5k(normalize=False)
    np.testing.assert_array_equal(x, x3)


@needs_5k
def test_5k_flags():
    (x, t), (xt, tt) = bd.load_mnist_5k(normalize=True, flatten=False, one_hot_label=True)
    assert x.shape == (4000, 1, 28, 28) and x.dtype == np.float32
    assert 0.0 <= float(x.min()) and float(x.max()) == 1.0
    assert t.shape == (4000, 10) and t.dtype == np.float32
    validate_dataset(xt, tt, 10)


@needs_5k
def test_load_dataset_default_announces_once(capsys):
    (x, t), (xt, tt) = load_dataset()
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines == ["bp_xp: using the offline MNIST 5k subset shipped with bp_xp (4000 train / 1000 test)"]
    assert x.shape == (4000, 784) and x.dtype == np.float32 and t.dtype == np.uint8
    load_dataset("mnist-5k", announce=False)
    assert capsys.readouterr() == ("", "")


def test_5k_file_validation(tmp_path):
    p = tmp_path / "bad.npz"
    p.write_bytes(gzip.compress(b"1,2,3\n4,5,6\n"))  # not a zip archive
    with pytest.raises(DatasetError, match="cannot read") as info:
        bd.mnist5k._read_npz(p)
    assert str(p) in str(info.value)


# ---------------------------------------------------------------------------
# load_dataset
# ---------------------------------------------------------------------------
def test_datasets_names():
    assert DATASETS == ("mnist-5k", "mnist")


def test_unknown_dataset_lists_known():
    with pytest.raises(DatasetError, match="unknown dataset 'cifar'") as info:
        load_dataset("cifar")
    assert "'mnist-5k'" in str(info.value) and "'mnist'" in str(info.value)


def test_load_dataset_mnist(tmp_path, mnist_files, checksums, monkeypatch, capsys):
    place(tmp_path, mnist_files)
    for name, digest in checksums.items():
        monkeypatch.setitem(bd.MNIST_SHA256, name, digest)
    (x, t), _ = load_dataset("mnist", data_dir=tmp_path, download=False, one_hot_label=True)
    assert x.shape == (N_TRAIN, 784) and t.shape == (N_TRAIN, 10)
    assert capsys.readouterr().err.count("\n") == 1


# ---------------------------------------------------------------------------
# validate_dataset
# ---------------------------------------------------------------------------
def test_validate_accepts_good_data():
    x = np.random.default_rng(0).random((5, 3, 2)).astype(np.float32)
    t = np.array([0, 1, 2, 1, 0], dtype=np.int64)
    assert validate_dataset(x, t, 3) is None
    assert validate_dataset(x, bd.one_hot(t, 3), 3) is None
    assert validate_dataset(x.astype(np.uint8), t.astype(np.uint8), 3) is None


def test_one_hot():
    oh = bd.one_hot(np.array([2, 0, 1], dtype=np.uint8), 3)
    assert oh.dtype == np.float32
    np.testing.assert_array_equal(oh, np.eye(3, dtype=np.float32)[[2, 0, 1]])


X = np.zeros((3, 4), np.float32)
T = np.array([0, 1, 2])


def _with(a, idx, value):
    a = a.copy()
    a[idx] = value
    return a


@pytest.mark.parametrize(
    "x, t, match",
    [
        (np.zeros(3, np.float32), T, "at least 2 dimensions"),
        (np.zeros((0, 4), np.float32), T[:0], "empty"),
        (X.astype(np.complex64), T, "real numeric dtype"),
        (X, T[:2], "x has 3 samples but t has 2"),
        (_with(X, (1, 2), np.nan), T, "1 NaN .*row 1"),
        (_with(X, (2, 0), np.inf), T, "1 inf .*row 2"),
        (X, np.array([0, 1, 3]), "label 3 at index 2 is out of range 0..2"),
        (X, np.array([0, -1, 2]), "label -1 at index 1"),
        (X, np.array([0.0, 1.5, 2.0]), r"t\[1\] = 1.5 is not an integer"),
        (X, np.array([0.0, 1.0, 2.0]), "integer dtype.*astype"),
        (X, np.zeros((3, 1, 1), np.int64), r"shape \(N,\)"),
        (X, np.eye(3, 4, dtype=np.float32), "must have 3 columns"),
        (X, _with(np.eye(3, dtype=np.float32), (1, 2), 1.0), "row 1 sums to 2"),
        (X, _with(np.eye(3, dtype=np.float32), (0, 0), 0.0), "row 0 sums to 0"),
        (X, _with(np.eye(3, dtype=np.float32), (2, 2), np.nan), "row 2 contains NaN"),
        (X, np.array([[1.5, -0.5, 0.0], [0, 1, 0], [0, 0, 1]], np.float32), "row 0 has negative"),
    ],
    ids=[
        "x1d", "empty", "complex", "n-mismatch", "nan", "inf", "label-high", "label-neg",
        "label-frac", "label-float", "t3d", "onehot-cols", "onehot-sum2", "onehot-sum0",
        "onehot-nan", "onehot-neg",
    ],
)
def test_validate_errors(x, t, match):
    x_before, t_before = x.copy(), t.copy()
    with pytest.raises(DatasetError, match=match):
        validate_dataset(x, t, 3)
    # never mutates its inputs
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(t, t_before)


@pytest.mark.parametrize("num_classes, exc", [(0, DatasetError), (2.0, TypeError), (True, TypeError)])
def test_validate_num_classes(num_classes, exc):
    with pytest.raises(exc):
        validate_dataset(X, np.zeros(3, np.int64), num_classes)


def test_validate_read_only_inputs():
    x = X.copy()
    t = T.copy()
    x.setflags(write=False)
    t.setflags(write=False)
    validate_dataset(x, t, 3)
    with pytest.raises(DatasetError):
        validate_dataset(x, t, 2)


# ---------------------------------------------------------------------------
# bounded reads of crafted IDX files (issue 10)
# ---------------------------------------------------------------------------
def _bomb(header: bytes, zeros_mib: int) -> bytes:
    """A small gzip file: ``header`` then ``zeros_mib`` MiB of zeros (~1 KB per MiB)."""
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [co.compress(header)]
    block = bytes(1 << 20)
    parts += [co.compress(block) for _ in range(zeros_mib)]
    parts.append(co.flush())
    return b"".join(parts)


def _sparse(path: Path, content: bytes, size: int) -> Path:
    with open(path, "wb") as fh:
        fh.write(content)
        fh.truncate(size)  # a hole: no disk space used
    return path


HDR_2E40 = idx_bytes(0x08, (2**20, 2**20), b"")

# name -> (file content or a builder taking the path, expected message)
CRAFTED = {
    "plain-2e40-items": (HDR_2E40 + bytes(100), "truncated"),
    "plain-65-dims": (idx_bytes(0x08, (1,) * 65, b"\x01"), "65 dimensions; at most 32"),
    "plain-255-dims": (idx_bytes(0x08, (1,) * 255, b"\x01"), "255 dimensions"),
    "gzip-2e40-items": (gzip.compress(HDR_2E40 + bytes(1000)), "more than a .*-byte gzip file can hold"),
    "gzip-65-dims": (gzip.compress(idx_bytes(0x08, (1,) * 65, b"\x01")), "65 dimensions"),
    "gzip-bomb-142MiB": (_bomb(idx_bytes(0x08, (3,), b"abc"), 142), "trailing bytes"),
    "gzip-bomb-truncated": (
        _bomb(idx_bytes(0x08, (2**31,), b""), 1)[:-8], "more than a .*-byte gzip file can hold"
    ),
    "plain-empty-huge-shape": (idx_bytes(0x08, (0, 2**32 - 1, 2**31 + 1), b""), "too large for any array"),
    "plain-sparse-200MiB": (lambda p: _sparse(p, idx_bytes(0x08, (3,), b"abc"), 200 << 20), "trailing"),
}


def _peak_read(path: Path, **kwargs) -> tuple[int, BaseException | None]:
    """(peak traced bytes, exception) of read_idx(path)."""
    tracemalloc.start()
    try:
        read_idx(path, **kwargs)
        err = None
    except BaseException as exc:  # noqa: BLE001 - the test inspects the type
        err = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, err


@pytest.mark.parametrize("name", list(CRAFTED))
def test_crafted_idx_bounded_memory(tmp_path, name):
    content, match = CRAFTED[name]
    path = tmp_path / f"{name}-idx1-ubyte.gz"
    if callable(content):
        content(path)
    else:
        path.write_bytes(content)
    assert path.stat().st_size < 256 * 1024 or name.startswith("plain-sparse")
    peak, err = _peak_read(path)
    assert type(err) is DatasetError, repr(err)
    assert re.search(match, str(err)), str(err)
    assert str(path) in str(err)
    assert peak < 20 * 2**20, f"{name}: peak {peak / 2**20:.1f} MiB"


def test_gzip_bomb_under_address_space_limit(tmp_path):
    """The 142 MiB bomb is refused in a process that cannot map 64 MiB more."""
    pytest.importorskip("resource")  # the child process limits its address space with it
    path = tmp_path / "bomb-idx1-ubyte.gz"
    path.write_bytes(CRAFTED["gzip-bomb-142MiB"][0])
    code = textwrap.dedent(
        f"""
        import resource, sys
        from bp_xp.data import DatasetError, read_idx
        with open("/proc/self/status") as fh:
            vm = [int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize")][0]
        resource.setrlimit(resource.RLIMIT_AS, (vm + (64 << 20), resource.RLIM_INFINITY))
        try:
            read_idx({str(path)!r})
        except DatasetError as exc:
            print("DatasetError", exc)
        """
    )
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc (Linux)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("DatasetError") and "trailing bytes" in out.stdout


def test_legit_file_read_once_without_copies(tmp_path):
    arr = np.random.default_rng(1).integers(0, 256, (2000, 28, 28), dtype=np.uint8)
    path = tmp_path / "imgs-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(0x08, arr.shape, arr.tobytes()), compresslevel=1))
    tracemalloc.start()
    out = read_idx(path, dtype=np.uint8, shape=(None, 28, 28), max_items=arr.size)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_array_equal(out, arr)
    assert peak < arr.nbytes + (6 << 20)  # the array plus a few inflate blocks


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dtype": np.int32}, "expected IDX data of dtype int32, but the header declares uint8"),
        ({"shape": (None, 28, 28)}, r"expected IDX data of shape \(N, 28, 28\), but .* \(3, 2\)"),
        ({"shape": (None,)}, r"shape \(N,\)"),
        ({"max_items": 5}, "declares 6 items .* more than the 5 expected"),
    ],
)
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_expectations_checked_on_header(tmp_path, kwargs, match, compress):
    path = tmp_path / "x-idx2-ubyte"
    raw = idx_bytes(0x08, (3, 2), bytes(6))
    path.write_bytes(gzip.compress(raw) if compress else raw)
    with pytest.raises(DatasetError, match=match) as info:
        read_idx(path, **kwargs)
    assert str(path) in str(info.value)
    ok = {k: v for k, v in {"dtype": np.uint8, "shape": (None, 2), "max_items": 6}.items()}
    assert read_idx(path, **ok).shape == (3, 2)


def test_mnist_header_beyond_known_shape_is_refused_before_allocating(tmp_path, monkeypatch):
    d = tmp_path / "mnist"
    d.mkdir()
    # 60,001 train images claimed in a 1 KB file whose checksum the caller vouches for.
    content = {
        FILES["train_img"]: gzip.compress(idx_bytes(0x08, (60001, 28, 28), b"")),
        FILES["train_label"]: gzip.compress(idx_bytes(0x08, (1,), b"\x00")),
        FILES["test_img"]: gzip.compress(idx_bytes(0x08, (1, 28, 28), bytes(784))),
        FILES["test_label"]: gzip.compress(idx_bytes(0x08, (1,), b"\x00")),
    }
    sums = {}
    for name, gz in content.items():
        (d / name).write_bytes(gz)
        sums[name] = hashlib.sha256(gz).hexdigest()
    tracemalloc.start()
    with pytest.raises(DatasetError, match="declares 47040784 items .* more than the 47040000") as info:
        load_mnist(data_dir=tmp_path, download=False, checksums=sums)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert str(d / FILES["train_img"]) in str(info.value)
    assert peak < 5 << 20


def test_gzip_members_and_padding_match_gzip_module(tmp_path):
    raw = idx_bytes(0x0B, (2, 3), np.arange(6, dtype=">i2").tobytes())
    two_members = gzip.compress(raw[:7]) + gzip.compress(raw[7:]) + bytes(5)
    assert gzip.decompress(two_members) == raw  # the reference accepts it
    path = tmp_path / "m-idx2-short.gz"
    path.write_bytes(two_members)
    np.testing.assert_array_equal(read_idx(path), np.arange(6).reshape(2, 3))
    path.write_bytes(two_members + b"garbage")
    with pytest.raises(DatasetError, match="corrupt or truncated gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_unreadable_path_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="cannot read") as info:
        read_idx(tmp_path)  # a directory
    assert str(tmp_path) in str(info.value)
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "missing")


# ---------------------------------------------------------------------------
# bounded downloads, stale temp files, errors naming the user's path
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mode, size, match",
    [
        ("endless", 50_000, "more than the 50000 bytes expected; cut off"),
        ("endless", None, "more than the 200000 bytes expected; cut off"),
        ("biglen", 50_000, "announces 1000000000000 bytes, more than the 50000 expected"),
    ],
)
def test_download_stops_at_known_size(tmp_path, server, checksums, monkeypatch, mode, size, match):
    monkeypatch.setattr(bd._download, "DOWNLOAD_MAX_BYTES", 200_000)
    name = FILES["train_img"]
    d = tmp_path / "mnist"
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=match) as info:
        bd.download_file(name, d, [f"{server.base}/{mode}/"], checksums[name], timeout=5, size=size)
    assert time.monotonic() - t0 < 4
    assert isinstance(info.value, DatasetError)
    assert leftovers(d) == []
    assert ".tmp" not in str(info.value)


def test_load_mnist_uses_official_size_as_cap(tmp_path, server, checksums, mnist_files, monkeypatch):
    for name, digest in checksums.items():
        monkeypatch.setitem(bd.MNIST_SHA256, name, digest)
        monkeypatch.setitem(bd.MNIST_SIZES, name, len(mnist_files[name][1]))
    with pytest.raises(DownloadError, match="cut off"):
        load_mnist(data_dir=tmp_path, mirrors=[server.base + "/endless/"], timeout=5)
    assert leftovers(tmp_path / "mnist") == []
    (x, _), _ = load_mnist(data_dir=tmp_path, mirrors=[server.base + "/good/"], timeout=5)
    assert x.shape == (N_TRAIN, 784)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path, server, checksums):
    name = FILES["test_label"]
    d = tmp_path / "mnist"
    d.mkdir()
    dead = d / f".{name}.{_dead_pid()}.abc123.tmp"
    alive = d / f".{name}.{os.getpid()}.xyz789.tmp"  # a download running now
    unnamed_old = d / f".{name}.nopid.part"  # bp_xp 0.1's temp files had no pid
    unnamed_new = d / f".{name}.nopid2.part"
    other = d / f".{FILES['test_img']}.{_dead_pid()}.q.tmp"  # another file's: not touched
    for p in (dead, alive, unnamed_old, unnamed_new, other):
        p.write_bytes(b"partial")
    os.utime(unnamed_old, (time.time() - 2 * 86400,) * 2)
    bd.download_file(name, d, [server.base + "/good/"], checksums[name], timeout=5)
    assert leftovers(d) == sorted([name, alive.name, unnamed_new.name, other.name])


@pytest.mark.slow
def test_kill_9_during_download_leaves_nothing_on_next_run(tmp_path, server, checksums):
    name = FILES["train_img"]
    d = tmp_path / "mnist"
    code = (
        "import sys\nfrom bp_xp.data import download_file\n"
        "download_file(sys.argv[1], sys.argv[2], [sys.argv[3]], sys.argv[4], timeout=30)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, name, str(d), f"{server.base}/stall/", checksums[name]]
    )
    try:
        deadline = time.monotonic() + 20
        while not any(p.endswith(".tmp") for p in leftovers(d)):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    stray = leftovers(d)
    assert len(stray) == 1 and stray[0].startswith(f".{name}.{proc.pid}.")  # what kill -9 leaves
    bd.download_file(name, d, [server.base + "/good/"], checksums[name], timeout=5)
    assert leftovers(d) == [name]


def test_local_write_errors_name_the_users_path(tmp_path, server, checksums, monkeypatch):
    name = FILES["test_label"]
    d = tmp_path / "mnist"

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(src), None, str(dst))

    monkeypatch.setattr(bd._download.os, "replace", refuse)
    with pytest.raises(DatasetError, match="cannot write") as info:
        bd.download_file(name, d, [server.base + "/good/"], checksums[name], timeout=5)
    assert str(d / name) in str(info.value) and ".tmp" not in str(info.value)
    assert leftovers(d) == []
    assert sum(h.startswith("/good/") for h in server.hits) == 1  # not retried per mirror


# ---------------------------------------------------------------------------
# one_hot refuses what it cannot encode (issue 10)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "labels, match",
    [
        (np.array([0, -1, 2]), "label -1 at index 1 is out of range 0..2"),
        (np.array([0, 3]), "label 3 at index 1 is out of range 0..2"),
        (np.array([255], np.uint8), "label 255 at index 0 is out of range 0..2"),
        (np.array([0.0, 1.7]), "label 1.7 at index 1 is not an integer"),
        (np.array([0.0, np.nan]), "label nan at index 1 is not an integer"),
        (np.array([0.0, 2.0]), "integer dtype, got float64"),
        (np.array([True, False]), "integer dtype, got bool"),
        (np.zeros((2, 1), np.int64), r"1-D of shape \(N,\), got shape \(2, 1\)"),
        (np.int64(1), r"got shape \(\)"),
    ],
    ids=["neg", "high", "uint8-255", "frac", "nan", "whole-float", "bool", "2d", "0d"],
)
def test_one_hot_refuses_bad_labels(labels, match):
    before = np.array(labels, copy=True)
    with pytest.raises(DatasetError, match=match):
        bd.one_hot(labels, 3)
    np.testing.assert_array_equal(labels, before)


@pytest.mark.parametrize("k", [0, -2, 2.0, True])
def test_one_hot_refuses_bad_num_classes(k):
    with pytest.raises(DatasetError, match="num_classes"):
        bd.one_hot(np.array([0]), k)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32, np.int64, np.uint64])
def test_one_hot_matches_identity_rows(dtype):
    labels = np.array([2, 0, 1, 2], dtype=dtype)
    ro = labels.copy()
    ro.setflags(write=False)
    np.testing.assert_array_equal(bd.one_hot(ro, 3), np.eye(3, dtype=np.float32)[[2, 0, 1, 2]])
    assert bd.one_hot(labels[:0], 3).shape == (0, 3)


# ---------------------------------------------------------------------------
# validate_dataset: after the dtype cast, range warning, label messages (issue 10)
# ---------------------------------------------------------------------------
def _torch_float32():
    torch = pytest.importorskip("torch")
    return torch.float32


@pytest.mark.parametrize(
    "dtype", ["float32", np.float32, "torch", "strict"], ids=["str", "np", "torch", "strict"]
)
def test_validate_checks_after_cast(dtype):
    if dtype == "torch":
        dtype = _torch_float32()
    elif dtype == "strict":
        dtype = pytest.importorskip("array_api_strict").float32
    x = np.zeros((3, 4))
    x[2, 1] = 1e300  # finite in float64, inf in float32
    x[0, 0] = 3e38  # still fits float32
    validate_dataset(x, T, 3, max_abs=None)  # fine before the cast
    with pytest.raises(DatasetError,
                       match=r"1 inf value\(s\) after conversion from float64 to float32.*row 2"):
        validate_dataset(x, T, 3, dtype=dtype, max_abs=None)
    assert x[2, 1] == 1e300  # not modified


def test_validate_cast_checks_one_hot_rows():
    t = np.eye(3)
    t[1] = [1e300, -1e300, 1.0]  # not a valid row anyway; after the cast it holds inf
    with pytest.raises(DatasetError, match="row 1 contains NaN or inf"):
        validate_dataset(X, t, 3, dtype=np.float32)


def test_validate_checks_in_blocks_without_full_copy():
    x = np.zeros((4096, 1024))  # 32 MiB float64 checked for float32
    x[4000, 3] = 1e39
    tracemalloc.start()
    with pytest.raises(DatasetError, match="row 4000"):
        validate_dataset(x, np.zeros(4096, np.int64), 10, dtype=np.float32)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 12 << 20  # a full float32 copy alone would be 16 MiB


def test_validate_warns_on_raw_pixels():
    raw = np.random.default_rng(0).integers(0, 256, (5, 784), dtype=np.uint8)
    raw[0, 0] = 255
    t = np.arange(5) % 3
    with pytest.warns(bd.DataRangeWarning, match=r"magnitude 255.*raw 0..255 pixels.*x / 255"):
        validate_dataset(raw, t, 3, dtype=np.float32)
    with pytest.warns(bd.DataRangeWarning):
        validate_dataset(raw.astype(np.float32), t, 3)
    with pytest.warns(bd.DataRangeWarning, match="magnitude 500"):
        validate_dataset(-5 * raw.astype(np.float32) / 2.55, t, 3, max_abs=400)
    # scaled pixels, standardised data and an explicit opt-out pass silently
    validate_dataset(raw / np.float32(255), t, 3, dtype=np.float32)
    validate_dataset((raw - 127.5) / 40.0, t, 3)
    validate_dataset(raw, t, 3, max_abs=None)
    assert issubclass(bd.DataRangeWarning, UserWarning)


def test_validate_names_all_bad_labels():
    t = np.array([0, 10, 3, -1, 10, 255, 9])
    with pytest.raises(DatasetError) as info:
        validate_dataset(np.zeros((7, 2)), t, 10)
    msg = str(info.value)
    assert "label 10 at index 1 is out of range 0..9 (num_classes=10)" in msg
    assert "3 label(s) out of range" not in msg and "4 label(s) out of range" in msg
    assert "values [-1, 10, 255]" in msg


def test_validate_refuses_label_dtype_too_narrow():
    t = np.arange(300).astype(np.uint8)  # 256.. wrapped to 0..43
    with pytest.raises(DatasetError, match="uint8 hold at most 255 but num_classes=300"):
        validate_dataset(np.zeros((300, 2)), t, 300)
    validate_dataset(np.zeros((300, 2)), np.arange(300), 300)


def test_validate_bad_dtype_argument():
    with pytest.raises(TypeError, match="cannot interpret"):
        validate_dataset(X, T, 3, dtype="not-a-dtype")
    assert bd.host_dtype(_torch_float32()) == np.float32
