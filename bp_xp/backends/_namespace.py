"""``namespace_of``: the hot path every layer call goes through.

It is :func:`array_api_compat.array_namespace` plus a per-type cache (a layer asks on
every forward and backward, and array_api_compat's lookup costs microseconds) and a
device check, so that ``x`` on one backend or device and ``W`` on another fail *before*
any compute with an error naming both and the fix.

What the cache learns about a new array type comes from the spec of the backend that
owns it (:class:`~bp_xp.backends.BackendSpec`): whether all its arrays share one device
(``single_device``), whether its ``.device`` attribute can be compared directly
(``device_attribute``), and its fast kernels (``kernels``, dispatched by
:mod:`bp_xp.backends._kernels`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from . import _builtin  # noqa: F401  (the built-in backends are registered before any lookup)
from . import numpy as numpy_backend
from ._errors import BackendMismatchError
from ._registry import on_unregister, spec_of
from ._spec import BackendSpec

__all__ = ["FAST_KERNELS", "describe_place", "known_type", "namespace_of"]

_NAMESPACE_BY_TYPE: dict[type, ModuleType] = {}
# Types whose arrays all sit on one device: no device check needed (NumPy).
_SINGLE_DEVICE_TYPES: set[type] = {np.ndarray}
# Types whose ``.device`` is what array_api_compat.device() returns: compared directly (torch).
_DEVICE_ATTRIBUTE_TYPES: set[type] = set()
#: Kernel name -> {array type -> the owning backend's fast function for it}: the backend
#: file's ``KERNELS``, learned per array type with the namespace. A fast function returns
#: ``None`` where it does not apply; the dispatchers (``bp_xp.backends.zero_where`` ...) then
#: run the portable spelling.
FAST_KERNELS: dict[str, dict[type, Callable[..., Any]]] = {
    name: {np.ndarray: fn} for name, fn in numpy_backend.SPEC.kernels.items()
}


def known_type(kind: type) -> bool:
    """Whether arrays of type ``kind`` have been met (and their backend's kernels learned)."""
    return kind in _NAMESPACE_BY_TYPE


def _forget(spec: BackendSpec) -> None:
    """Drop what the cache learned about the array types of an unregistered backend."""
    for kind in [k for k in _NAMESPACE_BY_TYPE if _SPEC_BY_TYPE.get(k) is spec]:
        del _NAMESPACE_BY_TYPE[kind]
        _SPEC_BY_TYPE.pop(kind, None)
        _SINGLE_DEVICE_TYPES.discard(kind)
        _DEVICE_ATTRIBUTE_TYPES.discard(kind)
        for table in FAST_KERNELS.values():
            table.pop(kind, None)


_SPEC_BY_TYPE: dict[type, BackendSpec] = {}
on_unregister(_forget)


def namespace_of(*arrays: Any, names: Sequence[str] | None = None) -> ModuleType:
    """The Array API namespace shared by ``arrays``; refuses mixed backends or devices.

    Parameters
    ----------
    *arrays
        Arrays (Python scalars and ``None`` are ignored). An error suggests moving an
        array to where most of the others are, or, on a tie, to where the first is: pass
        the network's own array first.
    names : sequence of str, optional
        Names of ``arrays`` for the error message (``("W", "x")``).

    Raises
    ------
    BackendMismatchError
        When the arrays come from different backends or sit on different devices.
    TypeError
        When none of the arguments is an array.

    Examples
    --------
    >>> import numpy as np, bp_xp
    >>> bp_xp.namespace_of(np.ones(2), np.zeros(3)).__name__
    'array_api_compat.numpy'
    >>> bp_xp.namespace_of(bp_xp.to_device([1.0], "array_api_strict")).__name__
    'array_api_strict'
    >>> bp_xp.namespace_of(np.ones(1), bp_xp.to_device([1.0], "array_api_strict"), names=("W", "x"))
    Traceback (most recent call last):
    ...
    bp_xp.BackendMismatchError: bp_xp: arrays from different backends met in one computation: W is ...
    """
    first = type(arrays[0])
    xp = _NAMESPACE_BY_TYPE.get(first)
    if xp is not None:
        if len(arrays) == 1 or (first in _SINGLE_DEVICE_TYPES
                                and all(type(a) is first for a in arrays)):
            return xp
        if all(type(a) is first for a in arrays):
            if first in _DEVICE_ATTRIBUTE_TYPES:
                device = arrays[0].device
                if all(a.device == device for a in arrays):
                    return xp
            _check_same_device(arrays, names)
            return xp
    return _namespace_slow(arrays, names)


def _namespace_slow(arrays: Sequence[Any], names: Sequence[str] | None) -> ModuleType:
    labelled = [
        (names[i] if names else f"argument {i}", a)
        for i, a in enumerate(arrays)
        if a is not None and type(a) not in (bool, int, float, complex)
    ]
    if not labelled:
        raise TypeError("bp_xp: expected at least one array, got only Python scalars or None")
    try:
        xp = array_api_compat.array_namespace(*(a for _, a in labelled))
    except TypeError as exc:
        described = ", ".join(f"{label} is {_describe(a)}" for label, a in labelled)
        raise BackendMismatchError(
            f"bp_xp: arrays from different backends met in one computation: {described}. "
            f"Move them to one backend first, e.g. with {_suggest(labelled, names)}."
        ) from exc
    if len({type(a) for _, a in labelled}) == 1:
        _learn(type(labelled[0][1]), labelled[0][1], xp)
    if len(labelled) > 1:
        _check_same_device([a for _, a in labelled], [label for label, _ in labelled])
    return xp


def _learn(kind: type, example: Any, xp: ModuleType) -> None:
    """Cache what the owning backend's spec says about arrays of type ``kind``."""
    spec = spec_of(example)
    if spec is None:
        return  # an Array API array of a library bp_xp does not know: no cache, always checked
    _NAMESPACE_BY_TYPE[kind] = xp
    _SPEC_BY_TYPE[kind] = spec
    if spec.single_device:
        _SINGLE_DEVICE_TYPES.add(kind)
    if spec.device_attribute:
        _DEVICE_ATTRIBUTE_TYPES.add(kind)
    for name, fast in spec.kernels.items():
        FAST_KERNELS.setdefault(name, {})[kind] = fast


def _check_same_device(arrays: Sequence[Any], names: Sequence[str] | None) -> None:
    devices = [array_api_compat.device(a) for a in arrays]
    # A JAX tracer has no device (None) while jax.jit traces: it is placed when the
    # computation runs, beside its concrete operands, so only known devices are compared.
    placed = [dev for dev in devices if dev is not None]
    first = placed[0] if placed else None
    for dev in placed[1:]:
        if dev != first:
            labels = list(names) if names else [f"argument {i}" for i in range(len(arrays))]
            described = ", ".join(f"{label} is on {d}" for label, d in zip(labels, devices))
            raise BackendMismatchError(
                f"bp_xp: arrays on different devices met in one computation: {described}. "
                f"Move them to one device first, e.g. with "
                f"{_suggest(list(zip(labels, arrays)), names)}."
            )


def _suggest(labelled: Sequence[tuple[str, Any]], names: Sequence[str] | None) -> str:
    """``bp_xp.to_device(x, 'numpy')``: move an odd one out to where the others are.

    The target is where most of the arrays are (``W`` and ``b`` against one ``x``); on a
    tie, where the first one is, so callers name the network's own array first.
    """
    places = [describe_place(array) for _, array in labelled]
    known = [p for p in places if p is not None]
    if not known:
        return "bp_xp.to_device(array, backend, device)"
    target = max(known, key=lambda p: (known.count(p), -places.index(p)))
    other = next(label for (label, _), place in zip(labelled, places) if place != target)
    return f"bp_xp.to_device({other if names else 'array'}, {target!r})"


def describe_place(x: Any) -> str | None:
    """``"torch:cuda:0"``: where array ``x`` lives, as :func:`bp_xp.resolve_backend` reads it.

    ``None`` when no registered backend owns ``x``.
    """
    spec = spec_of(x)
    if spec is None:
        return None
    device = spec.parse_device(None) if spec.chunked else array_api_compat.device(x)
    if device is None:  # a tracer: placed only when the traced computation runs
        return spec.name
    text = spec.format_device(device)
    return spec.name if text is None else f"{spec.name}:{text}"


def _describe(x: Any) -> str:
    place = describe_place(x)
    if place is None:
        return f"a {type(x).__module__}.{type(x).__qualname__}"
    return f"a {place} array"
