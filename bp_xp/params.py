"""``Params``: the book's ``params`` dict, with the layers as the one owner of each array.

In the book, ``params['W1']`` and ``Affine.W`` are the same NumPy array and training
updates it in place. That aliasing breaks on immutable backends (JAX) and whenever a
user writes ``params['W1'] = params['W1'] - lr * grad``: the layer would keep the old
array. Here ``params`` is a view: reading a key reads the layer's own ``params`` entry
(``affine.params["W"]``, which ``affine.W`` also reads), writing a key replaces it, so
the next ``predict`` always sees the new array, and in-place updates
(``params['W1'] -= ...`` on NumPy, CuPy, torch) keep working too.

A replacement is checked before it is stored (by the same function that checks an
optimizer's gradients), so a wrong update fails loudly and leaves the network as it
was: an array, of the same shape, dtype, backend and device.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from types import MappingProxyType
from typing import Any

from ._checks import check_like, same_kind
from .backends import namespace_of

__all__ = ["Params"]


class Params(MutableMapping):
    """A mapping from parameter names (``"W1"``) to arrays held by layers.

    Parameters
    ----------
    owners : dict
        ``{key: (layer, name)}``, e.g. ``{"W1": (affine1, "W")}``: ``params["W1"]`` is
        ``affine1.params["W"]``.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.layers import Affine
    >>> from bp_xp.params import Params
    >>> layer = Affine(np.zeros((2, 3)), np.zeros(3))
    >>> params = Params({"W1": (layer, "W"), "b1": (layer, "b")})
    >>> params["W1"] = params["W1"] + 1.0
    >>> float(layer.W.sum())
    6.0
    """

    def __init__(self, owners: Mapping[str, tuple[Any, str]]) -> None:
        self._owners = dict(owners)

    @property
    def owners(self) -> Mapping[str, tuple[Any, str]]:
        """``{key: (layer, name)}``: which layer owns each parameter, under which name.

        A read-only view, in the order of the keys. Code that must replace many
        parameters at once after validating them itself (an optimizer's commit, a
        compiled step) writes ``layer.params[name]`` directly through it.
        """
        return MappingProxyType(self._owners)

    @property
    def slots(self) -> dict[str, tuple[Any, str]]:
        """The older name of :attr:`owners` (a copy), kept for existing code.

        ``slots`` also names an optimizer's state arrays (:attr:`bp_xp.optim.Optimizer.slots`);
        prefer :attr:`owners` here.
        """
        return dict(self._owners)

    def __getitem__(self, key: str) -> Any:
        owner, name = self._owner(key)
        return owner.params[name]

    def __setitem__(self, key: str, value: Any) -> None:
        owner, name = self._owner(key)
        old = owner.params[name]
        if value is old:  # the in-place path: `params[k] -= g` hands back the same array
            return
        if same_kind(old, value):  # the update of every step: only the device is left to check
            namespace_of(old, value, names=(f"params[{key!r}]", "the new value"))
            owner.params[name] = value
            return
        check_like(old, value, where=f"cannot set params[{key!r}]", ref_name="the parameter",
                   value_name="the new value",
                   dtype_hint="; cast the update (a Python float learning rate keeps the dtype)")
        owner.params[name] = value

    def __delitem__(self, key: str) -> None:
        raise TypeError("a network's parameters cannot be removed")

    def __iter__(self) -> Iterator[str]:
        return iter(self._owners)

    def __len__(self) -> int:
        return len(self._owners)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k!r}: {self[k].dtype}{tuple(self[k].shape)}" for k in self)
        return f"Params({{{inner}}})"

    def _owner(self, key: str) -> tuple[Any, str]:
        try:
            return self._owners[key]
        except KeyError:
            raise KeyError(
                f"unknown parameter {key!r}; this network has {', '.join(self._owners)}"
            ) from None
