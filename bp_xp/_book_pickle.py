"""Read the book's parameter files (a pickled dict of NumPy arrays) without unpickling them.

The book's networks save their parameters with ``pickle.dump(params, f)``: a dict of
names to NumPy arrays (chapter 7's ``params.pkl``, chapter 8's
``deep_convnet_params.pkl``). ``pickle.load`` would run whatever a file names, so bp_xp
never calls it. This module is a reader for the few pickle opcodes such a file uses, run
as a small stack machine over the file's bytes, that builds nothing but what a
parameter file holds:

* the dict itself (or an ``OrderedDict``), its string keys;
* arrays, the three ways NumPy pickles them: ``_reconstruct(ndarray, (0,), b'b')`` then
  ``BUILD`` with ``(version, shape, dtype, fortran, bytes)`` (protocols 2 to 4), or
  ``_frombuffer(bytes, dtype, shape, order)`` (protocol 5), or ``scalar(dtype, bytes)``;
  under ``numpy.core`` (NumPy 1) or ``numpy._core`` (NumPy 2);
* ``dtype(descr, False, True)`` then ``BUILD`` with its byte order, for booleans,
  integers and floats only (no objects, strings or records);
* ``_codecs.encode(text, "latin1")`` and ``bytes()``: how protocol 2 writes bytes.

Any other global (``os.system``...), any other call, any other opcode is refused with
:class:`BookPickleError` naming it. Every length a file declares is checked against the
bytes that remain before anything is sliced; an array's declared shape must match its
bytes exactly before it is built; marks nest at most :data:`MAX_DEPTH` deep; the stack
and the memo are bounded; and the file itself is bounded by the caller (it is read
whole; bytes stay views of it and each array is built once, so what is held never exceeds
about twice its size).
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

__all__ = ["MAX_DEPTH", "BookPickleError", "is_pickle", "read_params"]

#: Deepest nesting of MARKs (tuples, lists, dicts being built) a parameter file needs.
MAX_DEPTH = 32
_MAX_STACK = 1_000_000
_MAX_MEMO = 1_000_000
_MAX_NDIM = 32
#: dtype kinds a parameter array may have: bool, signed and unsigned integers, floats.
_KINDS = "biuf"

_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_ALLOWED_GLOBALS = {
    **{(module, "_reconstruct"): "_reconstruct" for module in _NUMPY_MODULES},
    **{(module, "scalar"): "scalar" for module in _NUMPY_MODULES},
    ("numpy.core.numeric", "_frombuffer"): "_frombuffer",
    ("numpy._core.numeric", "_frombuffer"): "_frombuffer",
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    ("collections", "OrderedDict"): "OrderedDict",
    ("_codecs", "encode"): "encode",
    ("__builtin__", "bytes"): "bytes",  # protocol 2's empty bytes: bytes()
    ("builtins", "bytes"): "bytes",
}


class BookPickleError(ValueError):
    """A pickle file that is not a plain dict of NumPy arrays (or is damaged)."""


def is_pickle(head: bytes) -> bool:
    """Whether a file starting with ``head`` is a pickle of protocol 2 or newer."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


class _Global:
    """An allowed callable, by its role; never the real object."""

    def __init__(self, role: str, name: str) -> None:
        self.role, self.name = role, name


class _PendingArray:
    """``_reconstruct(ndarray, (0,), b'b')``: an array whose contents ``BUILD`` brings."""

    array: np.ndarray | None = None


class _PendingDtype:
    """``dtype(descr, False, True)``: a dtype whose byte order ``BUILD`` brings."""

    def __init__(self, dtype: np.dtype[Any]) -> None:
        self.dtype = dtype
        self.built = False


class _Mark:
    pass


def read_params(data: bytes) -> dict[str, np.ndarray]:
    """The dict of arrays pickled in ``data``: each array native-endian, C-ordered, new.

    Raises
    ------
    BookPickleError
        For anything that is not a dict of string keys to arrays of bool, integer or
        float dtype, or that is truncated or malformed; the message names the opcode,
        global or value and its byte offset.
    """
    return _Machine(memoryview(data)).run()


class _Machine:
    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.pos = 0
        self.stack: list[Any] = []
        self.marks: list[list[Any]] = []
        self.memo: dict[int, Any] = {}

    # -- reading ---------------------------------------------------------------------

    def error(self, message: str) -> BookPickleError:
        return BookPickleError(f"{message} (at byte {self.pos})")

    def take(self, n: int) -> memoryview:
        """The next ``n`` bytes; a length past the end is refused before slicing."""
        if n < 0 or n > len(self.data) - self.pos:
            raise self.error(f"a length of {n} bytes runs past the end of the file "
                             f"({len(self.data) - self.pos} bytes remain): it is truncated "
                             "or its lengths lie")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> Any:
        (value,) = struct.unpack(fmt, self.take(struct.calcsize(fmt)))
        return value

    def text(self, n: int) -> str:
        try:
            return str(self.take(n), "utf-8")
        except UnicodeDecodeError as exc:
            raise self.error(f"a string that is not UTF-8 ({exc.reason})") from None

    def push(self, value: Any) -> None:
        if len(self.stack) >= _MAX_STACK:
            raise self.error(f"more than {_MAX_STACK} values on the stack")
        self.stack.append(value)

    def pop(self) -> Any:
        if not self.stack:
            raise self.error("an opcode takes a value from an empty stack")
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise self.error("an opcode takes the values since a MARK, but there is none")
        items = self.stack
        self.stack = self.marks.pop()
        return items

    def memoize(self, index: int) -> None:
        if not self.stack:
            raise self.error("MEMOIZE/PUT with an empty stack")
        if len(self.memo) >= _MAX_MEMO and index not in self.memo:
            raise self.error(f"more than {_MAX_MEMO} memo entries")
        self.memo[index] = self.stack[-1]

    def recall(self, index: int) -> None:
        if index not in self.memo:
            raise self.error(f"GET of memo entry {index}, which was never stored")
        self.push(self.memo[index])

    # -- running -----------------------------------------------------------------------

    def run(self) -> dict[str, np.ndarray]:
        if not is_pickle(bytes(self.data[:2])):
            raise self.error("not a pickle of protocol 2 to 5")
        handlers = self._handlers()
        while True:
            if self.pos >= len(self.data):
                raise self.error("the file ends before the pickle's STOP: it is truncated")
            code = self.data[self.pos]
            self.pos += 1
            if code == 0x2E:  # STOP
                break
            handler = handlers.get(code)
            if handler is None:
                raise self.error(f"opcode {bytes([code])!r} is not one a parameter file "
                                 "uses; refused")
            handler()
        result = self.pop()
        if self.stack or self.marks:
            raise self.error("values left on the stack at STOP: not a pickle bp_xp reads")
        return self._finished(result)

    def _finished(self, result: Any) -> dict[str, np.ndarray]:
        if not isinstance(result, dict):
            raise BookPickleError(f"the file holds a {_kind(result)}, not a dict of arrays")
        params: dict[str, np.ndarray] = {}
        for key, value in result.items():
            if isinstance(value, _PendingArray):
                value = value.array
            if not isinstance(key, str) or not isinstance(value, np.ndarray):
                raise BookPickleError(f"entry {str(key)[:50]!r} is a {_kind(value)}, not an "
                                      "array: a parameter file is a dict of names to arrays")
            params[key] = value
        return params

    def _handlers(self) -> dict[int, Any]:
        def const(value: Any) -> Any:
            return lambda: self.push(value)

        return {
            0x80: lambda: self.take(1),                     # PROTO (checked in run)
            0x95: lambda: self.unpack("<Q"),                # FRAME: a size hint only
            0x28: self._mark,                               # MARK
            0x7D: lambda: self.push({}),                    # EMPTY_DICT
            0x5D: lambda: self.push([]),                    # EMPTY_LIST
            0x29: const(()),                                # EMPTY_TUPLE
            0x74: lambda: self.push(tuple(self.pop_mark())),  # TUPLE
            0x85: lambda: self.push((self.pop(),)),         # TUPLE1
            0x86: lambda: self._tuple(2),                   # TUPLE2
            0x87: lambda: self._tuple(3),                   # TUPLE3
            0x6C: lambda: self.push(list(self.pop_mark())),  # LIST
            0x64: lambda: self.push(self._pairs({}, self.pop_mark())),  # DICT
            0x61: self._append,                             # APPEND
            0x65: self._appends,                            # APPENDS
            0x73: self._setitem,                            # SETITEM
            0x75: self._setitems,                           # SETITEMS
            0x94: lambda: self.memoize(len(self.memo)),     # MEMOIZE
            0x71: lambda: self.memoize(self.unpack("<B")),  # BINPUT
            0x72: lambda: self.memoize(self.unpack("<I")),  # LONG_BINPUT
            0x68: lambda: self.recall(self.unpack("<B")),   # BINGET
            0x6A: lambda: self.recall(self.unpack("<I")),   # LONG_BINGET
            0x30: self.pop,                                 # POP
            0x31: self.pop_mark,                            # POP_MARK
            0x8C: lambda: self.push(self.text(self.unpack("<B"))),  # SHORT_BINUNICODE
            0x58: lambda: self.push(self.text(self.unpack("<I"))),  # BINUNICODE
            0x8D: lambda: self.push(self.text(self.unpack("<Q"))),  # BINUNICODE8
            # bytes stay views of the file's data: an array is its only copy
            0x43: lambda: self.push(self.take(self.unpack("<B"))),  # SHORT_BINBYTES
            0x42: lambda: self.push(self.take(self.unpack("<I"))),  # BINBYTES
            0x8E: lambda: self.push(self.take(self.unpack("<Q"))),  # BINBYTES8
            0x96: lambda: self.push(self.take(self.unpack("<Q"))),  # BYTEARRAY8
            # Python 2's str, as pickle.load(encoding="latin1") reads it
            0x55: lambda: self.push(str(self.take(self.unpack("<B")), "latin1")),  # SHORT_BINSTRING
            0x54: lambda: self.push(str(self.take(self._length("<i")), "latin1")),  # BINSTRING
            0x4B: lambda: self.push(self.unpack("<B")),     # BININT1
            0x4D: lambda: self.push(self.unpack("<H")),     # BININT2
            0x4A: lambda: self.push(self.unpack("<i")),     # BININT
            0x8A: self._long1,                              # LONG1
            0x47: lambda: self.push(self.unpack(">d")),     # BINFLOAT
            0x4E: const(None),                              # NONE
            0x88: const(True),                              # NEWTRUE
            0x89: const(False),                             # NEWFALSE
            0x63: self._global,                             # GLOBAL
            0x93: self._stack_global,                       # STACK_GLOBAL
            0x52: self._reduce,                             # REDUCE
            0x62: self._build,                              # BUILD
        }

    # -- containers ----------------------------------------------------------------------

    def _mark(self) -> None:
        if len(self.marks) >= MAX_DEPTH:
            raise self.error(f"values nested more than {MAX_DEPTH} deep: not a parameter file")
        self.marks.append(self.stack)
        self.stack = []

    def _tuple(self, n: int) -> None:
        if len(self.stack) < n:
            raise self.error(f"TUPLE{n} with {len(self.stack)} values on the stack")
        items = tuple(self.stack[-n:])
        del self.stack[-n:]
        self.push(items)

    def _length(self, fmt: str) -> int:
        n = int(self.unpack(fmt))
        if n < 0:
            raise self.error(f"a negative length {n}")
        return n

    def _long1(self) -> None:
        n = self.unpack("<B")
        if n > 8:
            raise self.error(f"an integer of {n} bytes: no count or size of a parameter file")
        self.push(int.from_bytes(self.take(n), "little", signed=True))

    def _append(self) -> None:
        value = self.pop()
        target = self.stack[-1] if self.stack else None
        if not isinstance(target, list):
            raise self.error(f"APPEND to a {_kind(target)}")
        target.append(value)

    def _appends(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1] if self.stack else None
        if not isinstance(target, list):
            raise self.error(f"APPENDS to a {_kind(target)}")
        target.extend(items)

    def _setitem(self) -> None:
        value, key = self.pop(), self.pop()
        target = self.pop()
        if not isinstance(target, dict):
            raise self.error(f"SETITEM on a {_kind(target)}")
        self.push(self._pairs(target, [key, value]))

    def _setitems(self) -> None:
        items = self.pop_mark()
        target = self.pop()
        if not isinstance(target, dict):
            raise self.error(f"SETITEMS on a {_kind(target)}")
        self.push(self._pairs(target, items))

    def _pairs(self, target: dict[Any, Any], items: list[Any]) -> dict[Any, Any]:
        if len(items) % 2:
            raise self.error("a dict built from an odd number of values")
        for key, value in zip(items[::2], items[1::2]):
            if not isinstance(key, str):
                raise self.error(f"a dict key that is a {_kind(key)}, not a name")
            target[key] = value
        return target

    # -- globals and calls ---------------------------------------------------------------

    def _global(self) -> None:
        line_end = bytes(self.data[self.pos:self.pos + 512]).find(b"\n")
        module = str(self.take(line_end + 1 if line_end >= 0 else 513)[:-1], "latin1")
        line_end = bytes(self.data[self.pos:self.pos + 512]).find(b"\n")
        name = str(self.take(line_end + 1 if line_end >= 0 else 513)[:-1], "latin1")
        self.push(self._allowed(module, name))

    def _stack_global(self) -> None:
        name, module = self.pop(), self.pop()
        if not isinstance(module, str) or not isinstance(name, str):
            raise self.error("STACK_GLOBAL of values that are not names")
        self.push(self._allowed(module, name))

    def _allowed(self, module: str, name: str) -> _Global:
        role = _ALLOWED_GLOBALS.get((module, name))
        if role is None:
            raise self.error(f"the file names the global {module[:80]}.{name[:80]}, which a "
                             "parameter file never does; refused (bp_xp never unpickles)")
        return _Global(role, f"{module}.{name}")

    def _reduce(self) -> None:
        args, func = self.pop(), self.pop()
        if not isinstance(func, _Global):
            raise self.error(f"a call of a {_kind(func)}; refused")
        if not isinstance(args, tuple):
            raise self.error(f"{func.name} called with a {_kind(args)} of arguments")
        self.push(getattr(self, f"_call_{func.role}", self._not_callable)(func, args))

    def _not_callable(self, func: _Global, args: tuple[Any, ...]) -> Any:
        raise self.error(f"a call of {func.name}; refused")

    def _call_OrderedDict(self, func: _Global, args: tuple[Any, ...]) -> Any:  # noqa: N802
        if args:
            raise self.error(f"{func.name} called with arguments; refused")
        return {}

    def _call_bytes(self, func: _Global, args: tuple[Any, ...]) -> Any:
        if args:
            raise self.error(f"{func.name} called with arguments; refused")
        return b""

    def _call_encode(self, func: _Global, args: tuple[Any, ...]) -> Any:
        if (len(args) != 2 or not isinstance(args[0], str) or args[1] != "latin1"):
            raise self.error(f"{func.name} called with other than (text, 'latin1'); refused")
        try:
            return args[0].encode("latin1")
        except UnicodeEncodeError:
            raise self.error("_codecs.encode of text that is not latin-1") from None

    def _call_dtype(self, func: _Global, args: tuple[Any, ...]) -> Any:
        if len(args) != 3 or not isinstance(args[0], str) or args[1:] not in ((False, True),
                                                                              (0, 1)):
            raise self.error(f"numpy.dtype called with {_short(args)}; refused")
        if len(args[0]) > 8:
            raise self.error(f"dtype {args[0][:20]!r} is not one of a parameter array")
        try:
            dtype = np.dtype(args[0])
        except TypeError:
            raise self.error(f"dtype {args[0]!r} is not one NumPy knows") from None
        if dtype.kind not in _KINDS or dtype.fields is not None or dtype.subdtype is not None:
            raise self.error(f"dtype {args[0]!r} is not one of a parameter array (bool, "
                             "integers and floats only)")
        return _PendingDtype(dtype)

    def _call__reconstruct(self, func: _Global, args: tuple[Any, ...]) -> Any:
        if (len(args) != 3 or not isinstance(args[0], _Global) or args[0].role != "ndarray"
                or args[1] != (0,) or args[2] not in (b"b", "b")):
            raise self.error(f"{func.name} called with other than (ndarray, (0,), b'b'); refused")
        return _PendingArray()

    def _call_scalar(self, func: _Global, args: tuple[Any, ...]) -> Any:
        if len(args) != 2:
            raise self.error(f"{func.name} called with {len(args)} arguments; refused")
        return self._array(self._dtype(args[0]), (), args[1], fortran=False)

    def _call__frombuffer(self, func: _Global, args: tuple[Any, ...]) -> Any:
        if len(args) != 4 or args[3] not in ("C", "F"):
            raise self.error(f"{func.name} called with other than (bytes, dtype, shape, order)")
        return self._array(self._dtype(args[1]), args[2], args[0], fortran=args[3] == "F")

    def _build(self) -> None:
        state = self.pop()
        target = self.stack[-1] if self.stack else None
        if isinstance(target, _PendingDtype) and not target.built:
            target.dtype = self._byte_order(target.dtype, state)
            target.built = True
        elif isinstance(target, _PendingArray) and target.array is None:
            if not isinstance(state, tuple) or len(state) != 5 or state[0] != 1:
                raise self.error("an array's state is not (1, shape, dtype, fortran, bytes)")
            _, shape, dtype, fortran, raw = state
            if not isinstance(fortran, bool):
                raise self.error("an array's fortran flag is not a bool")
            target.array = self._array(self._dtype(dtype), shape, raw, fortran=fortran)
        else:
            raise self.error(f"BUILD of a {_kind(target)}; refused (only arrays and dtypes)")

    def _byte_order(self, dtype: np.dtype[Any], state: Any) -> np.dtype[Any]:
        if (not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4)
                or state[1] not in ("<", ">", "|", "=")
                or state[2:5] != (None, None, None) or state[5:8] not in ((-1, -1, 0),)
                or (len(state) == 9 and state[8] is not None)):
            raise self.error(f"a dtype state {_short(state)} that is not a plain number's")
        order = state[1]
        return dtype if order in ("|", "=") else dtype.newbyteorder(order)

    def _dtype(self, value: Any) -> np.dtype[Any]:
        if not isinstance(value, _PendingDtype):
            raise self.error(f"an array whose dtype is a {_kind(value)}")
        return value.dtype

    def _array(self, dtype: np.dtype[Any], shape: Any, raw: Any, *, fortran: bool) -> np.ndarray:
        if isinstance(raw, str):  # Python 2's str read as latin-1
            raw = raw.encode("latin1")
        if not isinstance(raw, (bytes, memoryview)):
            raise self.error(f"an array's data is a {_kind(raw)}, not bytes")
        if (not isinstance(shape, tuple) or len(shape) > _MAX_NDIM
                or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                           for n in shape)):
            raise self.error(f"an array shape {_short(shape)} that is not a tuple of at most "
                             f"{_MAX_NDIM} non-negative integers")
        expected = math.prod(shape) * dtype.itemsize
        if expected != len(raw):
            raise self.error(f"an array declares shape {shape} of {dtype} ({expected} bytes) "
                             f"but holds {len(raw)} bytes")
        flat = np.frombuffer(raw, dtype=dtype)
        array = flat.reshape(shape, order="F" if fortran else "C")
        return np.array(array, dtype=dtype.newbyteorder("="), order="C", copy=True)  # writable


def _short(value: Any) -> str:
    """A value for a message: scalars and flat tuples of them shown, anything else by kind.

    Never ``repr`` of an arbitrary value: a crafted file can nest lists deeper than
    ``repr`` can recurse.
    """
    plain = (str, int, float, bool, type(None))
    if isinstance(value, plain):
        return repr(value)[:40]
    if isinstance(value, tuple) and len(value) <= 10 and all(isinstance(v, plain) for v in value):
        return repr(value)[:80]
    return f"a {_kind(value)}"


def _kind(value: Any) -> str:
    if isinstance(value, _Global):
        return f"global {value.name}"
    if isinstance(value, (_PendingArray, _PendingDtype)):
        return "array under construction"
    return type(value).__name__
