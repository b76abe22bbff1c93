"""``namespace_of``: the hot path every layer call goes through.

It is :func:`array_api_compat.array_namespace` plus a per-type cache (a layer asks on
every forward and backward, and array_api_compat's lookup costs microseconds) and a
device check, so that ``x`` on one backend or device and ``W`` on another fail *before*
any compute with an error naming both and the fix.

What the cache learns about a new array type comes from the backend file that owns it
(:mod:`bp_xp.backends.numpy` etc.): whether all its arrays share one device, whether
its ``.device`` attribute can be compared directly, and its fast kernels (the
backend file's ``KERNELS``, dispatched by :mod:`bp_xp.backends`' kernel functions).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from . import numpy as _numpy_backend
from ._errors import BackendError, BackendMismatchError

__all__ = ["namespace_of"]

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
    name: {np.ndarray: fn} for name, fn in _numpy_backend.KERNELS.items()
}


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
    """Cache what the owning backend file says about arrays of type ``kind``."""
    from . import module_of  # the registry; imported here to avoid an import cycle

    module = module_of(example)
    if module is None:
        return  # an Array API array of a library bp_xp does not know: no cache, always checked
    _NAMESPACE_BY_TYPE[kind] = xp
    if getattr(module, "SINGLE_DEVICE", False):
        _SINGLE_DEVICE_TYPES.add(kind)
    if getattr(module, "DEVICE_ATTRIBUTE", False):
        _DEVICE_ATTRIBUTE_TYPES.add(kind)
    for name, fast in getattr(module, "KERNELS", {}).items():
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
    from . import backend_of

    places: list[str | None] = []
    for _, array in labelled:
        try:
            places.append(str(backend_of(array)))
        except BackendError:
            places.append(None)
    known = [p for p in places if p is not None]
    if not known:
        return "bp_xp.to_device(array, backend, device)"
    target = max(known, key=lambda p: (known.count(p), -places.index(p)))
    other = next(label for (label, _), place in zip(labelled, places) if place != target)
    return f"bp_xp.to_device({other if names else 'array'}, {target!r})"


def _describe(x: Any) -> str:
    from . import backend_of

    try:
        return f"a {backend_of(x)} array"
    except BackendError:
        return f"a {type(x).__module__}.{type(x).__qualname__}"
