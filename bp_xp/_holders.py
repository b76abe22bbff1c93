"""Refuse an optimizer step that the holders of a parameter would never see.

The book's networks share arrays between their layers and their ``params`` dict
(``self.layers['Affine1'] = Affine(self.params['W1'], ...)``), and the book's optimizers
write the step into those arrays (``params[key] -= lr * grads[key]``), so the layers see
it. bp_xp's optimizers do the same where the backend can write in place
(:attr:`bp_xp.backends.BackendSpec.writes_in_place`: NumPy, torch, CuPy). Elsewhere (JAX,
Dask, array-api-strict, read-only NumPy arrays, torch tensors that require grad) the
step can only *replace* the dict's entry with a new array: a layer holding the old array
keeps computing with it, and the network silently does not learn.

:func:`refuse_unseen_replacement` detects that case before anything is committed: an
array that is about to be replaced in a plain ``dict`` and is also referenced from
anywhere else. The rule it enforces is the book's semantics: after ``update``, every
holder of a parameter sees the step. A holder kept on purpose (``old = params['W']`` to
compare after the step) is refused too, deliberately: on a backend that writes in place
that same ``old`` would have changed with the step, so such code means different things
on different backends. Holding a copy (``xp.asarray(a, copy=True)``) means the same
everywhere and passes.

How the holders are counted (CPython): :func:`sys.getrefcount` returns the number of
strong references to an object, including the one its own argument makes. The array to
be replaced is referenced by the caller's dict and by the optimizer's own snapshot of the
dict (``current`` in ``Optimizer.update``); anything beyond that is a holder outside.
Which exact count "nothing else" gives is not a language guarantee (3.14 lets the
interpreter borrow some references), so it is not hard-coded: it is measured once, on a
probe object held exactly that way, through the same code path (:func:`_baseline`).
Weak references do not count (they do not keep the old array alive, so they cannot hide
the step). Where ``sys.getrefcount`` does not exist (PyPy), nothing is checked. Only a
real ``dict`` (or subclass) is checked, since only for it is the number of references the
mapping itself holds known (one per entry); other mappings keep today's behaviour.

The check costs a backend lookup per entry of a plain dict and a ``getrefcount`` per
array to be replaced: about 4 us (NumPy) and 6.5 us (JAX) for a dict of four small arrays
(timeit, shared machine), beside an update of hundreds of microseconds; bp_xp's own
networks (:class:`bp_xp.Params`) are not checked at all. Naming the holders in the message
searches the objects that hold the dict (:func:`gc.get_referrers`), only on the error path.
"""

from __future__ import annotations

import gc
import numbers
import sys
import types
from collections.abc import Mapping
from typing import Any

from .backends import spec_of

__all__ = ["HeldParameterError", "refuse_unseen_replacement"]

_BASELINE: int | None = None


class HeldParameterError(TypeError):
    """An optimizer step on a plain dict would replace an array that something else holds.

    Raised by ``Optimizer.update`` before anything changes: the parameter's backend cannot
    write the step into the array (JAX, Dask, array-api-strict...), so the step could only
    store a new array in the dict, and the other holder (typically a layer of a network
    written the book's way) would keep the old one: the network would not learn.
    """

    __module__ = "bp_xp.optim"


def _references(mapping: Mapping[str, Any], key: str) -> int:
    """Strong references to ``mapping[key]``, as :func:`sys.getrefcount` counts them here."""
    return sys.getrefcount(mapping[key])


def _baseline() -> int:
    """What :func:`_references` returns for an object held by exactly two dicts."""
    global _BASELINE
    if _BASELINE is None:
        probe = object()
        params, current = {"p": probe}, {"p": probe}
        del probe
        _BASELINE = _references(current, "p")
        del params
    return _BASELINE


def refuse_unseen_replacement(optimizer: Any, params: Any, current: dict[str, Any]) -> None:
    """Raise :class:`HeldParameterError` if ``optimizer``'s step on ``params`` would go unseen.

    Called by ``Optimizer.update`` before the step is computed (the new arrays may refer to
    the old ones: a torch result's autograd graph does). ``params`` is the caller's mapping
    and ``current`` the optimizer's own snapshot of it (``{key: params[key]}``; no other
    reference to its values may be alive in the optimizer); on refusal it is emptied (see
    below). Entries that are Python numbers, arrays the backend writes in place, or traced
    values (``jax.jit``) are not concerned: numbers have no identity a holder could rely on
    (the book's ``optimizer_compare_naive.py`` reads them back from the dict), arrays
    written in place are seen by every holder, and a tracer is held by the tracing itself.
    """
    if not isinstance(params, dict) or not hasattr(sys, "getrefcount"):
        return
    base = _baseline()
    for key in current:
        value = current[key]
        if isinstance(value, numbers.Number):
            continue
        spec = spec_of(value)
        # Not a backend's array; written in place (every holder sees the step); or a traced
        # value (jax.jit), which the tracing machinery itself holds and whose step is
        # functional by nature.
        if spec is None or spec.is_tracer(value) or (
                spec.writes_in_place is not None and spec.writes_in_place(value)):
            continue
        if dict.get(params, key) is not value:  # a dict subclass that computes its values
            continue
        del value  # this frame's reference is not a holder
        extra = _references(current, key) - base
        if extra > 0:
            where = f"{type(optimizer).__name__}.update"
            message = _message(where, key, current[key], extra, params, current)
            # The traceback keeps the optimizer's frames, and with them this snapshot: emptied,
            # it holds no parameter, so a retry after a kept error (the REPL's
            # sys.last_exc) is not refused because of the error itself.
            current.clear()
            raise HeldParameterError(message)


def _message(where: str, key: str, value: Any, extra: int, params: Any,
             current: Mapping[str, Any]) -> str:
    spec = spec_of(value)
    kind = (f"a {spec.name} array" if spec is not None
            else f"a {type(value).__module__}.{type(value).__qualname__}")
    holders = _holders(value, params, current)
    held_by = ("held as " + ", ".join(holders) if holders
               else "e.g. a variable: not reachable from an object holding the params dict")
    return (
        f"{where}: params[{key!r}] is {kind}, which this backend cannot write in place, "
        f"and {extra} more reference(s) to it exist outside the params dict ({held_by}). "
        "The step could only store a new array in the dict, which they would never see: a "
        "network whose layers hold its arrays (as the book writes networks) would silently "
        "not learn. Nothing was changed. Ways out: train a bp_xp network (bp_xp.TwoLayerNet, "
        "SimpleConvNet, DeepConvNet, Sequential...: its params own the layers' arrays); "
        "make the layers read their arrays from the params dict at each call; use a backend "
        "that writes in place (numpy, torch, cupy); or, if you keep the old array on "
        "purpose, keep a copy (xp.asarray(a, copy=True)) - where arrays are written in "
        "place, the old array would have changed with the step"
    )


def _holders(value: Any, params: Any, current: Any) -> list[str]:
    """Paths to ``value`` from the objects that hold ``params`` (error path only).

    The holder of a book network's array is nearly always reachable from the network,
    which also holds the ``params`` dict (``network.layers['Affine1'].W``). The objects that
    refer to ``params`` are found with :func:`gc.get_referrers` (a network, or its
    ``__dict__``, is tracked by the collector even where the arrays and small dicts are not),
    and searched breadth-first a few levels deep through instance attributes, dict entries
    and list items. Frames are left out: reading a frame's ``f_locals`` before Python 3.13
    leaves a snapshot of its variables on the frame, which would itself hold the array.
    At most three paths are returned; a holder found no other way (a variable) is not named.
    """
    skip = {id(params), id(current)}
    found: list[str] = []
    for owner in _owners_of(params, skip):
        found += _paths_from(f"{type(owner).__name__}", owner, value, skip, 3 - len(found))
        if len(found) >= 3:
            break
    return found


_MAX_DEPTH = 6
_MAX_VISITS = 20_000


def _owners_of(params: Any, skip: set[int]) -> list[Any]:
    owners: list[Any] = []
    for referrer in gc.get_referrers(params):
        if type(referrer) is types.FrameType or id(referrer) in skip:
            continue
        if type(referrer) is dict:  # an instance's __dict__: the instance is the owner
            owners += [obj for obj in gc.get_referrers(referrer)
                       if type(obj) is not types.FrameType and _attributes(obj) is referrer]
        elif _attributes(referrer) is not None:
            owners.append(referrer)
    return owners


def _paths_from(label: str, root: Any, value: Any, skip: set[int], most: int) -> list[str]:
    queue = [(label, root)]
    found: list[str] = []
    seen = set(skip)
    visits = 0
    for _depth in range(_MAX_DEPTH):
        following: list[tuple[str, Any]] = []
        for path, obj in queue:
            if obj is value:
                found.append(path)
                if len(found) >= most:
                    return found
                continue
            visits += 1
            if id(obj) in seen or visits > _MAX_VISITS:
                continue
            seen.add(id(obj))
            following.extend(_children(path, obj))
        queue = following
    return found


def _attributes(obj: Any) -> dict[str, Any] | None:
    """``obj``'s instance dictionary, read without running any of its code; or ``None``."""
    if issubclass(type(obj), (type, types.ModuleType, types.FunctionType, types.MethodType)):
        return None
    try:
        attributes = object.__getattribute__(obj, "__dict__")
    except Exception:  # no instance dictionary (or one that cannot be read)
        return None
    return attributes if type(attributes) is dict else None


def _children(path: str, obj: Any) -> list[tuple[str, Any]]:
    kind = type(obj)
    if issubclass(kind, dict):
        return [(f"{path}[{key!r}]", item) for key, item in list(obj.items())
                if isinstance(key, (str, int))]
    if kind is list or kind is tuple:
        return [(f"{path}[{i}]", item) for i, item in enumerate(obj)]
    attributes = _attributes(obj)
    if attributes is None:
        return []
    return [(f"{path}.{name}", item) for name, item in list(attributes.items())]
