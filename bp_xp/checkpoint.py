"""Save a network (and its optimizer) on one backend, load it on any other.

A checkpoint is one ``.npz`` file (an uncompressed zip of ``.npy`` members), written
without pickle, that holds:

* ``metadata.json``: a UTF-8 JSON document stored as a ``uint8`` array, with the format
  name and version, the bp_xp version, the network's :meth:`~bp_xp.Sequential.config`
  (its class, and each layer's type and configuration), the dtype and backend the net
  was saved from, the parameter names, the optimizer's type, hyperparameters and step,
  and the caller's own ``metadata``;
* ``layer/<i>/params/<name>`` and ``layer/<i>/state/<name>``: each layer's arrays (the
  ``i``-th layer in order; ``loss/...`` for the loss layer);
* ``optimizer/<slot>/<key>``: each optimizer state array (``optimizer/m/W1``...).

Saving copies the arrays to the host and leaves the network where it is. The file is
written atomically (see :mod:`bp_xp._atomic`): a crash leaves either the old
checkpoint or the new one.

Loading rebuilds the network on the backend you ask for, by default NumPy on the host,
which works on every machine; the backend the file came from is never imported (a
checkpoint saved from CuPy loads on a machine without CUDA). A file is treated as an
adversary: layer classes are looked up among those already defined in this process
(nothing is imported or unpickled), every member's declared size is checked against
the bytes really present before anything is allocated, and every problem, whatever
part of the file it is in, raises :class:`CheckpointError` naming the file.
Checkpoints of format version 1 (bp_xp 0.1) still load.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from collections.abc import Mapping
from typing import IO, Any

import numpy as np  # host-side only: the file holds NumPy arrays

from ._atomic import atomic_write
from .backends import Backend, dtype_name, resolve_backend, to_numpy
from .layers import Affine, SoftmaxWithLoss
from .layers.base import Layer
from .nets import activation_class
from .optim import OPTIMIZERS, Optimizer
from .sequential import Sequential, network_class, rebuild_layer

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "CheckpointError", "load", "read_metadata", "save"]

#: Written into every checkpoint; a file without it is not a bp_xp checkpoint.
FORMAT_NAME = "bp_xp.checkpoint"
#: Bumped when the layout changes; :func:`load` refuses files newer than this.
FORMAT_VERSION = 2

_METADATA = "metadata.json"
_OPTIMIZER = "optimizer/"
#: The metadata document is small; anything bigger is not ours.
_MAX_METADATA_BYTES = 16 << 20
_MAX_MEMBERS = 100_000
_FLOAT_DTYPES = ("float32", "float64")


class CheckpointError(ValueError):
    """A file is not a readable bp_xp checkpoint: the message names the file and why."""


# --------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------


def save(path: str | os.PathLike[str], net: Sequential, optimizer: Optimizer | None = None, *,
         metadata: Mapping[str, Any] | None = None) -> None:
    """Write ``net`` (and ``optimizer``'s state) to ``path``, atomically.

    Parameters
    ----------
    path : str or PathLike
        Used as given (no ``.npz`` is appended). An existing regular file is replaced
        only once the new one is complete; anything else (a FIFO, a device, a
        directory) is refused.
    net : Sequential
        Any :class:`bp_xp.Sequential` (``TwoLayerNet``, ``MultiLayerNet``, a stack of your
        own layers), on any backend and device; it is read, never moved or changed.
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
        know, or ``metadata`` (or a layer's ``config()``) that JSON cannot hold.
    ValueError
        When the optimizer's state does not fit the network's parameters.
    OSError
        When ``path`` cannot be written; the message names ``path``.

    Examples
    --------
    >>> import os, tempfile, bp_xp
    >>> from bp_xp import checkpoint
    >>> net = bp_xp.TwoLayerNet(4, 3, 2, seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "net.npz")
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
    if optimizer is not None:
        meta["optimizer"], state_arrays = _optimizer_entry(optimizer, net)
        arrays.update(state_arrays)
    try:
        text = json.dumps(meta, allow_nan=False, default=_json_scalar)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"checkpoint metadata must be plain JSON data (str, number, list, "
                        f"dict, bool, None; finite numbers): {exc}") from exc
    arrays[_METADATA] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    # savez's **kwds share a namespace with its own `allow_pickle: bool` (NumPy >= 2.1), which
    # its stub types strictly; no key here can be "allow_pickle": each has a "/" or is _METADATA.
    named: dict[str, Any] = arrays
    atomic_write(os.fspath(path), lambda file: np.savez(file, **named))


def _layer_prefixes(net: Sequential) -> list[tuple[str, Layer]]:
    return [*((f"layer/{i}", layer) for i, layer in enumerate(net.layers.values())),
            ("loss", net.last_layer)]


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

    Reads no parameter arrays. Raises :class:`CheckpointError` like :func:`load`.

    Examples
    --------
    >>> import os, tempfile, bp_xp
    >>> from bp_xp import checkpoint
    >>> path = os.path.join(tempfile.mkdtemp(), "net.npz")
    >>> checkpoint.save(path, bp_xp.MultiLayerNet(4, [3], 2, seed=0))
    >>> meta = checkpoint.read_metadata(path)
    >>> meta["network"]["network"], meta["backend"], meta["dtype"]
    ('bp_xp.nets.MultiLayerNet', 'numpy', 'float32')
    """
    path = os.fspath(path)
    with _Archive(path) as archive:
        return archive.metadata()


def load(path: str | os.PathLike[str], *, backend: Any = None, device: Any = None,
         dtype: Any = None) -> tuple[Sequential, Optimizer | None]:
    """Rebuild the network (and optimizer) saved in ``path`` on a backend of your choice.

    Parameters
    ----------
    path : str or PathLike
    backend : str, module or Backend, optional
        Where to put the arrays. Default: ``"numpy"`` on the host, which every machine
        has, whatever the file was saved from (see :func:`read_metadata` for that).
    device : optional
        Overrides the backend's device (``"cuda:1"``...).
    dtype : str or dtype, optional
        Convert parameters and optimizer state to this dtype; default: the saved one.

    Returns
    -------
    (net, optimizer)
        ``net`` is of the class it was saved as (a network class of your own must be
        defined, i.e. its module imported, before loading). ``optimizer`` is ``None``
        when none was saved. Its state lives with the parameters, so training resumes
        where it stopped.

    Raises
    ------
    CheckpointError
        For a truncated, corrupt or foreign file, missing or malformed metadata, a format
        version newer than this bp_xp reads, or arrays whose names, sizes or shapes do
        not fit.
    BackendUnavailableError
        When the backend, device or dtype asked for is not available here.
    OSError
        When the file cannot be opened (``FileNotFoundError``...).
    """
    path = os.fspath(path)
    target = resolve_backend("numpy" if backend is None else backend, device)
    with _Archive(path) as archive:
        meta = archive.metadata()
        if dtype is None:
            dtype = meta["dtype"]
        new_dtype = target.float_dtype(dtype)
        net = _rebuild_network(archive, meta, target, new_dtype)
        optimizer = None
        if meta["optimizer"] is not None:
            optimizer = _restore_optimizer(archive, meta["optimizer"], net, target)
        archive.check_all_used()
    return net, optimizer


class _Archive:
    """A checkpoint file opened for bounded reading: sizes are checked before reading."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by __exit__
        try:
            size = os.fstat(self._file.fileno()).st_size
            self._zip = zipfile.ZipFile(self._file)
            infos = self._zip.infolist()
        except Exception as exc:  # any failure to parse a zip directory: not our file
            self._file.close()
            if _is_npy(path):
                raise CheckpointError(f"{path}: not a bp_xp checkpoint (a single .npy array, "
                                      "not an .npz archive)") from exc
            raise self.error(f"not a readable bp_xp checkpoint, the file is truncated, "
                             f"corrupt or of another kind ({type(exc).__name__}: {exc})") from exc
        self._infos: dict[str, zipfile.ZipInfo] = {}
        self._used: set[str] = set()
        try:
            self._check_directory(infos, size)
        except BaseException:
            self.close()
            raise

    def error(self, message: str) -> CheckpointError:
        return CheckpointError(f"{self.path}: {message}")

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

    def header(self, name: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
        """Shape and dtype declared by member ``name``, read without reading its data."""
        with self._open(name) as member:
            shape, dtype, _ = self._read_header(name, member)
        return shape, dtype

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
        return _parse_metadata(self, raw.tobytes())

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

    def __enter__(self) -> _Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_npy(path: str) -> bool:
    with open(path, "rb") as file:
        return file.read(6) == b"\x93NUMPY"


def _read_exactly(member: IO[bytes], size: int) -> bytes:
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


def _parse_metadata(archive: _Archive, raw: bytes) -> dict[str, Any]:
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise archive.error(f"{_METADATA!r} is not valid JSON ({type(exc).__name__}: "
                            f"{str(exc)[:200]})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise archive.error(f"not a bp_xp checkpoint (format {found!r}, expected {FORMAT_NAME!r})")
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise archive.error(f"format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise archive.error(
            f"written in checkpoint format version {version} (by bp_xp "
            f"{meta.get('bp_xp_version', '?')}); this bp_xp reads up to version "
            f"{FORMAT_VERSION}: upgrade bp_xp to load it"
        )
    _require(archive, meta, {"bp_xp_version": str, "dtype": str, "backend": str, "params": list,
                             "optimizer": (dict, type(None))})
    if meta["dtype"] not in _FLOAT_DTYPES:
        raise archive.error(f"metadata 'dtype' is {meta['dtype']!r}, expected one of "
                            f"{', '.join(_FLOAT_DTYPES)}")
    if not all(isinstance(key, str) for key in meta["params"]):
        raise archive.error("metadata 'params' must be a list of names")
    if version == 1:
        meta["network"] = _network_from_v1(archive, meta)
    _require(archive, meta, {"network": dict})
    network = meta["network"]
    _require(archive, network, {"network": str, "layers": list, "loss": dict,
                                "weight_decay_lambda": (int, float), "extra": dict}, "network")
    for i, spec in enumerate(network["layers"]):
        if not isinstance(spec, dict):
            raise archive.error(f"metadata 'network.layers[{i}]' must be an object")
        _require(archive, spec, {"name": str, "type": str, "config": dict}, f"network.layers[{i}]")
    _require(archive, network["loss"], {"type": str, "config": dict}, "network.loss")
    decay = network["weight_decay_lambda"]
    if not (math.isfinite(decay) and decay >= 0):
        raise archive.error(f"metadata 'network.weight_decay_lambda' must be a finite number "
                            f">= 0, got {decay!r}")
    optimizer = meta["optimizer"]
    if optimizer is not None:
        _require(archive, optimizer, {"type": str, "hyperparameters": dict, "step": int,
                                      "slots": list}, "optimizer")
        if not all(isinstance(slot, str) for slot in optimizer["slots"]):
            raise archive.error("metadata 'optimizer.slots' must be a list of names")
    return meta


def _require(archive: _Archive, mapping: dict[str, Any], fields: dict[str, Any],
             where: str = "") -> None:
    for key, kind in fields.items():
        name = f"{where}.{key}" if where else key
        if key not in mapping:
            raise archive.error(f"the metadata lacks {name!r}")
        if not isinstance(mapping[key], kind) or isinstance(mapping[key], bool):
            raise archive.error(f"metadata {name!r} has the wrong type "
                                f"({type(mapping[key]).__name__})")


def _network_from_v1(archive: _Archive, meta: dict[str, Any]) -> dict[str, Any]:
    """The version-2 network entry of a bp_xp 0.1 file, whose arrays are ``param/W1``..."""
    _require(archive, meta, {"architecture": dict})
    arch = meta["architecture"]
    _require(archive, arch, {"class": str, "sizes": list, "activation": str,
                             "weight_decay_lambda": (int, float)}, "architecture")
    classes = {"TwoLayerNet": "bp_xp.nets.TwoLayerNet", "MultiLayerNet": "bp_xp.nets.MultiLayerNet"}
    if arch["class"] not in classes:
        raise archive.error(f"unknown network class {arch['class']!r}; this bp_xp knows "
                            f"{', '.join(classes)}")
    sizes = arch["sizes"]
    if (len(sizes) < 2 or (arch["class"] == "TwoLayerNet" and len(sizes) != 3)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes)):
        raise archive.error(f"cannot rebuild {arch['class']} from {arch}: layer sizes {sizes}")
    try:
        activation = activation_class(arch["activation"])
    except ValueError:
        raise archive.error(f"cannot rebuild {arch['class']} from {arch}: activation "
                            f"{arch['activation']!r}") from None
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


def _rebuild_network(archive: _Archive, meta: dict[str, Any], target: Backend,
                     dtype: Any) -> Sequential:
    config = meta["network"]
    try:
        cls = network_class(config["network"])
    except KeyError as exc:
        raise archive.error(f"unknown network class {config['network']!r}: {exc.args[0]}") from None
    specs = [*((f"layer/{i}", spec) for i, spec in enumerate(config["layers"])),
             ("loss", config["loss"])]
    expected = {prefix for prefix, _ in specs}
    for name in archive.names():
        if not name.startswith(_OPTIMIZER) and name.rsplit("/", 2)[0] not in expected:
            raise archive.error(f"unexpected members {name}")
    # Every size is known from the headers before any array is read.
    for name in archive.names():
        archive.header(name)
    by_owner: dict[str, list[tuple[str, str, str]]] = {}
    for name in archive.names():
        head, _, key = name.rpartition("/")
        owner, _, what = head.rpartition("/")
        if what in ("params", "state"):
            by_owner.setdefault(owner, []).append((what, key, name))
    rebuilt: list[Layer] = []
    for prefix, spec in specs:
        arrays: dict[str, dict[str, Any]] = {"params": {}, "state": {}}
        for what, key, name in by_owner.get(prefix, ()):
            arrays[what][key] = target.asarray(archive.array(name), dtype=dtype)
        try:
            rebuilt.append(rebuild_layer(spec, arrays["params"], arrays["state"]))
        except KeyError as exc:
            raise archive.error(str(exc.args[0])) from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise archive.error(f"cannot rebuild layer {spec.get('name', prefix)!r} "
                                f"({spec['type']}) from the file: {exc}") from exc
    *layers, loss = rebuilt
    names = [spec["name"] for spec in config["layers"]]
    try:
        net = cls.from_layers(config, dict(zip(names, layers)), loss, target)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise archive.error(f"cannot rebuild {config['network']} from the file: {exc}") from exc
    if list(net.params) != meta["params"]:
        raise archive.error(f"the network has parameters {', '.join(net.params)}, the metadata "
                            f"lists {', '.join(meta['params'])}")
    return net


def _restore_optimizer(archive: _Archive, entry: dict[str, Any], net: Sequential,
                       target: Backend) -> Optimizer:
    cls = OPTIMIZERS.get(entry["type"])
    if cls is None:
        raise archive.error(f"unknown optimizer {entry['type']!r}; this bp_xp knows "
                            f"{', '.join(OPTIMIZERS)}")
    try:
        optimizer = cls(**entry["hyperparameters"])
    except (TypeError, ValueError) as exc:
        raise archive.error(f"bad optimizer hyperparameters: {exc}") from exc
    stored = [name for name in archive.names() if name.startswith(_OPTIMIZER)]
    if stored and entry["slots"] != list(optimizer.slots):
        raise archive.error(f"optimizer {entry['type']!r} keeps the slots {list(optimizer.slots)}, "
                            f"the metadata lists {entry['slots']}")
    state: dict[str, dict[str, Any]] = {slot: {} for slot in entry["slots"]}
    for name in stored:
        slot, _, key = name.removeprefix(_OPTIMIZER).partition("/")
        if slot not in state or key not in net.params:
            raise archive.error(f"unexpected member {name!r} (optimizer slots "
                                f"{entry['slots']}, parameters {', '.join(net.params)})")
        shape, _ = archive.header(name)
        expected = tuple(net.params[key].shape)
        if shape != expected:
            raise archive.error(f"optimizer state {slot!r} of {key!r} has shape {shape}, the "
                                f"network expects {expected}")
        state[slot][key] = target.asarray(archive.array(name), dtype=net.dtype)
    if stored:
        for slot, arrays in state.items():
            missing = [key for key in net.params if key not in arrays]
            if missing:
                raise archive.error(f"optimizer state {slot!r} lacks {', '.join(missing)}: "
                                    "resuming would silently restart those from zero")
    try:
        optimizer.load_state_dict({"type": entry["type"], "step": entry["step"],
                                   "hyperparameters": entry["hyperparameters"], "state": state})
    except (TypeError, ValueError) as exc:
        raise archive.error(f"bad optimizer state: {exc}") from exc
    return optimizer

