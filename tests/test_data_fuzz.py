"""Hypothesis fuzzing of IDX parsing: only bp_xp's own DatasetError may escape.

Crafted or damaged bytes (random headers, huge declared dimensions,
truncations, byte flips, insertions of a valid file, random gzip streams) are
fed to :func:`bp_xp.data.parse_idx` and to :func:`bp_xp.data.read_idx` as plain
and gzip files.  Whatever happens, the reader either returns the array the
bytes describe (checked against an independent decoder: :func:`gzip.decompress`
plus :func:`numpy.frombuffer`) or raises exactly :class:`DatasetError` naming
the file, never ValueError, OSError, EOFError, zlib.error, MemoryError or
struct.error.  Each test is bounded: 300 examples of at most a few KB.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bp_xp.data import IDX_DTYPES, DatasetError, parse_idx, read_idx

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure reproduces
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

CODES = sorted(IDX_DTYPES) + [0x00, 0x07, 0x0A, 0x0F, 0xFF]


def _header(code: int, dims: list[int]) -> bytes:
    return struct.pack(">BBBB", 0, 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)


def _valid_plain() -> bytes:
    arr = np.arange(2 * 3 * 4, dtype=">i2").reshape(2, 3, 4) - 7
    return _header(0x0B, [2, 3, 4]) + arr.tobytes()


VALID = _valid_plain()
VALID_GZ = gzip.compress(VALID, mtime=0)


def _reference(raw: bytes) -> np.ndarray | None:
    """Independent decoder of an uncompressed IDX file; None if invalid."""
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] not in IDX_DTYPES or not 1 <= raw[3] <= 32:
        return None
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        return None
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = IDX_DTYPES[raw[2]]
    count = int(np.prod(dims, dtype=object))
    if len(raw) != 4 + 4 * ndim + count * dtype.itemsize:
        return None
    return np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(dims)


def _check(path: Path, content: bytes, *, is_gzip: bool) -> None:
    path.write_bytes(content)
    try:
        got = read_idx(path)
    except DatasetError as exc:
        assert type(exc) is DatasetError
        assert str(path) in str(exc)
        return
    # It parsed: it must be what an independent decoder makes of the bytes.
    raw = gzip.decompress(content) if is_gzip else content
    want = _reference(raw)
    assert want is not None, "read_idx accepted bytes the reference decoder refuses"
    assert got.dtype == want.dtype.newbyteorder("=") and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


headers = st.builds(
    lambda code, dims, payload: _header(code, dims) + payload,
    st.sampled_from(CODES),
    st.lists(
        st.one_of(st.integers(0, 4), st.integers(0, 2**32 - 1), st.just(2**32 - 1)),
        min_size=0,
        max_size=70,
    ),
    st.binary(max_size=64),
)


@st.composite
def mutants(draw: st.DrawFn) -> bytes:
    """A valid plain IDX file with flips, truncation, insertion or extension."""
    data = bytearray(VALID)
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= draw(st.integers(1, 255))
    kind = draw(st.sampled_from(["none", "truncate", "insert", "extend"]))
    if kind == "truncate":
        del data[draw(st.integers(0, len(data))) :]
    elif kind == "insert":
        i = draw(st.integers(0, len(data)))
        data[i:i] = draw(st.binary(min_size=1, max_size=8))
    elif kind == "extend":
        data += draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


@st.composite
def gzip_mutants(draw: st.DrawFn) -> bytes:
    """A valid gzip IDX file with damage anywhere, including its zlib stream."""
    data = bytearray(VALID_GZ)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= draw(st.integers(1, 255))
    if draw(st.booleans()):
        del data[draw(st.integers(2, len(data))) :]
    if draw(st.booleans()):
        data += draw(st.sampled_from([b"", bytes(3), b"junk", VALID_GZ]))
    return bytes(data)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(content=st.one_of(st.binary(max_size=200), headers, mutants()))
def test_plain_idx_only_raises_dataset_error(fuzz_dir, content):
    _check(fuzz_dir / "plain-idx-ubyte", content, is_gzip=False)
    # parse_idx on the same bytes agrees with read_idx
    try:
        arr = parse_idx(content, source="bytes")
    except DatasetError as exc:
        assert type(exc) is DatasetError and "bytes" in str(exc)
    else:
        np.testing.assert_array_equal(arr, _reference(content))


@pytest.mark.slow  # gzip around every example: seconds; the plain-IDX fuzz stays fast
@FUZZ
@given(content=st.one_of(headers, mutants(), st.binary(max_size=200)))
def test_gzip_of_crafted_idx_only_raises_dataset_error(fuzz_dir, content):
    _check(fuzz_dir / "gz-idx-ubyte.gz", gzip.compress(content, mtime=0), is_gzip=True)


@pytest.mark.slow  # gzip around every example: seconds; the plain-IDX fuzz stays fast
@FUZZ
@given(content=st.one_of(gzip_mutants(), st.binary(max_size=200).map(lambda b: b"\x1f\x8b" + b)))
def test_damaged_gzip_only_raises_dataset_error(fuzz_dir, content):
    path = fuzz_dir / "damaged-idx-ubyte.gz"
    try:
        gzip.decompress(content)
        reference_ok = True
    except (EOFError, OSError, zlib.error):
        reference_ok = False
    path.write_bytes(content)
    try:
        got = read_idx(path)
    except DatasetError as exc:
        assert type(exc) is DatasetError and str(path) in str(exc)
        return
    assert reference_ok, "read_idx accepted a gzip stream that gzip.decompress refuses"
    np.testing.assert_array_equal(got, _reference(gzip.decompress(content)))
