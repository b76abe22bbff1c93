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
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import Union

import numpy as np

from ._errors import DatasetError

__all__ = ["IDX_DTYPES", "parse_idx", "read_idx", "write_idx"]

PathLike = Union[str, "os.PathLike[str]"]

#: IDX dtype code -> big-endian NumPy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


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


def parse_idx(data: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file.

    Parameters
    ----------
    data : bytes
        The whole file content, header included, *not* gzip-compressed.
    source : str, optional
        Name used in error messages (usually the file path).

    Returns
    -------
    numpy.ndarray
        A new, writable, native-byte-order array with the file's shape.

    Raises
    ------
    DatasetError
        If the magic number, dtype code, dimensions or byte length are wrong.

    Examples
    --------
    >>> import struct
    >>> from bp_xp.data import parse_idx
    >>> raw = struct.pack(">BBBBI", 0, 0, 0x08, 1, 3) + bytes([7, 8, 9])
    >>> parse_idx(raw)
    array([7, 8, 9], dtype=uint8)
    """
    data = bytes(data)
    if len(data) < 4:
        raise DatasetError(
            f"{source}: not an IDX file: only {len(data)} byte(s), "
            "shorter than the 4-byte magic number (empty or truncated file?)"
        )
    if data[0] != 0 or data[1] != 0:
        raise DatasetError(
            f"{source}: not an IDX file: bad magic number 0x{data[:4].hex()}; "
            f"the first two bytes must be 0x00 0x00{_describe_prefix(data)}"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DatasetError(
            f"{source}: not an IDX file: unknown dtype code 0x{code:02X} in magic "
            f"number 0x{data[:4].hex()} (known codes: {known})"
        )
    if ndim == 0:
        raise DatasetError(f"{source}: IDX header declares 0 dimensions; at least 1 is required")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DatasetError(
            f"{source}: truncated IDX header: {ndim} dimension(s) need {header_len} "
            f"header bytes but the file has only {len(data)}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = IDX_DTYPES[code]
    count = 1
    for d in dims:
        count *= d  # Python int: no overflow on hostile headers
    expected = header_len + count * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise DatasetError(
            f"{source}: IDX file {what}: header says shape {tuple(dims)} of "
            f"{dtype.newbyteorder('=').name} ({expected} bytes in all) but the "
            f"file has {len(data)} bytes"
        )
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header_len)
    return arr.reshape(dims).astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw.

    Compression is detected from the content (the gzip magic bytes), not from
    the file name, so a ``.gz`` file that was already unpacked still works.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.

    Returns
    -------
    numpy.ndarray
        The array stored in the file (native byte order, writable).

    Raises
    ------
    DatasetError
        If the file is not a valid IDX file, or its gzip stream is corrupt or
        truncated.
    FileNotFoundError
        If the file does not exist.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from bp_xp.data import read_idx, write_idx
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "x-idx1-ubyte.gz")
    ...     write_idx(p, np.arange(5, dtype=np.uint8))
    ...     read_idx(p)
    array([0, 1, 2, 3, 4], dtype=uint8)
    """
    path = Path(path)
    data = path.read_bytes()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise DatasetError(
                f"{path}: corrupt or truncated gzip stream ({type(exc).__name__}: {exc})"
            ) from exc
    return parse_idx(data, source=str(path))


def write_idx(path: PathLike, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write an array as an IDX file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file.
    array : numpy.ndarray
        Array of dtype uint8, int8, int16, int32, float32 or float64 with at
        least one dimension.
    compress : bool, optional
        Gzip the output.  Default: only if ``path`` ends with ``.gz``.

    Raises
    ------
    TypeError
        If the dtype has no IDX code.
    ValueError
        If the array is 0-d or has more than 255 dimensions.

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
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"write_idx: need 1 to 255 dimensions, got {array.ndim}")
    header = struct.pack(">BBBB", 0, 0, native[key], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=key.newbyteorder(">")).tobytes()
    path = Path(path)
    if compress is None:
        compress = path.name.endswith(".gz")
    if compress:
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
