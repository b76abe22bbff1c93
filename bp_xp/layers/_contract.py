"""How a layer declares its contract: sample inputs and a float64 reference, next to its class.

A layer class is registered for the conformance harness (:mod:`bp_xp.conformance`) by one
decorator above it::

    @contract(reference=lambda np, x: np.maximum(x, 0),
              samples=[Sample(floats(3, 4)), Sample(ints(5)), Sample(2.5)])
    class Relu(Layer): ...

This module only *stores* the declaration on the class (``cls.__contracts__``): it imports
neither NumPy nor pytest, so declaring costs nothing when bp_xp is imported. The harness
expands the input descriptions (:func:`floats`, :func:`ints`, ...) into host arrays drawn from
a seeded generator, moves them to the backend under test, and hands the reference functions
the ``numpy`` (or ``torch``) module as their first argument: layer modules never import
NumPy for math, not even for their own references.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Contract", "Input", "Sample", "bools", "contract", "floats", "ints", "values"]


@dataclasses.dataclass(frozen=True)
class Input:
    """A description of one host input, expanded by the harness with a seeded generator.

    ``kind`` is ``"float"`` (an array in the dtype under test), ``"int"`` (int64) or
    ``"bool"``; ``low``/``high`` bound uniform draws (``None``: standard normal);
    ``away`` keeps ``|x| >= away``; ``data`` gives the values outright; ``special`` puts
    ``nan``/``inf``/``-inf`` in the first element.
    """

    kind: str
    shape: tuple[int, ...] = ()
    low: float | None = None
    high: float | None = None
    away: float = 0.0
    data: Any = None
    special: str | None = None

    def with_special(self, value: str) -> Input:
        """This input with ``value`` (``"nan"``, ``"inf"``, ``"-inf"``) as its first element."""
        return dataclasses.replace(self, special=value)


def floats(*shape: int, low: float | None = None, high: float | None = None,
           away: float = 0.0, special: str | None = None) -> Input:
    """A float array of ``shape`` in the dtype under test (standard normal unless bounded)."""
    return Input("float", tuple(shape), low, high, away, special=special)


def ints(*shape: int, low: int = -3, high: int = 4) -> Input:
    """An int64 array of ``shape`` with values in ``[low, high)``."""
    return Input("int", tuple(shape), low, high)


def bools(*shape: int) -> Input:
    """A bool array of ``shape``."""
    return Input("bool", tuple(shape))


def values(data: Any, kind: str = "float") -> Input:
    """An array of exactly ``data`` (nested lists), of ``kind`` ``"float"``, ``"int"``, ``"bool"``."""
    return Input(kind, data=data)


@dataclasses.dataclass(frozen=True)
class Sample:
    """One forward call: its positional inputs, keywords and the ``dout`` of its backward.

    ``args`` holds :class:`Input` descriptions and Python numbers (passed as they are).
    ``dout`` is ``None`` (an array of the output's shape in the dtype under test), a Python
    number, or an :class:`Input`. ``smooth=False`` marks a sample at a kink, a tie or a
    non-finite value, where no numerical gradient is taken. ``raises`` makes it a *refused*
    sample: forward must raise that exception type and leave the layer as it was.
    """

    args: tuple[Any, ...]
    dout: Any = None
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    name: str = ""
    smooth: bool = True
    raises: type[BaseException] | None = None

    def __init__(self, *args: Any, dout: Any = None, kwargs: Mapping[str, Any] | None = None,
                 name: str = "", smooth: bool = True,
                 raises: type[BaseException] | None = None) -> None:
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "dout", dout)
        object.__setattr__(self, "kwargs", dict(kwargs or {}))
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "smooth", smooth)
        object.__setattr__(self, "raises", raises)


@dataclasses.dataclass(frozen=True)
class Contract:
    """What a layer promises, as the conformance harness checks it.

    Attributes
    ----------
    reference : callable ``(np, *inputs, **params) -> array``
        The forward pass in float64 NumPy, written independently of the layer (``np`` is
        the ``numpy`` module, handed in). Inputs arrive as float64 arrays or Python floats.
    samples : tuple of Sample
    params : mapping of name to Input
        The layer's parameters, drawn on the host and moved to the backend under test.
    init : mapping
        Keyword arguments of the constructor other than the parameters: by default a fresh
        layer is ``cls(**params, **init)`` (``Affine(W=..., b=...)``,
        ``Convolution(W=..., b=..., stride=2, pad=1)``).
    make : callable ``(params) -> layer``, optional
        Builds a fresh layer from the moved parameters instead, where the constructor does
        not take them by their names.
    torch_reference : callable ``(torch, *tensors, **params) -> tensor``, optional
        The forward pass in PyTorch, differentiated by ``torch.autograd`` where PyTorch is
        installed.
    grads_for : tuple of int
        The positions of the inputs ``backward`` returns gradients for, in its order
        (``(0, 1)`` for a node returning ``(dx, dy)``, ``(0,)`` for ``dx``).
    train_flg : bool
        ``forward`` takes ``train_flg``; its eval-mode forward keeps nothing to differentiate.
    id : str
        Names the contract in test ids (several per class: ``PowLayer(2)``, ``PowLayer(0.5)``).
    """

    reference: Callable[..., Any]
    samples: tuple[Sample, ...]
    params: Mapping[str, Input] = dataclasses.field(default_factory=dict)
    init: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    make: Callable[[dict[str, Any]], Any] | None = None
    torch_reference: Callable[..., Any] | None = None
    grads_for: tuple[int, ...] = (0,)
    train_flg: bool = False
    id: str = ""
    layer: Any = None  # set by @contract: the class

    @property
    def name(self) -> str:
        """``id``, else the class name."""
        return self.id or getattr(self.layer, "__name__", "layer")

    def build(self, params: dict[str, Any]) -> Any:
        """A fresh layer from moved parameters."""
        if self.make is not None:
            return self.make(params)
        return self.layer(**params, **self.init)


def contract(*, reference: Callable[..., Any], samples: Any, params: Mapping[str, Input] | None = None,
             init: Mapping[str, Any] | None = None, make: Callable[[dict[str, Any]], Any] | None = None,
             torch_reference: Callable[..., Any] | None = None, grads_for: tuple[int, ...] = (0,),
             train_flg: bool = False, id: str = "") -> Callable[[type], type]:
    """Class decorator: declare a :class:`Contract` for the class (stackable: one per variant)."""

    def register(cls: type) -> type:
        spec = Contract(reference=reference, samples=tuple(samples), params=dict(params or {}),
                        init=dict(init or {}), make=make, torch_reference=torch_reference,
                        grads_for=grads_for,
                        train_flg=train_flg, id=id, layer=cls)
        # the class's own tuple, not an inherited one; decorators apply bottom-up
        own = cls.__dict__.get("__contracts__", ())
        cls.__contracts__ = (spec, *own)  # type: ignore[attr-defined]
        return cls

    return register


def contracts_of(cls: type) -> tuple[Contract, ...]:
    """The contracts declared on ``cls`` itself (not inherited)."""
    return tuple(cls.__dict__.get("__contracts__", ()))
