"""Save a network (and its optimizer) on one backend, load it on any other.

A checkpoint (format 3) is one `safetensors <https://huggingface.co/docs/safetensors>`_
file, readable by NumPy, PyTorch, JAX and the model hubs' tools, that holds:

* every array as a tensor, under a stable name:

  - ``layer/<i>/params/<name>`` and ``layer/<i>/state/<name>``: the parameters and the
    state (batch-norm running statistics) of the ``i``-th layer, in order, under the
    layer's own name for them (``layer/0/params/W``); ``loss/params/<name>`` and
    ``loss/state/<name>`` for the loss layer;
  - ``optimizer/<slot>/<key>``: each optimizer state array, by slot and by the network's
    parameter name (``optimizer/m/W1``);

  a name is split from the left, so a ``/`` inside a parameter's own name is kept;
* in the file's metadata (``__metadata__``), under the key ``"bp_xp.checkpoint"``, the
  JSON document: the format name and version, the bp_xp version, the network's
  :meth:`~bp_xp.Sequential.config` (its class, and each layer's type and configuration),
  the dtype and backend the net was saved from, the parameter names, the tensor names
  in the layers' own order (``tensors``: safetensors sorts its tensors), the position of
  each layer's host random stream (``generators``: ``Dropout``'s masks continue where they
  were), the optimizer's type, hyperparameters, step and slots, and the caller's own
  ``metadata``.

Saving copies the arrays to the host and leaves the network where it is. The file is
written atomically (see :mod:`bp_xp._atomic`) under the path given, suffix included: a
crash leaves either the old checkpoint or the new one.

Loading rebuilds the network on the backend you ask for, by default NumPy on the host,
which works on every machine; the backend the file came from is never imported (a
checkpoint saved from CuPy loads on a machine without CUDA). PyTorch targets get their
tensors from safetensors straight onto the device; every other backend through the host.
A file is treated as an adversary: only a regular file is opened (never a FIFO or a
device, which could block or never end); the safetensors header is bounded in size and
every tensor's dtype, shape and byte range is checked against the file's real size
before safetensors reads anything; the metadata document is checked field by field,
every number range-checked; layer classes are looked up among those already defined in
this process (nothing is imported or unpickled); and every problem, whatever part of
the file it is in, raises :class:`CheckpointError` naming the file.

Checkpoints of format versions 1 and 2 (``.npz`` archives of bp_xp 0.1 to 0.3) still
load, with the same checks. :func:`load_params` (``net.load_params``) also reads the book's
pickled parameter files, without unpickling them (:mod:`bp_xp._book_pickle`). See
``docs/checkpoints.md``.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import stat
import struct
import zipfile
from collections.abc import Callable, Mapping
from typing import IO, Any, NoReturn

import numpy as np  # host-side only: the file holds host arrays

from ._atomic import atomic_write
from ._book_pickle import BookPickleError, is_pickle, read_params
from .backends import (
    FLOAT_DTYPES,
    Backend,
    BackendUnavailableError,
    column_major,
    dtype_name,
    matmul_layout,
    resolve_backend,
    to_numpy,
)
from .layers import Affine, SoftmaxWithLoss
from .layers.base import Layer
from .nets import activation_class
from .optim import OPTIMIZERS, Optimizer
from .sequential import PARAMS_FILES, Sequential, network_class, rebuild_layer

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "METADATA_KEY", "CheckpointError", "load",
           "load_params", "read_metadata", "save", "save_params", "tensor_names"]

#: Written into every checkpoint; a file without it is not a bp_xp checkpoint.
FORMAT_NAME = "bp_xp.checkpoint"
#: Bumped when the layout changes; :func:`load` refuses files newer than this.
FORMAT_VERSION = 3
#: The key of the JSON document in the safetensors file's ``__metadata__``.
METADATA_KEY = "bp_xp.checkpoint"

_METADATA = "metadata.json"  # formats 1 and 2: the document's member
_OPTIMIZER = "optimizer/"
#: The metadata document is small; anything bigger is not ours.
_MAX_METADATA_BYTES = 16 << 20
#: A safetensors header holds the document and one short entry per tensor.
_MAX_HEADER_BYTES = 64 << 20
_MAX_MEMBERS = 100_000
_MAX_NDIM = 32
#: JSON integers longer than this are no count, size or step of a checkpoint.
_MAX_INT_DIGITS = 20
_LEGACY_DTYPES = ("float32", "float64")
#: safetensors dtype code -> NumPy dtype name, for every dtype bp_xp writes and reads.
_SAFETENSORS_DTYPES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "U16": "uint16", "I16": "int16",
    "U32": "uint32", "I32": "int32", "U64": "uint64", "I64": "int64",
    "F16": "float16", "F32": "float32", "F64": "float64",
}
_NUMPY_DTYPES = tuple(_SAFETENSORS_DTYPES.values())


class CheckpointError(ValueError):
    """A file is not a readable bp_xp checkpoint: the message names the file and why."""


# --------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------


def save(path: str | os.PathLike[str], net: Sequential, optimizer: Optimizer | None = None, *,
         metadata: Mapping[str, Any] | None = None) -> None:
    """Write ``net`` (and ``optimizer``'s state) to ``path`` as one safetensors file, atomically.

    Parameters
    ----------
    path : str or PathLike
        Used as given (no suffix is added or changed; ``.safetensors`` is the usual one).
        An existing regular file is replaced only once the new one is complete; anything
        else (a FIFO, a device, a directory) is refused.
    net : Sequential
        Any :class:`bp_xp.Sequential` (``TwoLayerNet``, ``MultiLayerNet``,
        ``SimpleConvNet``, a stack of your own layers), on any backend and device, with
        parameters of any dtype safetensors holds (floats of 16, 32 and 64 bits, integers,
        bool); it is read, never moved or changed.
    optimizer : bp_xp.optim.Optimizer, optional
        Its type, hyperparameters, step and state arrays are saved too.
    metadata : mapping, optional
        Anything JSON can hold (epoch, accuracy...), NaN and infinity excepted; NumPy
        scalars and 0-d arrays of any backend become Python numbers. :func:`read_metadata`
        returns it under ``"user"``.

    Raises
    ------
    TypeError
        For something that is not a network, an optimizer class this format does not
        know, an array dtype safetensors cannot hold, or ``metadata`` (or a layer's
        ``config()``) that JSON cannot hold.
    ValueError
        When the optimizer's state does not fit the network's parameters.
    OSError
        When ``path`` cannot be written; the message names ``path``.

    Examples
    --------
    >>> import os, tempfile, bp_xp
    >>> from bp_xp import checkpoint
    >>> net = bp_xp.TwoLayerNet(4, 3, 2, seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "net.safetensors")
    >>> checkpoint.save(path, net, metadata={"epoch": 3})
    >>> loaded, optimizer = checkpoint.load(path)
    >>> loaded, optimizer, checkpoint.read_metadata(path)["user"]
    (TwoLayerNet(4-3-2, backend=numpy, dtype=float32), None, {'epoch': 3})
    """
    from . import __version__  # late: bp_xp/__init__ may import this module

    if not isinstance(net, Sequential):
        raise TypeError(f"checkpoint.save saves a bp_xp.Sequential (TwoLayerNet, MultiLayerNet, "
                        f"...), not {type(net).__qualname__}")
    arrays: dict[str, np.ndarray] = {}
    for prefix, layer in _layer_prefixes(net):
        for what in ("params", "state"):
            for name, array in getattr(layer, what).items():
                arrays[f"{prefix}/{what}/{name}"] = to_numpy(array)
    meta: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "bp_xp_version": __version__,
        "network": net.config(),
        "dtype": dtype_name(net.dtype),
        "backend": str(net.backend),
        "params": list(net.params),
        "optimizer": None,
        "user": None if metadata is None else dict(metadata),
    }
    generators = {prefix: state for prefix, layer in _layer_prefixes(net)
                  if (state := _generator_state(layer)) is not None}
    if generators:
        meta["generators"] = generators
    if optimizer is not None:
        meta["optimizer"], state_arrays = _optimizer_entry(optimizer, net)
        arrays.update(state_arrays)
    # safetensors sorts its tensors; this list keeps the layers' own order of their arrays.
    meta["tensors"] = list(arrays)
    # safetensors stores rows; these matrices were held column-major (PyTorch's Linear
    # layout, see backends.matmul_layout) and are loaded so, for a bit-for-bit resume.
    meta["column_major"] = [name for name, array in arrays.items() if array.ndim == 2
                            and array.flags.f_contiguous and not array.flags.c_contiguous]
    for name, array in arrays.items():
        if array.dtype.name not in _NUMPY_DTYPES:
            raise TypeError(f"checkpoint.save: array {name!r} has dtype {array.dtype}, which a "
                            f"checkpoint cannot hold (it holds {', '.join(_NUMPY_DTYPES)})")
        arrays[name] = np.ascontiguousarray(array)
    try:
        text = json.dumps(meta, allow_nan=False, default=_json_scalar)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"checkpoint metadata must be plain JSON data (str, number, list, "
                        f"dict, bool, None; finite numbers): {exc}") from exc
    atomic_write(os.fspath(path), lambda file: _write(file, arrays, {METADATA_KEY: text}))


def _write(file: IO[bytes], arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write the safetensors file into ``file`` (the atomic write's temporary file).

    ``safetensors.numpy.save`` builds the file's bytes in memory (one more copy of the
    arrays); its ``save_file`` would stream, but it makes its own temporary file and
    rename, which cannot write into this one. One place, so that tests can simulate a
    full disk or a kill.
    """
    from safetensors.numpy import save as safetensors_bytes

    file.write(safetensors_bytes(arrays, metadata=metadata))


def tensor_names(net: Sequential, optimizer: Optimizer | None = None) -> dict[str, str]:
    """The tensor name each of ``net``'s parameters (and optimizer states) has in a checkpoint.

    Keys are the network's parameter names (``"W1"``), and for the optimizer
    ``"<slot>/<key>"`` (``"m/W1"``); values the names in the safetensors file
    (``"layer/0/params/W"``, ``"optimizer/m/W1"``).

    Examples
    --------
    >>> import bp_xp
    >>> from bp_xp.checkpoint import tensor_names
    >>> tensor_names(bp_xp.TwoLayerNet(4, 3, 2))
    {'W1': 'layer/0/params/W', 'b1': 'layer/0/params/b', 'W2': 'layer/2/params/W', 'b2': 'layer/2/params/b'}
    """
    prefixes = {id(layer): prefix for prefix, layer in _layer_prefixes(net)}
    names = {key: f"{prefixes[id(layer)]}/params/{name}"
             for key, (layer, name) in net.params.slots.items()}
    if optimizer is not None:
        for slot, by_key in optimizer.state_dict()["state"].items():
            for key in by_key:
                names[f"{slot}/{key}"] = f"{_OPTIMIZER}{slot}/{key}"
    return names


def _layer_prefixes(net: Sequential) -> list[tuple[str, Layer]]:
    return [*((f"layer/{i}", layer) for i, layer in enumerate(net.layers.values())),
            ("loss", net.last_layer)]


def _generator_state(layer: Layer) -> dict[str, Any] | None:
    """The position of a layer's host random stream (``Dropout``'s masks), as JSON.

    A layer that draws from a NumPy ``Generator`` kept as ``_rng`` continues, once
    loaded, exactly where it was saved, so resumed training draws the same masks.
    Integers (128-bit for PCG64) are written as hexadecimal strings.
    """
    generator = getattr(layer, "_rng", None)
    if not isinstance(generator, np.random.Generator):
        return None
    try:
        return _hex_ints(generator.bit_generator.state)
    except TypeError:  # a bit generator whose state is not plain ints and names
        return None


def _hex_ints(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _hex_ints(v) for k, v in value.items()}
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return format(int(value), "#x")
    if isinstance(value, str) and not value.lstrip("-").startswith("0x"):
        return value
    raise TypeError(f"{type(value).__name__} in a generator state")


def _from_hex_ints(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _from_hex_ints(v) for k, v in value.items()}
    if isinstance(value, str) and value.lstrip("-").startswith("0x"):
        if len(value) > 67:  # 256 bits and a sign: more than any bit generator keeps
            raise ValueError(f"the number {value[:30]}... is longer than a generator state's")
        return int(value, 16)
    if isinstance(value, str):
        return value
    raise ValueError(f"{type(value).__name__} in a generator state")


def _restore_generator(reader: _Reader, prefix: str, layer: Layer, state: Any) -> None:
    generator = getattr(layer, "_rng", None)
    if not isinstance(generator, np.random.Generator):
        raise reader.error(f"metadata 'generators' holds a random stream for {prefix}, whose "
                           f"layer ({type(layer).__name__}) draws none")
    kind = type(generator.bit_generator).__name__
    try:
        if not isinstance(state, dict) or state.get("bit_generator") != kind:
            raise ValueError(f"not the state of a {kind} generator")
        generator.bit_generator.state = _from_hex_ints(state)
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise reader.error(f"metadata 'generators.{prefix}' is not a random stream bp_xp can "
                           f"restore ({exc})") from None


def _json_scalar(value: Any) -> Any:
    """NumPy scalars and 0-d arrays of any backend (an accuracy, a loss) as Python numbers."""
    if isinstance(value, np.generic) or getattr(value, "ndim", None) == 0:
        try:
            return to_numpy(value).item()
        except Exception:  # not an array bp_xp knows: let json name the type
            pass
    raise TypeError(f"{type(value).__qualname__} is not JSON serializable")


def _optimizer_entry(optimizer: Optimizer,
                     net: Sequential) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    known = isinstance(optimizer, Optimizer) and OPTIMIZERS.get(optimizer.name) is type(optimizer)
    if not known:
        raise TypeError(
            f"checkpoint.save saves the optimizers of bp_xp.optim ({', '.join(OPTIMIZERS)}), "
            f"not {type(optimizer).__qualname__}"
        )
    state = optimizer.state_dict()
    arrays = {}
    for slot, by_key in state["state"].items():
        for key, array in by_key.items():
            if key not in net.params or tuple(array.shape) != tuple(net.params[key].shape):
                raise ValueError(
                    f"checkpoint.save: the optimizer's {slot!r} state of {key!r} does not fit "
                    f"the network (parameters: {', '.join(net.params)}); was it used with "
                    "another network?"
                )
            arrays[f"{_OPTIMIZER}{slot}/{key}"] = to_numpy(array)
    entry = {"type": state["type"], "hyperparameters": state["hyperparameters"],
             "step": state["step"], "slots": list(state["state"])}
    return entry, arrays


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's metadata (format, versions, network, dtype, backend, optimizer, user).

    Reads no arrays. Raises :class:`CheckpointError` like :func:`load`.

    Examples
    --------
    >>> import os, tempfile, bp_xp
    >>> from bp_xp import checkpoint
    >>> path = os.path.join(tempfile.mkdtemp(), "net.safetensors")
    >>> checkpoint.save(path, bp_xp.MultiLayerNet(4, [3], 2, seed=0))
    >>> meta = checkpoint.read_metadata(path)
    >>> meta["format_version"], meta["network"]["network"], meta["backend"], meta["dtype"]
    (3, 'bp_xp.nets.MultiLayerNet', 'numpy', 'float32')
    """
    with _open_checkpoint(os.fspath(path)) as archive:
        return archive.metadata()


def load(path: str | os.PathLike[str], *, backend: Any = None, device: Any = None,
         dtype: Any = None) -> tuple[Sequential, Optimizer | None]:
    """Rebuild the network (and optimizer) saved in ``path`` on a backend of your choice.

    Parameters
    ----------
    path : str or PathLike
        A checkpoint of format 3 (safetensors), or of format 1 or 2 (``.npz``, bp_xp 0.1
        to 0.3), whatever its suffix.
    backend : str, module or Backend, optional
        Where to put the arrays. Default: ``"numpy"`` on the host, which every machine
        has, whatever the file was saved from (see :func:`read_metadata` for that).
    device : optional
        Overrides the backend's device (``"cuda:1"``...).
    dtype : str or dtype, optional
        Convert the floating-point parameters, state and optimizer state to this float
        dtype; default: each array keeps the dtype it was saved with.

    Returns
    -------
    (net, optimizer)
        ``net`` is of the class it was saved as (a network or layer class of your own
        must be defined, i.e. its module imported, before loading). ``optimizer`` is
        ``None`` when none was saved. Its state lives with the parameters, so training
        resumes where it stopped.

    Raises
    ------
    CheckpointError
        For a FIFO, device or other file that is not a regular file; a truncated,
        corrupt or foreign file; missing or malformed metadata; a format version newer
        than this bp_xp reads; or arrays whose names, dtypes, sizes or shapes do not fit.
    BackendUnavailableError
        When the backend, device or dtype asked for (or saved) is not available here.
    OSError
        When the file cannot be opened (``FileNotFoundError``...).
    """
    path = os.fspath(path)
    target = resolve_backend("numpy" if backend is None else backend, device)
    new_dtype = None if dtype is None else target.float_dtype(dtype)
    with _open_checkpoint(path) as archive:
        meta = archive.metadata()
        if new_dtype is None and archive.version < 3:
            new_dtype = target.float_dtype(meta["dtype"])
        net = _rebuild_network(archive, meta, target, new_dtype)
        optimizer = None
        if meta["optimizer"] is not None:
            optimizer = _restore_optimizer(archive, meta["optimizer"], net, target, new_dtype)
        archive.check_all_used()
    return net, optimizer


def _open_regular(path: str) -> tuple[IO[bytes], int]:
    """``path`` opened for reading if it is a regular file, and its size.

    ``O_NONBLOCK`` keeps a FIFO without a writer from blocking the open; ``fstat`` on the
    opened descriptor (not the path, which could be swapped) then refuses anything that
    is not a regular file before a byte is read.
    """
    flags = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
             | getattr(os, "O_BINARY", 0))
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            mode = info.st_mode
            kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                    else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
            raise CheckpointError(f"{path}: not a bp_xp checkpoint: it is {kind}, and a "
                                  "checkpoint is a regular file")
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


def _open_checkpoint(path: str) -> _Reader:
    """Open ``path`` (a regular file) and pick the reader its first bytes call for."""
    file, size = _open_regular(path)
    try:
        head = file.read(9)
        file.seek(0)
        if _is_safetensors(head, size):
            return _Safetensors(path, file, size, head[:8])
        if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            return _Archive(path, file, size)
        if head.startswith(b"\x93NUMPY"):
            raise CheckpointError(f"{path}: not a bp_xp checkpoint (a single .npy array, not "
                                  "a checkpoint)")
        if is_pickle(head):
            raise CheckpointError(f"{path}: not a bp_xp checkpoint but a pickle file, such as "
                                  "the book's save_params writes; bp_xp never unpickles, but "
                                  "net.load_params(path) reads the book's parameter files safely")
        return _Safetensors(path, file, size, head[:8])
    except BaseException:
        file.close()
        raise


def _is_safetensors(head: bytes, size: int) -> bool:
    """Whether a file of ``size`` bytes starting with ``head`` (9 bytes) is safetensors.

    Its 8-byte header length fits in the file and its JSON header opens with ``{``.
    Checked first: a header of 640 bytes starts ``80 02``, as a pickle does.
    """
    if len(head) < 9 or head[8:9] != b"{":
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 8 + length <= size


# -- the book's save_params / load_params ------------------------------------------------

#: The book's parameter files are a few MB; a pickle beyond this is not one of them.
_MAX_PICKLE_BYTES = 1 << 31


def save_params(net: Sequential, path: str | os.PathLike[str]) -> None:
    """``net.save_params(path)``: the network as a bp_xp checkpoint (see :func:`save`)."""
    save(path, net)


def load_params(net: Sequential, path: str | os.PathLike[str]) -> None:
    """``net.load_params(path)``: replace ``net``'s parameters by those saved in ``path``.

    ``path`` is a bp_xp checkpoint (any format), or a parameter file of the book's code:
    a pickled dict of NumPy arrays (``params.pkl``, ``deep_convnet_params.pkl``), read by
    :mod:`bp_xp._book_pickle` without unpickling. The names and shapes must be those of
    ``net``'s parameters; the arrays take ``net``'s backend, device and dtype. From a
    checkpoint, layer state (batch-norm running statistics) is loaded too; its
    optimizer, if any, is not.

    Raises
    ------
    CheckpointError
        For a file that is neither, names or shapes that do not fit ``net``, or anything
        :func:`load` refuses.
    """
    path = os.fspath(path)
    file, size = _open_regular(path)
    with file:
        head = file.read(9)
        if is_pickle(head) and not _is_safetensors(head, size):
            if size > _MAX_PICKLE_BYTES:
                raise CheckpointError(f"{path}: a pickle of {size} bytes, more than a parameter "
                                      f"file of the book's has ({_MAX_PICKLE_BYTES})")
            file.seek(0)
            try:
                arrays = read_params(_read_exactly(file, size))
            except BookPickleError as exc:
                raise CheckpointError(f"{path}: not a parameter file bp_xp reads: {exc}") from None
            _install_params(path, net, arrays, {})
            return
    floating = net.backend.xp.isdtype(net.dtype, "real floating")
    loaded, _ = load(path, backend=net.backend, dtype=net.dtype if floating else None)
    layers = [*loaded.layers.values(), loaded.last_layer]
    states = [dict(layer.state) for layer in layers]
    mine = [*net.layers.values(), net.last_layer]
    if [sorted(s) for s in states] != [sorted(layer.state) for layer in mine]:
        raise CheckpointError(f"{path}: the file's network ({loaded!r}) keeps other layer state "
                              f"than this one ({net!r})")
    _install_params(path, net, dict(loaded.params), dict(enumerate(states)))


def _install_params(path: str, net: Sequential, arrays: dict[str, Any],
                    states: dict[int, dict[str, Any]]) -> None:
    """Check every name and shape first, then replace: a refused file changes nothing."""
    missing = [key for key in net.params if key not in arrays]
    unexpected = [key for key in arrays if key not in net.params]
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: the file's parameters do not fit {net!r}: "
            + "; ".join(part for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unexpected {', '.join(map(str, unexpected))[:300]}" if unexpected else "")
                if part))
    mine = [*net.layers.values(), net.last_layer]
    for key, array in arrays.items():
        if tuple(array.shape) != tuple(net.params[key].shape):
            raise CheckpointError(f"{path}: parameter {key!r} has shape {tuple(array.shape)} in "
                                  f"the file, {tuple(net.params[key].shape)} in the network")
        # The book's pickles give host arrays of any dtype; a checkpoint's were checked by load.
        if isinstance(array, np.ndarray) and array.dtype.kind not in "biuf":
            raise CheckpointError(f"{path}: parameter {key!r} has dtype {array.dtype}")
    for i, state in states.items():
        for name, array in state.items():
            if tuple(array.shape) != tuple(mine[i].state[name].shape):
                raise CheckpointError(f"{path}: state {name!r} of layer {i} has shape "
                                      f"{tuple(array.shape)} in the file, "
                                      f"{tuple(mine[i].state[name].shape)} in the network")
    # New arrays for the network alone: 2-D weights in the backend's matmul layout.
    converted = {key: matmul_layout(net.backend.asarray(arrays[key], dtype=net.dtype))
                 for key in net.params}
    for key, array in converted.items():
        net.params[key] = array
    for i, state in states.items():
        mine[i].state.update(state)


class _Reader:
    """What loading needs of a checkpoint file, whatever its format."""

    path: str
    version: int

    def error(self, message: str) -> CheckpointError:
        return CheckpointError(f"{self.path}: {message}")

    def metadata(self) -> dict[str, Any]:
        raise NotImplementedError

    def names(self) -> list[str]:
        raise NotImplementedError

    def split(self, name: str) -> tuple[str, str, str] | None:
        """``(owner, "params" or "state", key)`` of a layer's array; ``None`` otherwise."""
        raise NotImplementedError

    def header(self, name: str) -> tuple[tuple[int, ...], str]:
        """Shape and dtype name of array ``name``, read without reading its data."""
        raise NotImplementedError

    def placed(self, name: str, target: Backend, dtype: Any) -> Any:
        """Array ``name`` on ``target`` (floats converted to ``dtype`` unless it is ``None``)."""
        raise NotImplementedError

    def check_all_used(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- format 3: safetensors -------------------------------------------------------------


class _Safetensors(_Reader):
    """A safetensors file whose header was validated here before safetensors reads it.

    The checks are those of safetensors' own reader, done first so that a lying header
    costs nothing: the header length is bounded and within the file, the header is JSON
    with one entry per tensor of a known dtype, a shape of non-negative integers and
    byte offsets that agree with the shape, and the tensors tile the data section
    exactly (no overlap, no gap, nothing past the end).
    """

    version = 3

    def __init__(self, path: str, file: IO[bytes], size: int, head: bytes) -> None:
        self.path = path
        self._file = file
        self._used: set[str] = set()
        self._opened: Any = None
        self._framework = ""
        self._order: list[str] = []
        self._column_major: set[str] = set()
        self.tensors, self._document = self._read_header(size, head)

    def _read_header(self, size: int, head: bytes) -> tuple[dict[str, tuple[tuple[int, ...], str]], str]:
        if len(head) < 8:
            raise self.error(f"not a readable bp_xp checkpoint, the file is truncated or of "
                             f"another kind ({size} bytes)")
        (length,) = struct.unpack("<Q", head)
        if length > _MAX_HEADER_BYTES:
            raise self.error(f"not a readable bp_xp checkpoint: its header claims {length} "
                             f"bytes, more than a checkpoint's ({_MAX_HEADER_BYTES}); the file "
                             "is corrupt or of another kind")
        if 8 + length > size:
            raise self.error(f"not a readable bp_xp checkpoint: its header claims {length} "
                             f"bytes but the file has {size}; the file is truncated or corrupt")
        self._file.seek(8)
        raw = _read_exactly(self._file, length)
        if len(raw) != length:
            raise self.error("not a readable bp_xp checkpoint: the file ended inside its header")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.error(f"not a readable bp_xp checkpoint: its header is not UTF-8 "
                             f"({exc})") from exc
        header = _strict_json(self, text, "not a readable bp_xp checkpoint: its header")
        if not isinstance(header, dict):
            raise self.error("not a readable bp_xp checkpoint: its header is not a JSON object")
        extra = header.pop("__metadata__", None)
        if (not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values())
                or not isinstance(extra.get(METADATA_KEY), str)):
            raise self.error(f"not a bp_xp checkpoint (a safetensors file without the "
                             f"{METADATA_KEY!r} metadata)")
        if len(header) > _MAX_MEMBERS:
            raise self.error(f"{len(header)} tensors is more than a checkpoint has")
        data_size = size - 8 - length
        spans = []
        tensors: dict[str, tuple[tuple[int, ...], str]] = {}
        for name, entry in header.items():
            shape, dtype, begin, end = self._checked_entry(name, entry, data_size)
            tensors[name] = (shape, dtype)
            spans.append((begin, end, name))
        position = 0
        for begin, end, name in sorted(spans):
            if begin != position:
                what = "overlaps the tensor before it" if begin < position else \
                    f"leaves a gap of {begin - position} bytes before it"
                raise self.error(f"not a readable bp_xp checkpoint: tensor {name!r} {what}; the "
                                 "file is corrupt")
            position = end
        if position != data_size:
            raise self.error(f"not a readable bp_xp checkpoint: the tensors hold {position} "
                             f"bytes, the file {data_size} after its header; the file is "
                             "truncated or corrupt")
        return tensors, extra[METADATA_KEY]

    def _checked_entry(self, name: str, entry: Any,
                       data_size: int) -> tuple[tuple[int, ...], str, int, int]:
        bad = f"not a readable bp_xp checkpoint: tensor {name!r}"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise self.error(f"{bad}: its header entry is not {{dtype, shape, data_offsets}}")
        code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        dtype = _SAFETENSORS_DTYPES.get(code) if isinstance(code, str) else None
        if dtype is None:
            raise self.error(f"{bad} has dtype {str(code)[:50]!r}, which bp_xp does not read "
                             f"(it reads {', '.join(_SAFETENSORS_DTYPES)})")
        if (not isinstance(shape, list) or len(shape) > _MAX_NDIM
                or not all(_is_count(n) for n in shape)):
            raise self.error(f"{bad} has shape {str(shape)[:100]}, not a list of at most "
                             f"{_MAX_NDIM} non-negative integers")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(_is_count(n) for n in offsets) or offsets[0] > offsets[1]):
            raise self.error(f"{bad} has data_offsets {str(offsets)[:100]}, not [begin, end] "
                             "with 0 <= begin <= end")
        begin, end = offsets
        expected = math.prod(shape) * np.dtype(dtype).itemsize
        if end - begin != expected:
            raise self.error(f"{bad} declares shape {tuple(shape)} of {dtype} ({expected} bytes) "
                             f"but its offsets span {end - begin}")
        if end > data_size:
            raise self.error(f"{bad} ends at byte {end} of the data, past the file's "
                             f"{data_size}: the file is truncated or corrupt")
        return tuple(shape), dtype, begin, end

    def metadata(self) -> dict[str, Any]:
        if len(self._document) > _MAX_METADATA_BYTES:
            raise self.error(f"the {METADATA_KEY!r} metadata is {len(self._document)} "
                             f"characters, more than a checkpoint's ({_MAX_METADATA_BYTES})")
        meta = _parse_metadata(self, self._document, versions=(3, 3), dtypes=_NUMPY_DTYPES)
        _require(self, meta, {"tensors": list})
        order = meta["tensors"]
        if (not all(isinstance(name, str) for name in order) or len(set(order)) != len(order)
                or sorted(order) != sorted(self.tensors)):
            raise self.error("metadata 'tensors' does not list the file's tensors")
        self._order = order
        flagged = meta.get("column_major", [])
        if not isinstance(flagged, list) or not set(flagged) <= set(order):
            raise self.error("metadata 'column_major' does not name tensors of the file")
        self._column_major = set(flagged)
        return meta

    def names(self) -> list[str]:
        return list(self._order)

    def split(self, name: str) -> tuple[str, str, str] | None:
        parts = name.split("/", 3) if name.startswith("layer/") else name.split("/", 2)
        if len(parts) == 4 and parts[0] == "layer":
            owner, what, key = f"layer/{parts[1]}", parts[2], parts[3]
        elif len(parts) == 3 and parts[0] == "loss":
            owner, what, key = "loss", parts[1], parts[2]
        else:
            return None
        return (owner, what, key) if what in ("params", "state") else None

    def header(self, name: str) -> tuple[tuple[int, ...], str]:
        return self.tensors[name]

    def placed(self, name: str, target: Backend, dtype: Any) -> Any:
        self._used.add(name)
        shape, saved = self.tensors[name]
        convert = dtype is not None and saved.startswith("float")
        if not convert:
            _check_available(self, name, saved, target)
        # A backend safetensors can fill on its device says so in its spec; others: NumPy.
        direct = target.spec.safetensors_framework
        framework = direct or "numpy"
        try:
            if self._opened is None or self._framework != framework:
                from safetensors import safe_open

                # The descriptor already checked, not the path (which could be swapped).
                fd_path = f"/proc/self/fd/{self._file.fileno()}"
                source = fd_path if os.path.exists(fd_path) else self.path
                device = str(target.device) if direct else "cpu"
                self._opened = safe_open(source, framework=framework, device=device)
                self._framework = framework
            value = self._opened.get_tensor(name)
        except Exception as exc:  # safetensors' own checks, a file changed since ours
            raise self.error(f"tensor {name!r} cannot be read, the file is corrupt or changed "
                             f"while loading ({type(exc).__name__}: {exc})") from exc
        if tuple(value.shape) != shape or dtype_name(value.dtype) != saved:
            raise self.error(f"tensor {name!r} read as {tuple(value.shape)} "
                             f"{dtype_name(value.dtype)}, its header says {shape} {saved}: the "
                             "file changed while loading")
        if direct:  # on the device already; a new array only when converting
            placed = target.xp.astype(value, dtype) if convert else value
        else:
            placed = _from_host(value, target, dtype if convert else None)
        return column_major(placed) if name in self._column_major else placed

    def check_all_used(self) -> None:
        unused = sorted(set(self.tensors) - self._used)
        if unused:
            raise self.error(f"unexpected tensors {', '.join(unused)}")

    def close(self) -> None:
        self._opened = None
        self._file.close()


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 62


def _check_available(reader: _Reader, name: str, saved: str, target: Backend) -> None:
    """Refuse, before reading it, an array whose dtype ``target`` cannot hold."""
    if saved in target.supported_dtypes():
        return
    try:  # float16 is outside the Array API's dtypes, yet most libraries hold it: ask
        probe = target.spec.from_host(np.zeros(1, dtype=saved), target.device, target.chunks)
        if dtype_name(probe.dtype) == saved:  # not silently narrowed (JAX without x64)
            return
    except Exception:  # noqa: S110 - any refusal of the library means "not here"
        pass
    hint = "; pass dtype='float32'" if saved.startswith("float") else ""
    raise BackendUnavailableError(f"{reader.path}: dtype {saved!r} is not available on {target} "
                                  f"(array {name!r}){hint}")


def _from_host(host: np.ndarray, target: Backend, dtype: Any) -> Any:
    """A copy of ``host`` on ``target``: floats converted to ``dtype`` unless it is ``None``."""
    if dtype is not None and host.dtype.kind == "f":
        return target.asarray(host, dtype=dtype)
    if host.dtype.name in target.supported_dtypes() or host.dtype.name in FLOAT_DTYPES:
        return target.asarray(host)
    return target.spec.from_host(np.array(host, copy=True), target.device, target.chunks)


# -- formats 1 and 2: .npz -------------------------------------------------------------


class _Archive(_Reader):
    """A format 1 or 2 checkpoint (``.npz``) opened for bounded reading."""

    version = 2

    def __init__(self, path: str, file: IO[bytes], size: int) -> None:
        self.path = path
        self._file = file
        try:
            self._zip = zipfile.ZipFile(self._file)
            infos = self._zip.infolist()
        except Exception as exc:  # any failure to parse a zip directory: not our file
            raise self.error(f"not a readable bp_xp checkpoint, the file is truncated, "
                             f"corrupt or of another kind ({type(exc).__name__}: {exc})") from exc
        self._infos: dict[str, zipfile.ZipInfo] = {}
        self._used: set[str] = set()
        try:
            self._check_directory(infos, size)
        except BaseException:
            self._zip.close()
            raise

    def _check_directory(self, infos: list[zipfile.ZipInfo], size: int) -> None:
        if len(infos) > _MAX_MEMBERS:
            raise self.error(f"{len(infos)} members is more than a checkpoint has")
        declared = 0
        for info in infos:
            name = info.filename
            if not name.endswith(".npy") or name[:-4] in self._infos:
                raise self.error(f"not a bp_xp checkpoint (unexpected member {name!r})")
            if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
                raise self.error(f"member {name!r} is compressed; bp_xp checkpoints are "
                                 "uncompressed archives, and compressed members could inflate "
                                 "without bound")
            declared += info.file_size
            self._infos[name[:-4]] = info
        if declared > size:
            raise self.error(f"the members claim {declared} bytes, more than the file's {size}: "
                             "the file is truncated or corrupt")
        if _METADATA not in self._infos:
            found = ", ".join(sorted(self._infos)[:5]) or "nothing"
            raise self.error(f"not a bp_xp checkpoint (no {_METADATA!r} member; it holds {found})")

    def rename_members(self, renames: dict[str, str]) -> None:
        """Read members under new names (a version-1 file's ``param/W1``...)."""
        for old, new in renames.items():
            if old in self._infos:
                self._infos[new] = self._infos.pop(old)

    def names(self) -> list[str]:
        return [name for name in self._infos if name != _METADATA]

    def split(self, name: str) -> tuple[str, str, str] | None:
        head, _, key = name.rpartition("/")
        owner, _, what = head.rpartition("/")
        return (owner, what, key) if what in ("params", "state") else None

    def header(self, name: str) -> tuple[tuple[int, ...], str]:
        with self._open(name) as member:
            shape, dtype, _ = self._read_header(name, member)
        return shape, dtype.name

    def placed(self, name: str, target: Backend, dtype: Any) -> Any:
        return target.asarray(self.array(name), dtype=dtype)

    def array(self, name: str, *, dtype_kind: str = "f") -> np.ndarray:
        """Member ``name`` as a NumPy array, after checking its header against its size."""
        self._used.add(name)
        with self._open(name) as member:
            shape, dtype, offset = self._read_header(name, member)
            if dtype.kind != dtype_kind:
                raise self.error(f"{_describe_member(name)} has dtype {dtype}, expected "
                                 + ("a float dtype" if dtype_kind == "f" else "bytes"))
            data = _read_exactly(member, self._infos[name].file_size - offset)
        try:
            return np.frombuffer(data, dtype=dtype).reshape(shape)
        except ValueError as exc:
            raise self.error(f"member {name!r} is corrupt ({exc})") from exc

    def metadata(self) -> dict[str, Any]:
        info = self._infos[_METADATA]
        if info.file_size > _MAX_METADATA_BYTES:
            raise self.error(f"{_METADATA!r} is {info.file_size} bytes, more than a checkpoint's "
                             f"metadata ({_MAX_METADATA_BYTES})")
        try:
            raw = self.array(_METADATA, dtype_kind="u")
        except CheckpointError as exc:
            raise self.error(f"{_METADATA!r} is not UTF-8 JSON bytes ({exc})") from exc
        if raw.ndim != 1 or raw.dtype != np.uint8:
            raise self.error(f"{_METADATA!r} is not UTF-8 JSON bytes")
        try:
            text = raw.tobytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.error(f"{_METADATA!r} is not valid JSON (UnicodeDecodeError: {exc})") from exc
        meta = _parse_metadata(self, text, versions=(1, 2), dtypes=_LEGACY_DTYPES)
        if meta["format_version"] == 1:
            meta["network"] = _network_from_v1(self, meta)
            _check_network(self, meta)
        return meta

    def _open(self, name: str) -> IO[bytes]:
        try:
            return self._zip.open(self._infos[name])
        except Exception as exc:  # a corrupt local header, an encrypted member...
            raise self.error(f"member {name!r} cannot be read, the file is corrupt "
                             f"({type(exc).__name__}: {exc})") from exc

    def _read_header(self, name: str, member: IO[bytes]) -> tuple[tuple[int, ...], np.dtype[Any], int]:
        fmt = np.lib.format
        try:
            version = fmt.read_magic(member)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(member)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            offset = member.tell()
        except Exception as exc:  # NumPy raises ValueError, EOFError, SyntaxError, ...
            raise self.error(f"member {name!r} is not a readable .npy array, the file is "
                             f"corrupt ({type(exc).__name__}: {exc})") from exc
        if dtype.hasobject or fortran and len(shape) > 1:
            held = "objects" if dtype.hasobject else "a Fortran-ordered array"
            raise self.error(f"member {name!r} holds {held}, which bp_xp never writes")
        expected = math.prod(shape) * dtype.itemsize
        if offset + expected != self._infos[name].file_size:
            raise self.error(f"member {name!r} declares shape {shape} of {dtype} "
                             f"({expected} bytes) but holds {self._infos[name].file_size - offset}")
        return tuple(int(n) for n in shape), dtype, offset

    def check_all_used(self) -> None:
        unused = sorted(set(self.names()) - self._used)
        if unused:
            raise self.error(f"unexpected members {', '.join(unused)}")

    def close(self) -> None:
        self._zip.close()
        self._file.close()


def _read_exactly(member: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes (fewer only when the file ends), read in bounded chunks."""
    buffer = io.BytesIO()
    while buffer.tell() < size:
        chunk = member.read(min(1 << 22, size - buffer.tell()))
        if not chunk:
            break
        buffer.write(chunk)
    return buffer.getvalue()


def _describe_member(name: str) -> str:
    parts = name.split("/")
    if name.startswith(_OPTIMIZER) and len(parts) == 3:
        return f"optimizer state {parts[1]!r} of {parts[2]!r}"
    return f"array {name!r}"


# -- metadata --------------------------------------------------------------------------


class _BadNumber(ValueError):
    """A JSON number (or a repeated key) that no checkpoint writes."""


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise _BadNumber(f"the integer {text[:30]}... of {len(text)} digits")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadNumber(f"the number {text[:30]} (out of a float's range)")
    return value


def _parse_constant(text: str) -> NoReturn:
    raise _BadNumber(f"{text} (not a finite number)")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _BadNumber(f"the key {key[:50]!r} twice in one object")
        result[key] = value
    return result


def _strict_json(reader: _Reader, text: str, what: str) -> Any:
    """``json.loads`` that refuses huge integers, non-finite numbers and repeated keys."""
    try:
        return json.loads(text, parse_int=_parse_int, parse_float=_parse_float,
                          parse_constant=_parse_constant, object_pairs_hook=_unique_keys)
    except _BadNumber as exc:
        raise reader.error(f"{what} holds {exc}, which no checkpoint writes") from None
    except (ValueError, RecursionError) as exc:  # json.JSONDecodeError is a ValueError
        raise reader.error(f"{what} is not valid JSON ({type(exc).__name__}: "
                           f"{str(exc)[:200]})") from exc


def _parse_metadata(reader: _Reader, text: str, *, versions: tuple[int, int],
                    dtypes: tuple[str, ...]) -> dict[str, Any]:
    what = f"{_METADATA!r}" if versions[1] < 3 else f"the {METADATA_KEY!r} metadata"
    meta = _strict_json(reader, text, what)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise reader.error(f"not a bp_xp checkpoint (format {found!r}, expected {FORMAT_NAME!r})")
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise reader.error(f"format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise reader.error(
            f"written in checkpoint format version {version} (by bp_xp "
            f"{str(meta.get('bp_xp_version', '?'))[:50]}); this bp_xp reads up to version "
            f"{FORMAT_VERSION}: upgrade bp_xp to load it"
        )
    low, high = versions
    if not low <= version <= high:
        kind = "a safetensors file" if high >= 3 else "an .npz archive"
        raise reader.error(f"format_version {version} in {kind}, which holds versions "
                           f"{low} to {high}: the file is corrupt")
    _require(reader, meta, {"bp_xp_version": str, "dtype": str, "backend": str, "params": list,
                            "optimizer": (dict, type(None))})
    if meta["dtype"] not in dtypes:
        raise reader.error(f"metadata 'dtype' is {meta['dtype'][:50]!r}, expected one of "
                           f"{', '.join(dtypes)}")
    if not all(isinstance(key, str) for key in meta["params"]):
        raise reader.error("metadata 'params' must be a list of names")
    if version >= 2:
        _check_network(reader, meta)
    optimizer = meta["optimizer"]
    if optimizer is not None:
        _require(reader, optimizer, {"type": str, "hyperparameters": dict, "step": int,
                                     "slots": list}, "optimizer")
        if not all(isinstance(slot, str) for slot in optimizer["slots"]):
            raise reader.error("metadata 'optimizer.slots' must be a list of names")
    return meta


def _check_network(reader: _Reader, meta: dict[str, Any]) -> None:
    _require(reader, meta, {"network": dict})
    network = meta["network"]
    _require(reader, network, {"network": str, "layers": list, "loss": dict,
                               "weight_decay_lambda": (int, float), "extra": dict}, "network")
    for i, spec in enumerate(network["layers"]):
        if not isinstance(spec, dict):
            raise reader.error(f"metadata 'network.layers[{i}]' must be an object")
        _require(reader, spec, {"name": str, "type": str, "config": dict}, f"network.layers[{i}]")
    _require(reader, network["loss"], {"type": str, "config": dict}, "network.loss")
    decay = network["weight_decay_lambda"]
    if not (math.isfinite(decay) and decay >= 0):
        raise reader.error(f"metadata 'network.weight_decay_lambda' must be a finite number "
                           f">= 0, got {decay!r}")


def _require(reader: _Reader, mapping: dict[str, Any], fields: dict[str, Any],
             where: str = "") -> None:
    for key, kind in fields.items():
        name = f"{where}.{key}" if where else key
        if key not in mapping:
            raise reader.error(f"the metadata lacks {name!r}")
        if not isinstance(mapping[key], kind) or isinstance(mapping[key], bool):
            raise reader.error(f"metadata {name!r} has the wrong type "
                               f"({type(mapping[key]).__name__})")


def _network_from_v1(archive: _Archive, meta: dict[str, Any]) -> dict[str, Any]:
    """The version-2 network entry of a bp_xp 0.1 file, whose arrays are ``param/W1``..."""
    _require(archive, meta, {"architecture": dict})
    arch = meta["architecture"]
    _require(archive, arch, {"class": str, "sizes": list, "activation": str,
                             "weight_decay_lambda": (int, float)}, "architecture")
    classes = {"TwoLayerNet": "bp_xp.nets.TwoLayerNet", "MultiLayerNet": "bp_xp.nets.MultiLayerNet"}
    if arch["class"] not in classes:
        raise archive.error(f"unknown network class {arch['class'][:50]!r}; this bp_xp knows "
                            f"{', '.join(classes)}")
    sizes = arch["sizes"]
    if (len(sizes) < 2 or (arch["class"] == "TwoLayerNet" and len(sizes) != 3)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes)):
        raise archive.error(f"cannot rebuild {arch['class']} from the file: layer sizes "
                            f"{str(sizes)[:100]}")
    try:
        activation = activation_class(arch["activation"])
    except ValueError:
        raise archive.error(f"cannot rebuild {arch['class']} from the file: activation "
                            f"{arch['activation'][:50]!r}") from None
    layers: list[dict[str, Any]] = []
    renames: dict[str, str] = {}
    for i in range(1, len(sizes)):
        renames[f"param/W{i}"] = f"layer/{len(layers)}/params/W"
        renames[f"param/b{i}"] = f"layer/{len(layers)}/params/b"
        layers.append({"name": f"Affine{i}", "type": Affine.layer_type, "config": {}})
        if i < len(sizes) - 1:
            layers.append({"name": f"{activation.__name__}{i}", "type": activation.layer_type,
                           "config": {}})
    archive.rename_members(renames)
    return {"network": classes[arch["class"]], "layers": layers,
            "loss": {"type": SoftmaxWithLoss.layer_type, "config": {}},
            "weight_decay_lambda": arch["weight_decay_lambda"], "extra": {"sizes": sizes}}


# -- rebuilding ------------------------------------------------------------------------

#: What a layer's or network's own checks raise for arguments that do not fit; anything
#: else (an error of bp_xp or of a user layer on good input) propagates unchanged.
_REBUILD_ERRORS = (TypeError, ValueError, AttributeError, OverflowError, IndexError,
                   ZeroDivisionError)


def _rebuilt(reader: _Reader, what: str, build: Callable[[], Any]) -> Any:
    try:
        return build()
    except (CheckpointError, BackendUnavailableError):
        raise
    except KeyError as exc:  # the registries' "no ... class ... is defined in this process"
        why = exc.args[0] if exc.args else exc
        raise reader.error(f"cannot rebuild {what} from the file: {why}") from None
    except _REBUILD_ERRORS as exc:
        raise reader.error(f"cannot rebuild {what} from the file: {exc}") from exc


def _rebuild_network(reader: _Reader, meta: dict[str, Any], target: Backend,
                     dtype: Any) -> Sequential:
    config = meta["network"]
    try:
        cls = network_class(config["network"])
    except KeyError as exc:
        raise reader.error(f"unknown network class {config['network'][:100]!r}: "
                           f"{exc.args[0]}") from None
    specs = [*((f"layer/{i}", spec) for i, spec in enumerate(config["layers"])),
             ("loss", config["loss"])]
    expected = {prefix for prefix, _ in specs}
    generators = meta.get("generators", {})
    if not isinstance(generators, dict):
        raise reader.error(f"metadata 'generators' has the wrong type ({type(generators).__name__})")
    generators = dict(generators)
    by_owner: dict[str, list[tuple[str, str, str]]] = {}
    for name in reader.names():
        if name.startswith(_OPTIMIZER):
            continue
        parts = reader.split(name)
        if parts is None or parts[0] not in expected:
            raise reader.error(f"unexpected members {name}")
        owner, what, key = parts
        by_owner.setdefault(owner, []).append((what, key, name))
    # Every size is known from the headers before any array is read.
    for name in reader.names():
        reader.header(name)
    rebuilt: list[Layer] = []
    for prefix, spec in specs:
        arrays: dict[str, dict[str, Any]] = {"params": {}, "state": {}}
        for what, key, name in by_owner.get(prefix, ()):
            arrays[what][key] = reader.placed(name, target, dtype)
        layer = _rebuilt(reader, f"layer {spec.get('name', prefix)!r} ({spec['type'][:100]})",
                         functools.partial(rebuild_layer, spec, arrays["params"], arrays["state"]))
        if prefix in generators:
            _restore_generator(reader, prefix, layer, generators.pop(prefix))
        rebuilt.append(layer)
    if generators:
        raise reader.error(f"metadata 'generators' names {', '.join(map(str, generators))[:200]}, "
                           "which are no layers of the network")
    *layers, loss = rebuilt
    names = [spec["name"] for spec in config["layers"]]
    if len(set(names)) != len(names):
        raise reader.error("two layers of the network have the same name")
    net: Sequential = _rebuilt(
        reader, config["network"],
        lambda: cls.from_layers(config, dict(zip(names, layers)), loss, target))  # type: ignore[arg-type]
    if list(net.params) != meta["params"]:
        raise reader.error(f"the network has parameters {', '.join(net.params)}, the metadata "
                           f"lists {', '.join(map(str, meta['params']))[:500]}")
    if dtype is None and net.params and dtype_name(net.dtype) != meta["dtype"]:
        raise reader.error(f"the parameters are {dtype_name(net.dtype)}, the metadata says "
                           f"{meta['dtype']}")
    return net


def _restore_optimizer(reader: _Reader, entry: dict[str, Any], net: Sequential,
                       target: Backend, dtype: Any) -> Optimizer:
    cls = OPTIMIZERS.get(entry["type"])
    if cls is None:
        raise reader.error(f"unknown optimizer {entry['type'][:50]!r}; this bp_xp knows "
                           f"{', '.join(OPTIMIZERS)}")
    try:
        optimizer = cls(**entry["hyperparameters"])
    except (TypeError, ValueError, OverflowError) as exc:
        raise reader.error(f"bad optimizer hyperparameters: {exc}") from exc
    stored = [name for name in reader.names() if name.startswith(_OPTIMIZER)]
    if stored and entry["slots"] != list(optimizer.slots):
        raise reader.error(f"optimizer {entry['type']!r} keeps the slots {list(optimizer.slots)}, "
                           f"the metadata lists {str(entry['slots'])[:200]}")
    state: dict[str, dict[str, Any]] = {slot: {} for slot in entry["slots"]}
    for name in stored:
        slot, _, key = name.removeprefix(_OPTIMIZER).partition("/")
        if slot not in state or key not in net.params:
            raise reader.error(f"unexpected member {name!r} (optimizer slots "
                               f"{entry['slots']}, parameters {', '.join(net.params)})")
        shape, _ = reader.header(name)
        expected = tuple(net.params[key].shape)
        if shape != expected:
            raise reader.error(f"optimizer state {slot!r} of {key!r} has shape {shape}, the "
                               f"network expects {expected}")
        array = reader.placed(name, target, dtype)
        if dtype_name(array.dtype) != dtype_name(net.params[key].dtype):
            raise reader.error(f"optimizer state {slot!r} of {key!r} is {dtype_name(array.dtype)}, "
                               f"the parameter {dtype_name(net.params[key].dtype)}")
        state[slot][key] = array
    if stored:
        for slot, arrays in state.items():
            missing = [key for key in net.params if key not in arrays]
            if missing:
                raise reader.error(f"optimizer state {slot!r} lacks {', '.join(missing)}: "
                                   "resuming would silently restart those from zero")
    _rebuilt(reader, f"the optimizer state ({entry['type']})",
             lambda: optimizer.load_state_dict({"type": entry["type"], "step": entry["step"],
                                                "hyperparameters": entry["hyperparameters"],
                                                "state": state}))
    return optimizer


PARAMS_FILES.update(save=save_params, load=load_params)
