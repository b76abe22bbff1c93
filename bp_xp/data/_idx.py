"""Reader and writer for the IDX file format used by MNIST.

An IDX file is a tiny header followed by a dense big-endian array::

    byte 0-1   0x00 0x00           (the first half of the magic number)
    byte 2     dtype code          (0x08 uint8, 0x09 int8, 0x0B int16,
                                    0x0C int32, 0x0D float32, 0x0E float64)
    byte 3     number of dimensions, ndim
    4*ndim     each dimension as a big-endian uint32
    rest       prod(dims) items of the dtype, big-endian, C order

The four MNIST files are IDX files, usually distributed gzip-compressed.
This module parses both forms with the standard library and NumPy only, and
checks every field: a truncated download, an HTML error page saved under the
wrong name or any other foreign file raises :class:`~bp_xp.data.DatasetError`
naming the file and the field that is wrong, instead of producing a garbage
array or an obscure ``reshape`` error far away from the cause.

Reads are bounded: the header is parsed and checked (number of dimensions,
the caller's expected dtype/shape/size, the size the file can actually hold)
*before* anything is allocated or inflated, a gzip stream is inflated
incrementally and never past the declared size plus one byte, and the array is
filled in place (one allocation of the declared size, no intermediate copies).
A small crafted file therefore cannot make the reader allocate or inflate much
more than the data it really contains.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple, Union

import numpy as np

from ._errors import DatasetError

__all__ = ["IDX_DTYPES", "IDX_MAX_NDIM", "parse_idx", "read_idx", "write_idx"]

PathLike = Union[str, "os.PathLike[str]"]
ShapeSpec = Sequence[int | None]

#: IDX dtype code -> big-endian NumPy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: Most dimensions an IDX header may declare (NumPy 1.x's limit; the format
#: allows 255, which no NumPy array can have).
IDX_MAX_NDIM = 32

_GZIP_MAGIC = b"\x1f\x8b"
# Deflate cannot expand data by more than about 1032:1, so a gzip file of S
# bytes holds at most this many bytes per compressed byte (plus a constant).
_DEFLATE_MAX_RATIO = 1032
_CHUNK = 1 << 16


class _Header(NamedTuple):
    dtype: np.dtype  # big-endian, as stored
    dims: tuple[int, ...]
    header_len: int
    n_items: int  # number of items (not `count`, which would shadow tuple.count)
    nbytes: int  # payload bytes

    @property
    def total(self) -> int:
        return self.header_len + self.nbytes

    def describe(self) -> str:
        return (
            f"shape {self.dims} of {self.dtype.newbyteorder('=').name} "
            f"({self.total} bytes in all)"
        )


def _describe_prefix(data: bytes) -> str:
    """Say what a non-IDX prefix looks like, to make the error actionable."""
    head = data[:16].lstrip()
    if head[:1] == b"<":
        return " (it looks like an HTML/XML page, e.g. an error page saved as the file)"
    if data[:4] == b"PK\x03\x04":
        return " (it looks like a ZIP archive)"
    if data[:2] == _GZIP_MAGIC:
        return " (it is gzip data nested inside gzip data)"
    return ""


def _parse_magic(magic: bytes, source: str) -> tuple[np.dtype, int]:
    """Check the 4-byte magic number; return (stored dtype, ndim)."""
    if len(magic) < 4:
        raise DatasetError(
            f"{source}: not an IDX file: only {len(magic)} byte(s), "
            "shorter than the 4-byte magic number (empty or truncated file?)"
        )
    if magic[0] != 0 or magic[1] != 0:
        raise DatasetError(
            f"{source}: not an IDX file: bad magic number 0x{magic[:4].hex()}; "
            f"the first two bytes must be 0x00 0x00{_describe_prefix(magic)}"
        )
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DatasetError(
            f"{source}: not an IDX file: unknown dtype code 0x{code:02X} in magic "
            f"number 0x{magic[:4].hex()} (known codes: {known})"
        )
    if ndim == 0:
        raise DatasetError(f"{source}: IDX header declares 0 dimensions; at least 1 is required")
    if ndim > IDX_MAX_NDIM:
        raise DatasetError(
            f"{source}: IDX header declares {ndim} dimensions; at most {IDX_MAX_NDIM} "
            "are supported (corrupt or foreign file?)"
        )
    return IDX_DTYPES[code], ndim


def _parse_dims(dtype: np.dtype, ndim: int, raw: bytes, source: str, got: int) -> _Header:
    header_len = 4 + 4 * ndim
    if len(raw) < 4 * ndim:
        raise DatasetError(
            f"{source}: truncated IDX header: {ndim} dimension(s) need {header_len} "
            f"header bytes but the file has only {got}"
        )
    dims = struct.unpack(f">{ndim}I", raw[: 4 * ndim])
    count = 1
    nonzero = 1
    for d in dims:
        count *= d  # Python int: no overflow on hostile headers
        nonzero *= max(d, 1)
    if nonzero * dtype.itemsize > np.iinfo(np.intp).max:
        # Even an empty array (a 0 among the dims) of this shape cannot exist.
        raise DatasetError(
            f"{source}: IDX header declares shape {dims}, too large for any array "
            "on this machine (corrupt or crafted file?)"
        )
    return _Header(dtype, dims, header_len, count, count * dtype.itemsize)


def _fmt_shape(shape: ShapeSpec) -> str:
    inner = ", ".join("N" if s is None else str(s) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def _check_expected(
    h: _Header,
    source: str,
    dtype: np.dtype | type | str | None,
    shape: ShapeSpec | None,
    max_items: int | None,
) -> None:
    """Compare the header with what the caller expects, before any allocation."""
    native = h.dtype.newbyteorder("=")
    if dtype is not None and native != np.dtype(dtype).newbyteorder("="):
        raise DatasetError(
            f"{source}: expected IDX data of dtype {np.dtype(dtype).name}, "
            f"but the header declares {native.name} {h.dims}"
        )
    if shape is not None:
        ok = len(shape) == len(h.dims) and all(
            s is None or s == d for s, d in zip(shape, h.dims)
        )
        if not ok:
            raise DatasetError(
                f"{source}: expected IDX data of shape {_fmt_shape(shape)}, "
                f"but the header declares shape {h.dims}"
            )
    if max_items is not None and h.n_items > max_items:
        raise DatasetError(
            f"{source}: IDX header declares {h.n_items} items {h.dims}, more than the "
            f"{max_items} expected at most (corrupt or crafted file?)"
        )


def _size_error(h: _Header, source: str, actual: int | str, *, short: bool) -> DatasetError:
    what = "truncated" if short else "has trailing bytes"
    return DatasetError(
        f"{source}: IDX file {what}: header says {h.describe()} but the file has {actual} bytes"
    )


def _to_native(arr: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    """Big-endian bytes in a native-dtype array -> values, in place."""
    if arr.dtype.itemsize > 1 and sys.byteorder == "little":
        arr.byteswap(inplace=True)
    return arr.reshape(dims)


def parse_idx(
    data: bytes,
    *,
    source: str = "<bytes>",
    dtype: np.dtype | type | str | None = None,
    shape: ShapeSpec | None = None,
    max_items: int | None = None,
) -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file.

    Parameters
    ----------
    data : bytes-like
        The whole file content, header included, *not* gzip-compressed.
    source : str, optional
        Name used in error messages (usually the file path).
    dtype, shape, max_items : optional
        What the caller expects: see :func:`read_idx`.

    Returns
    -------
    numpy.ndarray
        A new, writable, native-byte-order array with the file's shape.

    Raises
    ------
    DatasetError
        If the magic number, dtype code, dimensions or byte length are wrong,
        or the header does not match ``dtype``/``shape``/``max_items``.

    Examples
    --------
    >>> import struct
    >>> from bp_xp.data import parse_idx
    >>> raw = struct.pack(">BBBB", 0, 0, 0x08, 1) + struct.pack(">I", 3) + bytes([7, 8, 9])
    >>> parse_idx(raw)
    array([7, 8, 9], dtype=uint8)
    """
    view = memoryview(data).cast("B")
    stored, ndim = _parse_magic(bytes(view[:4]), source)
    h = _parse_dims(stored, ndim, bytes(view[4 : 4 + 4 * ndim]), source, len(view))
    _check_expected(h, source, dtype, shape, max_items)
    if len(view) != h.total:
        raise _size_error(h, source, len(view), short=len(view) < h.total)
    out = np.empty(h.n_items, dtype=stored.newbyteorder("="))
    out.data.cast("B")[:] = view[h.header_len :]
    return _to_native(out, h.dims)


class _Inflater:
    """Incremental gzip reader that never inflates more than it is asked for.

    Handles concatenated gzip members (as :func:`gzip.decompress` does) and
    trailing zero padding; verifies every member's CRC and length.
    """

    def __init__(self, fh: BinaryIO, source: str) -> None:
        self._fh = fh
        self._source = source
        self._z = zlib.decompressobj(wbits=31)
        self._pending = b""  # compressed input not yet given to zlib
        self.inflated = 0

    def _fail(self, exc: BaseException | str) -> DatasetError:
        why = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        return DatasetError(f"{self._source}: corrupt or truncated gzip stream ({why})")

    def read(self, n: int) -> bytes:
        """Return up to ``n`` inflated bytes; fewer only at the end of the data."""
        parts: list[bytes] = []
        want = n
        while want > 0:
            if self._z.eof:  # between members: padding, another member, or the end
                rest = (self._z.unused_data + self._pending).lstrip(b"\x00")
                while not rest:
                    more = self._fh.read(_CHUNK)
                    if not more:
                        return b"".join(parts)
                    rest = more.lstrip(b"\x00")
                self._z = zlib.decompressobj(wbits=31)
                self._pending = rest
            if not self._pending:
                self._pending = self._fh.read(_CHUNK)
            try:
                # With no input left this flushes output zlib still holds.
                block = self._z.decompress(self._pending, want)
            except zlib.error as exc:
                raise self._fail(exc) from exc
            at_end = not self._pending
            # At the end of a member the rest is in unused_data (zlib may also
            # leave a copy of it in unconsumed_tail when max_length was hit).
            self._pending = b"" if self._z.eof else self._z.unconsumed_tail
            if block:
                parts.append(block)
                want -= len(block)
                self.inflated += len(block)
            elif at_end and not self._z.eof:
                raise self._fail("the data ends before the end of the gzip stream")
        return b"".join(parts)

    def readinto(self, buf: memoryview) -> int:
        done = 0
        while done < len(buf):
            block = self.read(min(len(buf) - done, 1 << 22))
            if not block:
                break
            buf[done : done + len(block)] = block
            done += len(block)
        return done


def _read_plain(fh: io.BufferedIOBase, size: int, source: str, expect: tuple) -> np.ndarray:
    stored, ndim = _parse_magic(fh.read(4), source)
    h = _parse_dims(stored, ndim, fh.read(4 * ndim), source, size)
    _check_expected(h, source, *expect)
    if size != h.total:  # checked against the real size before allocating
        raise _size_error(h, source, size, short=size < h.total)
    out = np.empty(h.n_items, dtype=stored.newbyteorder("="))
    got = fh.readinto(out.data.cast("B"))
    if got != h.nbytes or fh.read(1):  # the file changed under us
        raise _size_error(h, source, f"{h.header_len + got}+", short=got != h.nbytes)
    return _to_native(out, h.dims)


def _read_gzip(fh: BinaryIO, size: int, source: str, expect: tuple) -> np.ndarray:
    z = _Inflater(fh, source)
    magic = z.read(4)
    stored, ndim = _parse_magic(magic, source)
    dims_raw = z.read(4 * ndim)
    h = _parse_dims(stored, ndim, dims_raw, source, 4 + len(dims_raw))
    _check_expected(h, source, *expect)
    limit = _DEFLATE_MAX_RATIO * size + 1024
    if h.total > limit:
        raise DatasetError(
            f"{source}: IDX header declares {h.describe()}, more than a {size}-byte "
            f"gzip file can hold (deflate expands at most {_DEFLATE_MAX_RATIO}:1): "
            "the file is truncated, corrupt or crafted"
        )
    out = np.empty(h.n_items, dtype=stored.newbyteorder("="))
    got = z.readinto(out.data.cast("B"))
    if got < h.nbytes:
        raise _size_error(h, source, f"{h.header_len + got} (decompressed)", short=True)
    if z.read(1):  # one byte past the declared size is enough to refuse
        raise DatasetError(
            f"{source}: IDX file has trailing bytes: header says {h.describe()} but the "
            "decompressed data is longer (stopped reading after one extra byte)"
        )
    return _to_native(out, h.dims)


def read_idx(
    path: PathLike,
    *,
    dtype: np.dtype | type | str | None = None,
    shape: ShapeSpec | None = None,
    max_items: int | None = None,
) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw, with bounded memory.

    Compression is detected from the content (the gzip magic bytes), not from
    the file name, so a ``.gz`` file that was already unpacked still works.
    The header is checked before anything else is read: the number of
    dimensions (at most :data:`IDX_MAX_NDIM`), the caller's expectations, and
    the declared size against what the file can hold (its size, or for gzip
    the most that deflate can expand it to).  Then the array is allocated
    once and filled; a gzip stream is never inflated beyond the declared size
    plus one byte.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.
    dtype : numpy dtype, optional
        Refuse a file whose header declares another dtype.
    shape : sequence of int or None, optional
        Refuse a file whose shape differs; ``None`` entries match any length,
        e.g. ``(None, 28, 28)`` for MNIST images.
    max_items : int, optional
        Refuse a file that declares more items than this.

    Returns
    -------
    numpy.ndarray
        The array stored in the file (native byte order, writable).

    Raises
    ------
    DatasetError
        If the file is not a valid IDX file, does not match the expectations,
        is unreadable, or its gzip stream is corrupt, truncated or too long.
        The message names ``path``.
    FileNotFoundError
        If the file does not exist.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from bp_xp.data import read_idx, write_idx
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "x-idx1-ubyte.gz")
    ...     write_idx(p, np.arange(5, dtype=np.uint8))
    ...     read_idx(p, shape=(None,), max_items=10)
    array([0, 1, 2, 3, 4], dtype=uint8)
    """
    source = str(path)
    expect = (dtype, shape, max_items)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(2)
            fh.seek(0)
            if head == _GZIP_MAGIC:
                return _read_gzip(fh, size, source, expect)
            return _read_plain(fh, size, source, expect)
    except FileNotFoundError:
        raise
    except OSError as exc:  # a directory, no permission, an I/O error
        raise DatasetError(f"{source}: cannot read the file ({exc.strerror or exc})") from exc
    except MemoryError as exc:
        raise DatasetError(f"{source}: not enough memory for the array it declares") from exc


def write_idx(path: PathLike, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write an array as an IDX file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file.
    array : numpy.ndarray
        Array of dtype uint8, int8, int16, int32, float32 or float64 with 1 to
        :data:`IDX_MAX_NDIM` dimensions.
    compress : bool, optional
        Gzip the output.  Default: only if ``path`` ends with ``.gz``.

    Raises
    ------
    TypeError
        If the dtype has no IDX code.
    ValueError
        If the array is 0-d or has more than :data:`IDX_MAX_NDIM` dimensions.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from bp_xp.data import read_idx, write_idx
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "m-idx2-int")
    ...     write_idx(p, np.array([[1, -2]], dtype=np.int32))
    ...     read_idx(p)
    array([[ 1, -2]], dtype=int32)
    """
    array = np.asarray(array)
    native = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    key = array.dtype.newbyteorder("=")
    if key not in native:
        raise TypeError(f"write_idx: dtype {array.dtype} has no IDX code")
    if not 1 <= array.ndim <= IDX_MAX_NDIM:
        raise ValueError(f"write_idx: need 1 to {IDX_MAX_NDIM} dimensions, got {array.ndim}")
    header = struct.pack(">BBBB", 0, 0, native[key], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=key.newbyteorder(">")).tobytes()
    path = Path(path)
    if compress is None:
        compress = path.name.endswith(".gz")
    if compress:
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
