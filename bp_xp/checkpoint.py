"""Save a network (and its optimizer) on one backend, load it on any other.

A checkpoint is one ``.npz`` file, written without pickle, that holds:

* ``metadata.json``: a UTF-8 JSON document stored as a ``uint8`` array, with the format
  name and version, the bp_xp version, the architecture (class and constructor
  arguments), the dtype and backend the net was saved from, the optimizer's type,
  hyperparameters and step, and the caller's own ``metadata``;
* ``param/<name>``: each parameter as a NumPy array (``param/W1``...);
* ``optimizer/<slot>/<name>``: each optimizer state array (``optimizer/m/W1``...).

Saving copies the arrays to the host and leaves the network where it is. The file is
written atomically: a temporary file in the same directory, flushed and fsync'ed, then
renamed over ``path``, so a crash leaves either the old checkpoint or the new one.

Loading rebuilds the network on the backend you ask for, by default NumPy on the host,
which works on every machine; the backend the file came from is never imported (a
checkpoint saved from CuPy loads on a machine without CUDA). :func:`read_metadata`
tells where it came from, if you want to go back there.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np  # host-side only: the file holds NumPy arrays

from ._backend import Backend, resolve_backend, to_numpy
from .nets import MultiLayerNet, TwoLayerNet
from .optim import OPTIMIZERS, Optimizer

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "CheckpointError", "load", "read_metadata", "save"]

#: Written into every checkpoint; a file without it is not a bp_xp checkpoint.
FORMAT_NAME = "bp_xp.checkpoint"
#: Bumped when the layout changes; :func:`load` refuses files newer than this.
FORMAT_VERSION = 1

_METADATA = "metadata.json"
_PARAM = "param/"
_STATE = "optimizer/"
_NETWORKS: dict[str, type] = {"TwoLayerNet": TwoLayerNet, "MultiLayerNet": MultiLayerNet}

Network = Any  # TwoLayerNet | MultiLayerNet


class CheckpointError(ValueError):
    """A file is not a readable bp_xp checkpoint: the message names the file and why."""


# --------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------


def save(path: str | os.PathLike[str], net: Network, optimizer: Optimizer | None = None, *,
         metadata: Mapping[str, Any] | None = None) -> None:
    """Write ``net`` (and ``optimizer``'s state) to ``path``, atomically.

    Parameters
    ----------
    path : str or PathLike
        Used as given (no ``.npz`` is appended). An existing file is replaced only once
        the new one is complete.
    net : TwoLayerNet or MultiLayerNet
        On any backend and device; it is read, never moved or changed.
    optimizer : bp_xp.optim.Optimizer, optional
        Its type, hyperparameters, step and state arrays are saved too.
    metadata : mapping, optional
        Anything JSON can hold (epoch, accuracy...), NaN and infinity excepted; NumPy
        scalars and 0-d arrays of any backend become Python numbers. :func:`read_metadata`
        returns it under ``"user"``.

    Raises
    ------
    TypeError
        For a network or optimizer class this format does not know, or ``metadata``
        that JSON cannot hold.
    ValueError
        When the optimizer's state does not fit the network's parameters.

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

    meta: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "bp_xp_version": __version__,
        "architecture": _architecture(net),
        "dtype": _dtype_name(net.dtype),
        "backend": str(net.backend),
        "params": list(net.params),
        "optimizer": None,
        "user": None if metadata is None else dict(metadata),
    }
    arrays = {_PARAM + key: to_numpy(net.params[key]) for key in net.params}
    if optimizer is not None:
        meta["optimizer"], state_arrays = _optimizer_entry(optimizer, net)
        arrays.update(state_arrays)
    try:
        text = json.dumps(meta, allow_nan=False, default=_json_scalar)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"checkpoint metadata must be plain JSON data (str, number, list, "
                        f"dict, bool, None; finite numbers): {exc}") from exc
    arrays[_METADATA] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    _write_atomically(os.fspath(path), arrays)


def _json_scalar(value: Any) -> Any:
    """NumPy scalars and 0-d arrays of any backend (an accuracy, a loss) as Python numbers."""
    if isinstance(value, np.generic) or getattr(value, "ndim", None) == 0:
        try:
            return to_numpy(value).item()
        except Exception:  # not an array bp_xp knows: let json name the type
            pass
    raise TypeError(f"{type(value).__qualname__} is not JSON serializable")


def _architecture(net: Network) -> dict[str, Any]:
    name = type(net).__name__
    if _NETWORKS.get(name) is not type(net):
        raise TypeError(
            f"checkpoint.save knows {', '.join(_NETWORKS)}, not {type(net).__qualname__}"
        )
    # weight_init_std is not kept by the nets and does not matter once weights are loaded.
    return {
        "class": name,
        "sizes": [int(s) for s in net._sizes],
        "activation": net._activation,
        "weight_decay_lambda": float(net.weight_decay_lambda),
    }


def _optimizer_entry(optimizer: Optimizer,
                     net: Network) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
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
            arrays[f"{_STATE}{slot}/{key}"] = to_numpy(array)
    entry = {"type": state["type"], "hyperparameters": state["hyperparameters"],
             "step": state["step"], "slots": list(state["state"])}
    return entry, arrays


def _write_atomically(path: str, arrays: dict[str, np.ndarray]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    # os.open with 0o666 lets the umask decide the mode, as for any new file.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's metadata (format, versions, architecture, dtype, backend, optimizer, user).

    Reads no parameter arrays. Raises :class:`CheckpointError` like :func:`load`.

    Examples
    --------
    >>> import os, tempfile, bp_xp
    >>> from bp_xp import checkpoint
    >>> path = os.path.join(tempfile.mkdtemp(), "net.npz")
    >>> checkpoint.save(path, bp_xp.MultiLayerNet(4, [3], 2, seed=0))
    >>> meta = checkpoint.read_metadata(path)
    >>> meta["architecture"]["class"], meta["backend"], meta["dtype"]
    ('MultiLayerNet', 'numpy', 'float32')
    """
    meta, _ = _read(os.fspath(path), arrays=False)
    return meta


def load(path: str | os.PathLike[str], *, backend: Any = None, device: Any = None,
         dtype: Any = None) -> tuple[Network, Optimizer | None]:
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
        ``optimizer`` is ``None`` when none was saved. Its state lives with the
        parameters, so training resumes where it stopped.

    Raises
    ------
    CheckpointError
        For a truncated or foreign file, missing or malformed metadata, a format version
        newer than this bp_xp reads, or arrays whose names or shapes do not fit.
    BackendUnavailableError
        When the backend, device or dtype asked for is not available here.
    OSError
        When the file cannot be opened (``FileNotFoundError``...).
    """
    path = os.fspath(path)
    meta, arrays = _read(path, arrays=True)
    target = resolve_backend("numpy" if backend is None else backend, device)
    net = _rebuild(path, meta, arrays, target, meta["dtype"] if dtype is None else dtype)
    optimizer = None
    if meta["optimizer"] is not None:
        optimizer = _restore_optimizer(path, meta["optimizer"], arrays, net, target)
    return net, optimizer


def _read(path: str, *, arrays: bool) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    try:
        # Open the file here: np.load(path) leaves it open when the zip is unreadable.
        with open(path, "rb") as file, contextlib.ExitStack() as stack:
            npz = np.load(file, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise CheckpointError(f"{path}: not a bp_xp checkpoint (a single .npy array, "
                                      "not an .npz archive)")
            stack.enter_context(npz)
            if _METADATA not in npz.files:
                raise CheckpointError(f"{path}: not a bp_xp checkpoint (no {_METADATA!r} "
                                      f"member; it holds {', '.join(npz.files[:5]) or 'nothing'})")
            meta = _parse_metadata(path, npz[_METADATA])
            members = {name: npz[name] for name in npz.files if name != _METADATA} if arrays else {}
            for name, member in members.items():
                if not isinstance(member, np.ndarray):
                    raise CheckpointError(f"{path}: member {name!r} is not a NumPy array")
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, ValueError, EOFError, KeyError) as exc:
        raise CheckpointError(f"{path}: not a readable bp_xp checkpoint, the file is "
                              f"truncated, corrupt or of another kind ({exc})") from exc
    return meta, members


def _parse_metadata(path: str, raw: np.ndarray) -> dict[str, Any]:
    if not isinstance(raw, np.ndarray) or raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"{path}: {_METADATA!r} is not UTF-8 JSON bytes")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: {_METADATA!r} is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{path}: not a bp_xp checkpoint (format {found!r}, "
                              f"expected {FORMAT_NAME!r})")
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: written in checkpoint format version {version} (by bp_xp "
            f"{meta.get('bp_xp_version', '?')}); this bp_xp reads up to version "
            f"{FORMAT_VERSION}: upgrade bp_xp to load it"
        )
    _require(path, meta, {"bp_xp_version": str, "architecture": dict, "dtype": str,
                          "backend": str, "params": list, "optimizer": (dict, type(None))})
    _require(path, meta["architecture"], {"class": str, "sizes": list, "activation": str,
                                          "weight_decay_lambda": (int, float)}, "architecture")
    if meta["optimizer"] is not None:
        _require(path, meta["optimizer"], {"type": str, "hyperparameters": dict, "step": int,
                                           "slots": list}, "optimizer")
    return meta


def _require(path: str, mapping: dict[str, Any], fields: dict[str, Any], where: str = "") -> None:
    for key, kind in fields.items():
        name = f"{where}.{key}" if where else key
        if key not in mapping:
            raise CheckpointError(f"{path}: the metadata lacks {name!r}")
        if not isinstance(mapping[key], kind) or isinstance(mapping[key], bool):
            raise CheckpointError(f"{path}: metadata {name!r} has the wrong type "
                                  f"({type(mapping[key]).__name__})")


def _rebuild(path: str, meta: dict[str, Any], arrays: dict[str, np.ndarray], target: Backend,
             dtype: Any) -> Network:
    arch = meta["architecture"]
    cls = _NETWORKS.get(arch["class"])
    if cls is None:
        raise CheckpointError(f"{path}: unknown network class {arch['class']!r}; this bp_xp "
                              f"knows {', '.join(_NETWORKS)}")
    sizes = arch["sizes"]
    dtype = target.dtype(dtype)  # an unavailable dtype is the caller's problem, not the file's
    try:
        if len(sizes) < 2 or (cls is TwoLayerNet and len(sizes) != 3):
            raise ValueError(f"{arch['class']} cannot have the layer sizes {sizes}")
        if cls is TwoLayerNet:
            net = TwoLayerNet(*sizes, weight_init_std=0.0, backend=target, dtype=dtype)
        else:
            net = MultiLayerNet(sizes[0], sizes[1:-1], sizes[-1], activation=arch["activation"],
                                weight_init_std=0.0,
                                weight_decay_lambda=arch["weight_decay_lambda"],
                                backend=target, dtype=dtype)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild {arch['class']} from {arch}: {exc}") from exc
    unexpected = [name for name in arrays if not name.startswith(_PARAM)
                  and not (meta["optimizer"] is not None and name.startswith(_STATE))]
    if unexpected:
        raise CheckpointError(f"{path}: unexpected members {', '.join(unexpected)}")
    stored = sorted(name.removeprefix(_PARAM) for name in arrays if name.startswith(_PARAM))
    if stored != sorted(net.params) or sorted(meta["params"]) != sorted(net.params):
        raise CheckpointError(f"{path}: {arch['class']}{tuple(sizes)} has parameters "
                              f"{', '.join(net.params)}, the file holds {', '.join(stored)}")
    host = {key: arrays[_PARAM + key] for key in net.params}
    for key, array in host.items():
        _check_array(path, f"parameter {key!r}", array, tuple(net.params[key].shape))
    for key, array in host.items():
        net.params[key] = target.asarray(array, dtype=net.dtype)
    return net


def _restore_optimizer(path: str, entry: dict[str, Any], arrays: dict[str, np.ndarray],
                       net: Network, target: Backend) -> Optimizer:
    cls = OPTIMIZERS.get(entry["type"])
    if cls is None:
        raise CheckpointError(f"{path}: unknown optimizer {entry['type']!r}; this bp_xp knows "
                              f"{', '.join(OPTIMIZERS)}")
    try:
        optimizer = cls(**entry["hyperparameters"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: bad optimizer hyperparameters: {exc}") from exc
    state: dict[str, dict[str, Any]] = {slot: {} for slot in entry["slots"]}
    for name, array in arrays.items():
        if name.startswith(_PARAM):
            continue
        slot, _, key = name.removeprefix(_STATE).partition("/")
        if slot not in state or key not in net.params:
            raise CheckpointError(f"{path}: unexpected member {name!r} (optimizer slots "
                                  f"{entry['slots']}, parameters {', '.join(net.params)})")
        _check_array(path, f"optimizer state {slot!r} of {key!r}", array,
                     tuple(net.params[key].shape))
        state[slot][key] = target.asarray(array, dtype=net.dtype)
    try:
        optimizer.load_state_dict({"type": entry["type"], "step": entry["step"],
                                   "hyperparameters": entry["hyperparameters"], "state": state})
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: bad optimizer state: {exc}") from exc
    return optimizer


def _check_array(path: str, what: str, array: np.ndarray, shape: tuple[int, ...]) -> None:
    if array.dtype.kind != "f":
        raise CheckpointError(f"{path}: {what} has dtype {array.dtype}, expected a float dtype")
    if array.shape != shape:
        raise CheckpointError(f"{path}: {what} has shape {array.shape}, the network expects "
                              f"{shape}")


def _dtype_name(dtype: Any) -> str:
    return str(getattr(dtype, "name", dtype)).rsplit(".", 1)[-1]
