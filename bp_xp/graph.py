"""The computational graph: pictures of both passes, and the backward pass run for you.

Wrap forward calls of bp_xp layers in :func:`record`, and the recording knows which layer
call fed which. From it, :meth:`Graph.backward` runs the general back-propagation
algorithm (the bookkeeping of chapter 5 done for any graph), and :meth:`Graph.save` draws
the chapter's figures: each node a circle, the forward value above each edge, the
backward value (red, arrow pointing back) below it::

    with bp_xp.graph.record(x=x, y=y) as g:
        f = mul.forward(add.forward(x, y), y)      # forward calls of bp_xp layers only
    grads = g.backward(f)                          # {"x": df/dx, "y": df/dy}
    g.save("f.svg")                                # both passes, this backward's values

The book's hand-written backward calls may be recorded too (as in ``examples/apple_graph.py``):
then the picture shows the values they returned.

What is recorded: every ``forward`` call of a :class:`bp_xp.Layer` (every built-in layer and
any user layer, no marking needed) and of classes marked with :func:`recordable`. A call
made by another recorded call (a layer that uses a layer inside) is part of the outer one.

How values are linked: an input of a call is the output of an earlier recorded call when it
is *the same object* (``is``). Arrays and floats made by a layer are new objects, so this is
exact for them; CPython shares the small ints -5..256, so a Python int input equal to an
earlier small-int output is linked to it.

What a recording keeps: for drawing, a few numbers per value (shape, dtype and the first
``head`` elements); for backward, the layer objects (whose caches hold what their
``backward`` needs, as in the book) and, per value, a weak reference and a version stamp.
It never keeps an array that flowed alive, and never copies a whole array to the host.

Cost when not recording: none. :func:`record` wraps the layer classes' ``forward`` and
``backward`` on entry and puts the original functions back on exit. Recording is
process-wide (calls from any thread go to the innermost open block) and eager only: a
traced function (``jax.jit``, :func:`bp_xp.compile_step`) is not recorded into a graph
that :meth:`Graph.backward` can run.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import array_api_compat
import numpy as np  # host side only: checksums of NumPy memory for the in-place check

from .backends import dtype_name, namespace_of, spec_of, to_numpy

__all__ = ["BackwardError", "Edge", "Graph", "GraphvizUnavailableError", "Node", "record",
           "record_subclasses", "recordable"]

T = TypeVar("T", bound=type)

_SCALARS = (bool, int, float, complex)
#: Classes marked with :func:`recordable`, with the symbol drawn in their circle.
_RECORDABLE: dict[type, str] = {}
#: Active recorders, innermost last; calls go to the innermost.
_ACTIVE: list[Graph] = []
_ORIGINALS: dict[type, dict[str, Any]] = {}
_LOCK = threading.RLock()
_NESTED = threading.local()  # inside a recorded call: calls it makes are not recorded


class GraphvizUnavailableError(RuntimeError):
    """SVG or PNG was asked for, but the ``graphviz`` package or its ``dot`` binary is missing."""


class BackwardError(RuntimeError):
    """:meth:`Graph.backward` cannot give a right answer from this recording; says which node."""


def recordable(label: str) -> Callable[[T], T]:
    """Give a class the symbol its circle shows (``"×"``, ``"exp"``) and have it recorded.

    Every :class:`bp_xp.Layer` is recorded without this mark (its circle shows the class
    name); the mark chooses the symbol, and makes a class that is not a ``Layer`` recordable.
    A layer whose label depends on its settings gives a ``graph_label`` attribute instead
    (``PowLayer(2)``: ``**2``). The class is returned unchanged.

    Examples
    --------
    >>> import bp_xp
    >>> @bp_xp.graph.recordable("tanh")
    ... class Tanh(bp_xp.Layer):
    ...     def forward(self, x):
    ...         self.out = bp_xp.namespace_of(x).tanh(x)
    ...         return self.out
    ...     def backward(self, dout):
    ...         return dout * (1 - self.out ** 2)
    >>> Tanh.forward.__qualname__
    'Tanh.forward'
    """
    def mark(cls: T) -> T:
        _RECORDABLE[cls] = label
        with _LOCK:
            if _ACTIVE and cls not in _ORIGINALS:  # marked while a block is open
                _install_class(cls)
        return cls
    return mark


def _label_of(layer: Any) -> str:
    own = getattr(layer, "graph_label", None)  # a label that depends on the layer's settings
    if isinstance(own, str):
        return own
    for cls in type(layer).__mro__:
        if cls in _RECORDABLE:
            return _RECORDABLE[cls]
    return type(layer).__name__


# -- values as the picture shows them ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _ArrayValue:
    """What the picture shows of an array: shape, dtype and its first few values."""

    shape: tuple[int, ...]
    dtype: str
    head: tuple[Any, ...]

    def text(self, digits: int) -> str:
        values = ", ".join(_number(v, digits) for v in self.head)
        more = ", …" if len(self.head) < math.prod(self.shape) else ""
        return f"{self.dtype} {self.shape}\n[{values}{more}]"


def _leading_block(shape: tuple[int, ...], count: int) -> tuple[slice, ...]:
    """The smallest leading box of an array of ``shape`` holding its first ``count`` elements.

    The first ``count`` elements in C order lie in ``x[0:1, ..., 0:r, 0:c]``; the box has
    fewer than ``2 * count`` elements, so reading it costs nothing like the whole array.
    """
    index: list[slice] = []
    need = max(count, 1)
    for n in reversed(shape):
        take = min(n, need) if need > 1 else min(n, 1)
        index.append(slice(0, take))
        need = -(-need // n) if n else 1
    return tuple(reversed(index))


def _snapshot(value: Any, head: int) -> Any:
    """A Python number stays as it is; a 0-d array becomes its number; an array a summary.

    Only the first ``head`` elements are read, from a small leading box of the array.
    """
    if isinstance(value, _SCALARS) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if type(value) is np.ndarray:  # host memory: read the first values where they are
        if not value.ndim:
            return value.item()
        return _ArrayValue(value.shape, str(value.dtype), tuple(value.flat[:head].tolist()))
    shape = getattr(value, "shape", None)
    if shape is None:  # not an array: a tuple a user layer returned, say
        return type(value).__name__
    try:
        shape = tuple(int(n) for n in shape)
    except TypeError:  # unknown sizes (a lazy array of unknown shape)
        return _ArrayValue(tuple(shape), _dtype_text(value), ())
    try:
        if not shape:
            return to_numpy(value).item()
        count = min(head, math.prod(shape))
        block = to_numpy(value[_leading_block(shape, count)]) if count else np.zeros(0)
        first = tuple(block.reshape(-1)[:count].tolist())
    except Exception:  # an abstract value (a JAX tracer): shape and dtype only
        first = ()
    return _ArrayValue(shape, _dtype_text(value), first)


def _dtype_text(value: Any) -> str:
    return dtype_name(value.dtype)


def _number(v: Any, digits: int) -> str:
    if isinstance(v, bool) or isinstance(v, int):
        return str(v)
    if isinstance(v, (float, complex)):
        return f"{v:.{digits}g}"
    return str(v)


def format_value(value: Any, digits: int = 4) -> str:
    """How a recorded value is printed: numbers to ``digits`` significant digits.

    Examples
    --------
    >>> from bp_xp.graph import format_value
    >>> format_value(220.00000000000003), format_value(110.00000000000001), format_value(2.2)
    ('220', '110', '2.2')
    """
    if isinstance(value, _ArrayValue):
        return value.text(digits)
    return _number(value, digits)


# -- holding values without keeping them alive ---------------------------------------------


_ATOMS = frozenset({type(None), bool, int, float, complex, str, bytes})


def _small(value: Any) -> bool:
    """Python numbers, strings, None and tuples of them (shapes): cheap to hold."""
    kind = type(value)
    if kind in _ATOMS:
        return True
    if isinstance(value, (*_SCALARS, str, bytes, np.generic)):
        return True
    return kind is tuple and len(value) <= 64 and all(_small(v) for v in value)


def _hold(value: Any) -> Callable[[], Any]:
    """A callable giving ``value`` back while it lives, without keeping it alive.

    Small immutable values (numbers, shapes) are held, since holding them costs nothing;
    anything else by a weak reference. An object that allows neither (a list a user layer
    caches) is remembered by its ``id`` only and never given back.
    """
    if _small(value):
        return lambda: value
    try:
        return weakref.ref(value)
    except TypeError:
        return _Gone(id(value))


@dataclasses.dataclass(frozen=True)
class _Gone:
    """The stand-in for an object that can be neither held nor weakly referenced."""

    ident: int

    def __call__(self) -> Any:
        return None


def _same(held: Callable[[], Any], value: Any) -> bool:
    """Whether ``held`` (from :func:`_hold`) stands for the object ``value``."""
    if isinstance(held, _Gone):
        return held.ident == id(value)
    return held() is value


def _stamp_of(value: Any) -> Any:
    """A stamp that changes when ``value`` is changed in place (``None``: cannot change).

    Asked of the value's backend (:attr:`bp_xp.backends.BackendSpec.version_stamp`):
    PyTorch counts in-place writes, a Dask array changed by ``x[i] = v`` gets a new graph
    name, NumPy and array-api-strict host memory is summarised by its CRC-32 (one pass over
    the bytes); JAX arrays and Python numbers never change. A backend that declares no
    stamp (CuPy) is not checked.
    """
    if _small(value):
        return None
    spec = spec_of(value)
    if spec is None or spec.version_stamp is None:
        return None
    return spec.version_stamp(value)


# -- what was recorded ---------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class Node:
    """A vertex: one ``forward`` call of a layer, an input value, or an output.

    ``kind`` is ``"op"``, ``"input"`` or ``"output"``; ``label`` is what is drawn.
    ``layer`` is the layer object of an ``"op"`` (``None`` once it no longer exists);
    ``value`` the input's or output's object while it exists (the recording does not keep
    it alive).
    """

    id: str
    kind: str
    label: str
    name: str | None = None
    #: what the picture shows of the value this vertex stands for (an op: its output)
    summary: Any = None
    #: an op's output gradient in the last backward pass (drawn on its output edge)
    dout: Any = None
    _value: Callable[[], Any] = dataclasses.field(default=lambda: None, repr=False)
    _layer: Callable[[], Any] = dataclasses.field(default=lambda: None, repr=False)
    _in: list[Edge] = dataclasses.field(default_factory=list, repr=False)
    _out: list[Edge] = dataclasses.field(default_factory=list, repr=False)
    _stamp: Any = dataclasses.field(default=None, repr=False)  # the output's version stamp
    _inference: bool = dataclasses.field(default=False, repr=False)  # forward(..., train_flg=False)
    _params: tuple[tuple[str, Any], ...] = dataclasses.field(default=(), repr=False)  # stamps
    _cache: tuple[tuple[str, Any], ...] = dataclasses.field(default=(), repr=False)

    def __str__(self) -> str:
        return self.label

    @property
    def value(self) -> Any:
        return self._value()

    @property
    def layer(self) -> Any:
        return self._layer()

    def describe(self) -> str:
        """How error messages name this vertex: ``MulLayer '×' (node n3)``."""
        if self.kind != "op":
            return f"input {self.label!r}"
        layer = self.layer
        cls = type(layer).__name__ if layer is not None else "layer"
        return f"{cls} {self.label!r} (node {self.id})"


@dataclasses.dataclass(eq=False)
class Edge:
    """A value travelling from ``source`` to input ``slot`` of ``target``.

    ``forward`` is the value sent forward (a Python number, or an array summary);
    ``backward`` the gradient ``target.backward`` returned for that input in the last
    backward pass, recorded or run by :meth:`Graph.backward` (``None`` when none ran).
    """

    source: Node
    target: Node
    slot: int
    forward: Any
    backward: Any = None
    #: the input's shape, or None when it was not an array (a Python number)
    shape: tuple[int, ...] | None = dataclasses.field(default=None, repr=False)
    _stamp: Any = dataclasses.field(default=None, repr=False)  # version when it was sent

    def __str__(self) -> str:
        back = "" if self.backward is None else f" | {format_value(self.backward)}"
        return f"{self.source} -> {self.target}: {format_value(self.forward)}{back}"

    @property
    def value(self) -> Any:
        """The object that was sent, while it exists."""
        return self.source.value


class Graph:
    """What :func:`record` captured: runs the backward pass, renders DOT, SVG or PNG.

    Attributes
    ----------
    nodes : list of Node
        Input values, layer calls and outputs, in the order they were met.
    edges : list of Edge
        Every value that travelled, with what went forward and what came back.
    """

    def __init__(self, names: dict[str, Any] | None = None, *, head: int = 3,
                 keep_layers: bool = True, check_inplace: bool = True) -> None:
        if isinstance(head, bool) or not isinstance(head, int) or head < 0:
            raise ValueError(f"head must be an integer >= 0 (values shown per array), got {head!r}")
        self.head = head
        self.keep_layers = bool(keep_layers)
        self.check_inplace = bool(check_inplace)
        self._ops: list[Node] = []
        self._inputs: list[Node] = []
        self._input_of: dict[int, Node] = {}  # id(object) -> input vertex (checked with _same)
        self._made_by: dict[int, Node] = {}  # id(output object) -> op that made it (checked)
        self._latest: dict[int, Node] = {}  # id(layer) -> its latest recorded call
        self._pending: list[tuple[Callable[[], Any], str]] = []  # names of values not yet met
        self._order: dict[str, int] = {}  # name -> when it was first given (orders results)
        self._given: list[tuple[Callable[[], Any], str]] = []  # every name given, with its value
        self._shared: dict[str, str] = {}  # name -> another name of the very same object
        for label, value in (names or {}).items():
            self.name(value, label)

    def __repr__(self) -> str:
        return f"Graph({len(self._ops)} nodes, {len(self.edges)} edges)"

    # -- building -------------------------------------------------------------------------

    def name(self, value: Any, label: str) -> Any:
        """Call ``value`` (an input, output or intermediate value) ``label``.

        The name labels it in the picture and keys its gradient in :meth:`backward`.
        Returns ``value``, so that ``price = g.name(layer.forward(a, b), "price")`` works.
        Names may be given before the value is used, or after.
        """
        label = str(label)
        self._order.setdefault(label, len(self._order))
        for held, other in self._given:
            if other != label and _same(held, value):  # two names, one object
                self._shared.setdefault(label, other)
                self._shared.setdefault(other, label)
        self._given.append((_hold(value), label))
        found = False
        for node in self._vertices_of(value):
            node.name = label
            found = True
        if not found:
            self._pending.append((_hold(value), label))
        return value

    def _vertices_of(self, value: Any) -> list[Node]:
        """The output vertex that made ``value`` and the input vertex it is, where recorded."""
        found = []
        for table in (self._made_by, self._input_of):
            node = table.get(id(value))
            if node is not None and _same(node._value, value):
                found.append(node)
        return found

    def _source(self, value: Any) -> Node:
        node = self._made_by.get(id(value))
        if node is not None and _same(node._value, value):
            return node
        node = self._input_of.get(id(value))
        if node is not None and _same(node._value, value):
            return node
        node = Node(f"i{len(self._inputs)}", "input", "", _value=_hold(value),
                    summary=_snapshot(value, self.head))
        for held, label in self._pending:
            if _same(held, value):
                node.name = label
        self._inputs.append(node)
        self._input_of[id(value)] = node
        return node

    def _forward(self, layer: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        node = Node(f"n{len(self._ops)}", "op", _label_of(layer),
                    _layer=(lambda: layer) if self.keep_layers else _hold(layer),
                    _value=_hold(out), summary=_snapshot(out, self.head))
        inputs = list(args) + [v for v in kwargs.values() if array_api_compat.is_array_api_obj(v)]
        for slot, arg in enumerate(inputs):
            source = self._source(arg)
            shape = None if _small(arg) or not hasattr(arg, "shape") else tuple(arg.shape)
            edge = Edge(source, node, slot, _snapshot(arg, self.head), shape=shape,
                        _stamp=_stamp_of(arg) if self.check_inplace else None)
            source._out.append(edge)
            node._in.append(edge)
        node._stamp = _stamp_of(out) if self.check_inplace else None
        node._inference = kwargs.get("train_flg", True) is False
        if self.check_inplace:
            node._params = _param_stamps(layer)
        node._cache = _cache_of(layer)
        for held, label in self._pending:
            if _same(held, out):
                node.name = label
        self._ops.append(node)
        if out is not None:  # None is one object: it links nothing
            self._made_by[id(out)] = node
        self._latest[id(layer)] = node

    def _backward(self, layer: Any, dout: Any, grads: Any) -> None:
        """A hand-written backward call inside the block: keep what it returned, for the picture."""
        node = self._latest.get(id(layer))
        if node is None or node.layer is not layer:  # its forward ran before recording began
            return
        edges = node._in
        if not (isinstance(grads, tuple) and len(grads) == len(edges)):
            grads = (grads,)
        for edge, grad in zip(edges, grads):
            edge.backward = _snapshot(grad, self.head)
        node.dout = _snapshot(dout, self.head)
        node._cache = _cache_of(layer, node._cache)  # a backward may set attributes of its own

    # -- the backward pass ----------------------------------------------------------------

    def backward(self, f: Any, wrt: str | Iterable[str] | None = None,
                 dout: Any = None) -> dict[str, Any]:
        """Back-propagate from ``f`` through the recorded calls; the gradients by name.

        The general algorithm (Goodfellow, Bengio and Courville, *Deep Learning*, 6.5):
        visit the calls that lead to ``f`` in reverse topological order (the reverse of
        the order they ran), give each the sum of the gradients its output received from
        all of its consumers, and call its ``backward`` with that sum. Only calls on a
        path from a wanted input to ``f`` run.

        Parameters
        ----------
        f : value or str
            An output of a recorded call (or its name).
        wrt : str or iterable of str, optional
            Names of the values wanted: inputs, or intermediate values named with
            :meth:`name`. By default every named input, and every layer parameter (its
            gradient lands in the layer's ``grads``, as a hand-written backward leaves
            it); when nothing is named and no layer has parameters, every input.
        dout : optional
            The gradient arriving at ``f`` (shaped like ``f``); ones by default, ``1.0``
            for a Python number. A Python number stands for that value everywhere.

        Returns
        -------
        dict
            Name -> gradient, shaped like the value, on its backend (a Python number for
            a Python number). A named input that ``f`` does not depend on gets zeros; by
            default an input that a call gives no gradient for (a loss's labels) is left
            out, and asking for one with ``wrt`` raises :class:`BackwardError`.

        Raises
        ------
        BackwardError
            When a call on the path cannot be run correctly: its layer was called again
            since (its cache holds only the last call), a value it used was changed in
            place, it ran in inference mode (``train_flg=False``), or its layer no longer
            exists. The message names the node.
        """
        target = self._target(f)
        ancestors = self._ancestors(target)
        ops = [op for op in self._ops if op in ancestors]
        explicit = wrt is not None
        if wrt is None:
            wanted = [n for n in self._inputs if n.name] + self._unmet()
            by_params = any(_has_params(op.layer) for op in ops)
            if not (wanted and any(n in ancestors for n in wanted)) and not by_params:
                wanted = [n for n in self._inputs if n in ancestors]
            results = sorted(((n.name, n) for n in wanted if n.name),
                             key=lambda item: self._order.get(item[0], len(self._order)))
        else:
            names = [wrt] if isinstance(wrt, str) else list(wrt)
            results = [(str(name), self._named(name)) for name in names]
            wanted = [n for _, n in results]
            by_params = False
        for name, _ in results:
            if name in self._shared:
                other = self._shared[name]
                raise BackwardError(
                    f"{name!r} and {other!r} name the same object, so the recording cannot tell "
                    "their uses apart (CPython shares small ints, and equal constants of one "
                    "function); pass distinct objects, such as separate arrays or float(...) "
                    "results")
        wanted_set = set(wanted)
        needs: dict[Node, bool] = {n: True for n in wanted}
        run: set[Node] = set()
        for op in ops:  # forward order: a call runs when a wanted value lies behind it
            if any(needs.get(e.source, False) for e in op._in) or (
                    by_params and _has_params(op.layer)):
                run.add(op)
                needs[op] = True
        for op in ops:
            if op in run:
                self._check(op)
        seed = self._seed(f, target, dout)
        for op in self._ops:  # the picture shows this pass only
            op.dout = None
            for edge in op._in:
                edge.backward = None
        arrived: dict[Node, Any] = {target: seed}
        missing: dict[Node, tuple[Node, int]] = {}
        depth = getattr(_NESTED, "depth", 0)
        _NESTED.depth = 1  # these backward calls are the pass itself: not recorded again
        try:
            for op in reversed(ops):
                if op not in run or op not in arrived:
                    continue
                # a wanted intermediate keeps its gradient for the result; others let it go
                grad_out = arrived[op] if op in wanted_set else arrived.pop(op)
                op.dout = _snapshot(grad_out, self.head)
                grads = self._call_backward(op, grad_out, needs)
                for edge, grad in zip(op._in, grads):
                    if grad is None:
                        missing.setdefault(edge.source, (op, edge.slot))
                        continue
                    edge.backward = _snapshot(grad, self.head)
                    if not needs.get(edge.source, False):
                        continue
                    grad = _like_input(grad, edge, op)
                    previous = arrived.get(edge.source)
                    arrived[edge.source] = grad if previous is None else previous + grad
        finally:
            _NESTED.depth = depth
        out: dict[str, Any] = {}
        for name, node in results:
            if node in arrived:
                out[name] = arrived[node]
            elif node not in ancestors:  # f does not depend on it
                zeros = _zeros_like(node.value)
                if zeros is not None:
                    out[name] = zeros
            elif explicit:
                blocked = missing.get(node)
                where = (f"{blocked[0].describe()} gives no gradient for its input {blocked[1]}"
                         if blocked is not None else "no call gives it a gradient")
                raise BackwardError(f"cannot give the gradient of {name!r}: {where} on the "
                                    f"way from {name!r} to f (labels of a loss have none)")
        return out

    def jacobian(self, out: Any, wrt: str) -> Any:
        """The Jacobian of ``out`` with respect to the value named ``wrt``.

        Shape ``out.shape + x.shape``, as :func:`torch.autograd.functional.jacobian`
        gives it: one backward pass per element of ``out``, each with a one-hot ``dout``
        (so it costs ``out.size`` backward passes; each sets the layers' ``grads``).
        """
        if not isinstance(wrt, str):
            raise TypeError(f"wrt must be the name of one value, got {type(wrt).__name__}")
        if _small(out) or not getattr(out, "shape", None):  # a number or a 0-d array
            return self.backward(out, wrt=[wrt])[wrt]
        xp = namespace_of(out)
        shape = tuple(out.shape)
        size = math.prod(shape)
        dtype = _float_dtype(out, xp)
        device = array_api_compat.device(out)
        positions = xp.arange(size, device=device)
        rows = []
        for i in range(size):
            one_hot = xp.reshape(xp.astype(positions == i, dtype), shape)
            rows.append(self.backward(out, wrt=[wrt], dout=one_hot)[wrt])
        if isinstance(rows[0], _SCALARS):  # the value is a Python number
            return xp.reshape(xp.asarray(rows, dtype=dtype, device=device), shape)
        x_shape = tuple(rows[0].shape)
        flat = xp.stack([xp.reshape(r, (-1,)) for r in rows])
        return xp.reshape(flat, shape + x_shape)

    def _target(self, f: Any) -> Node:
        if isinstance(f, str):
            for node in self._ops:
                if node.name == f:
                    return node
            named = [n for n in self._inputs if n.name == f]
            if named:
                raise BackwardError(f"{f!r} is an input of the recording, not computed by a "
                                    "recorded call: there is nothing to back-propagate through")
            raise KeyError(f"no value named {f!r} was computed in this recording "
                           f"(named: {self._known_names()})")
        made = self._made_by.get(id(f))
        if made is None or not _same(made._value, f):
            raise BackwardError(
                "f was not computed by a recorded call: pass the output of a bp_xp layer's "
                "forward made inside this record() block (a value computed with array "
                "operators, such as a loss plus a weight-decay term, is not recorded)")
        return made

    def _named(self, name: Any) -> Node:
        if not isinstance(name, str):
            raise TypeError(f"wrt holds names (str) of recorded values, got {type(name).__name__}")
        for node in (*self._inputs, *self._ops, *self._unmet()):
            if node.name == name:
                return node
        raise KeyError(f"wrt names {name!r}, which is no recorded value's name "
                       f"(named: {self._known_names()})")

    def _unmet(self) -> list[Node]:
        """Values named but never passed to a recorded call (f does not depend on them)."""
        met = {n.name for n in (*self._inputs, *self._ops) if n.name}
        unmet = []
        for held, label in self._pending:
            if label not in met and held() is not None:
                unmet.append(Node("unmet", "input", label, name=label, _value=held))
                met.add(label)
        return unmet

    def _known_names(self) -> str:
        names = [n.name for n in (*self._inputs, *self._ops, *self._unmet()) if n.name]
        return ", ".join(repr(n) for n in names) or "none; name values with record(x=x) or g.name()"

    @staticmethod
    def _ancestors(target: Node) -> set[Node]:
        seen = {target}
        stack = [target]
        while stack:
            for edge in stack.pop()._in:
                if edge.source not in seen:
                    seen.add(edge.source)
                    stack.append(edge.source)
        return seen

    def _check(self, op: Node) -> None:
        """Refuse a call whose layer no longer holds that call's cache, or whose values changed."""
        layer = op.layer
        if layer is None:
            raise BackwardError(f"the layer of {op.describe()} no longer exists: the recording "
                                "was made with keep_layers=False and nothing else kept it")
        if op._inference:
            raise BackwardError(
                f"{op.describe()} ran in inference mode (train_flg=False), which caches nothing "
                "for backward (Dropout and BatchNormalization go back only through a training "
                "forward): record the forward with train_flg=True, as net.gradient runs it")
        if not _cache_is(layer, op._cache):
            latest = self._latest.get(id(layer))
            again = (f" (again as node {latest.id})" if latest is not None and latest is not op
                     else "")
            raise BackwardError(
                f"{op.describe()} cannot be back-propagated: its layer was called again "
                f"after this call{again}, or its cached values were replaced, and a layer's "
                "cache holds only its last call. Use one layer object per use in the graph "
                "(as the book does), or record again.")
        if not self.check_inplace:
            return
        for edge in op._in:
            value = edge.source.value
            if value is not None and edge._stamp is not None and _stamp_of(value) != edge._stamp:
                what = repr(edge.source.name) if edge.source.name else (
                    f"the output of node {edge.source.id}" if edge.source.kind == "op" else "an input")
                raise BackwardError(
                    f"{what} (input {edge.slot} of {op.describe()}) was changed in place after "
                    "that call, so its backward would use the changed values. Make new arrays "
                    "(x = x + 1, not x += 1) between calls, or record again.")
        if op._params and _param_stamps(layer) != op._params:
            changed = [name for (name, stamp), (_, now) in zip(op._params, _param_stamps(layer))
                       if stamp != now] or ["its parameters"]
            raise BackwardError(
                f"parameter {changed[0]!r} of {op.describe()} was changed in place after that "
                "call (an optimizer step?), so its backward would use other weights than its "
                "forward did. Record again after changing parameters.")
        value = op.value
        if value is not None and op._stamp is not None and _stamp_of(value) != op._stamp:
            raise BackwardError(
                f"the output of {op.describe()} was changed in place after that call, so its "
                "backward would use the changed values. Make new arrays (y = y + 1, not "
                "y += 1), or record again.")

    def _seed(self, f: Any, target: Node, dout: Any) -> Any:
        """The gradient arriving at ``f``: ``dout``, or ones shaped like ``f`` (1.0 for a number).

        A Python-number ``dout`` for an array ``f`` becomes an array of ``f``'s shape,
        floating dtype and device, as every layer takes it.
        """
        if f is None or isinstance(f, str):
            f = target.value
        if dout is not None and not isinstance(dout, _SCALARS):
            return dout
        if f is None or _small(f) or getattr(f, "shape", None) is None:
            return 1.0 if dout is None else dout
        xp = namespace_of(f)
        return xp.full(tuple(f.shape), 1.0 if dout is None else dout, dtype=_float_dtype(f, xp),
                       device=array_api_compat.device(f))

    def _call_backward(self, op: Node, grad_out: Any, needs: dict[Node, bool]) -> list[Any]:
        """Run ``op``'s backward; one gradient (or None) per input slot."""
        layer = op.layer
        if not any(needs.get(e.source, False) for e in op._in) and _takes_need_dx(
                getattr(layer.backward, "__func__", layer.backward)):
            result = layer.backward(grad_out, need_dx=False)  # only its parameters are wanted
        else:
            result = layer.backward(grad_out)
        op._cache = _cache_of(layer, op._cache)  # backward may set attributes of its own
        slots = len(op._in)
        if isinstance(result, tuple) and len(result) == slots and slots != 1:
            return list(result)
        return [result] + [None] * (slots - 1) if slots else []


    # -- reading --------------------------------------------------------------------------

    @property
    def nodes(self) -> list[Node]:
        for node in self._inputs:
            node.label = self._input_label(node)
        return self._inputs + self._ops + [edge.target for edge in self._output_edges()]

    @property
    def edges(self) -> list[Edge]:
        self.nodes  # noqa: B018 - refreshes the input labels from the names
        inner = [edge for node in self._ops for edge in node._in]
        return inner + self._output_edges()

    def _input_label(self, node: Node) -> str:
        if node.name is not None:
            return node.name
        value = node.value
        if isinstance(value, _SCALARS):
            return format_value(value)  # a constant such as the 1 of 1 + exp(-x)
        return f"input {node.id[1:]}"

    def _output_edges(self) -> list[Edge]:
        edges = []
        for node in self._ops:
            if node._out:
                continue
            sink = Node(f"o{node.id[1:]}", "output", node.name or "", _value=node._value)
            edges.append(Edge(node, sink, 0, node.summary, node.dout))
        return edges

    # -- rendering ------------------------------------------------------------------------

    def to_dot(self, show: str = "both", digits: int = 4, title: str | None = None) -> str:
        """The picture as Graphviz DOT text (needs nothing installed).

        Parameters
        ----------
        show : {"both", "forward", "backward"}
            Which values to write on the edges: the forward ones (black, above each edge,
            the book's forward figures), the backward ones (red, below, on arrows that
            point back), or both (the book's backward figures).
        digits : int
            Significant digits of the numbers.
        title : str, optional
            A caption under the picture.
        """
        if show not in ("both", "forward", "backward"):
            raise ValueError(f"show must be 'both', 'forward' or 'backward', got {show!r}")
        lines = [
            "digraph bp_xp {",
            "  rankdir=LR; nodesep=0.5; ranksep=1.1;",
            '  node [fontname="Helvetica", fontsize=14];',
            '  edge [fontname="Helvetica", fontsize=12];',
        ]
        if title:
            lines.append(f"  label={_quote(title)}; labelloc=b;")
        for node in self.nodes:
            if node.kind == "op":
                lines.append(f"  {node.id} [shape=circle, width=0.6, fixedsize=false, "
                             f"label={_quote(node.label)}];")
            else:
                lines.append(f"  {node.id} [shape=plaintext, label={_quote(node.label)}];")
        for edge in self.edges:
            ends = f"  {edge.source.id} -> {edge.target.id}"
            forward = format_value(edge.forward, digits)
            name = edge.source.name
            if name and edge.source.kind == "op" and edge.target.kind == "op":
                forward = f"{name}\n{forward}"
            if show == "backward":
                lines.append(f"{ends} [color=gray70, arrowhead=none];")
            else:
                lines.append(f"{ends} [label={_quote(forward)}];")
            if show != "forward" and edge.backward is not None:
                lines.append(f"{ends} [dir=back, color=red, fontcolor=red, "
                             f"label={_quote(format_value(edge.backward, digits))}];")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def pipe(self, format: str = "svg", show: str = "both", digits: int = 4,
             title: str | None = None) -> bytes:
        """The picture rendered by Graphviz (``"svg"``, ``"png"``, ...), as bytes.

        Raises
        ------
        GraphvizUnavailableError
            When the ``graphviz`` Python package or the ``dot`` binary is missing.
        """
        dot = self.to_dot(show=show, digits=digits, title=title)
        try:
            import graphviz
        except ImportError as exc:
            raise GraphvizUnavailableError(
                "rendering needs the graphviz Python package (pip install graphviz, or the "
                "bp_xp[graph] extra) and the "
                "Graphviz binaries (apt-get install graphviz, brew install graphviz); "
                "Graph.to_dot() needs neither") from exc
        try:
            return graphviz.Source(dot).pipe(format=format)
        except graphviz.ExecutableNotFound as exc:
            raise GraphvizUnavailableError(
                "the graphviz package is installed but its `dot` binary is not on PATH; install "
                "Graphviz (apt-get install graphviz, brew install graphviz)") from exc

    def to_svg(self, show: str = "both", digits: int = 4, title: str | None = None) -> str:
        """The picture as SVG text (see :meth:`pipe`)."""
        return self.pipe("svg", show=show, digits=digits, title=title).decode("utf-8")

    def save(self, path: str | Path, show: str = "both", digits: int = 4,
             title: str | None = None) -> Path:
        """Write the picture; the suffix says how: ``.dot``/``.gv`` (text), ``.svg``, ``.png``..."""
        path = Path(path)
        suffix = path.suffix.lstrip(".").lower()
        if suffix in ("dot", "gv"):
            path.write_text(self.to_dot(show=show, digits=digits, title=title), encoding="utf-8")
        elif suffix:
            path.write_bytes(self.pipe(suffix, show=show, digits=digits, title=title))
        else:
            raise ValueError(f"cannot tell the format of {str(path)!r}: give it a suffix "
                             "such as .svg, .png or .dot")
        return path

    # -- notebooks ------------------------------------------------------------------------

    def _repr_svg_(self) -> str | None:
        try:
            return self.to_svg()
        except GraphvizUnavailableError:
            return None

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        bundle = {"text/plain": repr(self), "text/vnd.graphviz": self.to_dot()}
        svg = self._repr_svg_()
        if svg is not None:
            bundle["image/svg+xml"] = svg
        return bundle


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _param_stamps(layer: Any) -> tuple[tuple[str, Any], ...]:
    """The version stamp of each of ``layer``'s parameters (``()`` for a layer without any)."""
    params = getattr(layer, "params", None)
    if not isinstance(params, dict):
        return ()
    return tuple((str(name), _stamp_of(value)) for name, value in params.items())


def _like_input(grad: Any, edge: Edge, op: Node) -> Any:
    """Check ``grad`` against the input it belongs to: its shape, or a Python number."""
    if edge.shape is None:  # the input was a Python number: so is its gradient
        if type(grad) in _SCALARS or not isinstance(edge.forward, _SCALARS):
            return grad
        if getattr(grad, "ndim", 0):  # an array met the number: the sum over it
            grad = namespace_of(grad).sum(grad)
        # a NumPy scalar or a 0-d array: the Python number (one read from the device)
        return complex(grad) if isinstance(edge.forward, complex) else float(grad)
    shape = getattr(grad, "shape", None)
    if shape is None or tuple(shape) != edge.shape:
        got = f"shape {tuple(shape)}" if shape is not None else type(grad).__name__
        raise BackwardError(f"{op.describe()} returned a gradient of {got} for its input "
                            f"{edge.slot}, which has shape {edge.shape}")
    return grad


def _zeros_like(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, _SCALARS):
        return value * 0
    xp = namespace_of(value)
    return xp.zeros(tuple(value.shape), dtype=_float_dtype(value, xp),
                    device=array_api_compat.device(value))


def _float_dtype(x: Any, xp: Any) -> Any:
    """``x``'s dtype when it is floating, else the device's default floating dtype."""
    if xp.isdtype(x.dtype, ("real floating", "complex floating")):
        return x.dtype
    info = xp.__array_namespace_info__()
    return info.default_dtypes(device=array_api_compat.device(x))["real floating"]


def _has_params(layer: Any) -> bool:
    params = getattr(layer, "params", None)
    return isinstance(params, dict) and bool(params)


@dataclasses.dataclass(frozen=True)
class _Container:
    """A dict, list or tuple attribute of a layer, remembered entry by entry (a cache kept in a
    dict, or a tuple of arrays: a new tuple may reuse the freed one's address, its arrays not)."""

    ident: int
    kind: type
    items: tuple[tuple[Any, Callable[[], Any]], ...]


def _fingerprint(value: Any) -> Any:
    """How :func:`_cache_of` remembers one attribute: by :func:`_hold`, a container entry by entry."""
    kind = type(value)
    if kind in (dict, list, tuple) and len(value) <= 64 and not _small(value):
        items = value.items() if kind is dict else enumerate(value)
        return _Container(id(value), kind, tuple((key, _hold(v)) for key, v in items))
    return _hold(value)


def _matches(entry: Any, value: Any) -> bool:
    """Whether ``value`` is the very object (with the very entries) ``entry`` remembers."""
    if isinstance(entry, _Container):
        container: Any = value
        same_kind = type(value) is entry.kind  # kept in a name: no narrowing of `container`
        if id(container) != entry.ident or not same_kind or len(container) != len(entry.items):
            return False
        if entry.kind is dict:
            return all(key in container and _same(held, container[key]) for key, held in entry.items)
        return all(_same(held, container[key]) for key, held in entry.items)
    return _same(entry, value)


_Cache = tuple[tuple[str, Any], ...]


def _cache_of(layer: Any, before: _Cache = ()) -> _Cache:
    """What ``layer`` holds now, attribute by attribute, without keeping any of it alive.

    Attributes that are dicts, lists or tuples of arrays (``params``, ``grads``, a cache kept
    in a dict) are remembered entry by entry. ``before`` is an earlier result for the same layer: its
    entries are reused where they still match (a backward that set nothing allocates nothing).
    """
    attributes = _cached_attributes(layer)
    if attributes is None:
        return ()
    if len(before) == len(attributes) and _cache_is(layer, before):
        return before
    old = dict(before)
    return tuple((key, old[key] if key in old and _matches(old[key], value) else _fingerprint(value))
                 for key, value in attributes.items())


def _cached_attributes(layer: Any) -> dict[str, Any] | None:
    """``layer``'s attributes that its ``backward`` may read: all but ``grads``, its output."""
    attributes = getattr(layer, "__dict__", None)
    if attributes is None or "grads" not in attributes:
        return attributes
    return {key: value for key, value in attributes.items() if key != "grads"}


def _cache_is(layer: Any, cache: _Cache) -> bool:
    """Whether ``layer`` holds the very objects it held when ``cache`` was taken."""
    attributes = _cached_attributes(layer)
    if attributes is None:
        return True
    if len(attributes) != len(cache):
        return False
    return all(key in attributes and _matches(held, attributes[key]) for key, held in cache)


# -- recording -----------------------------------------------------------------------------


def _wrap(function: Callable[..., Any], backward: bool) -> Callable[..., Any]:
    @functools.wraps(function)
    def recorded(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_NESTED, "depth", 0):
            return function(self, *args, **kwargs)
        _NESTED.depth = 1
        try:
            result = function(self, *args, **kwargs)
        finally:
            _NESTED.depth = 0
        with _LOCK:
            if _ACTIVE:
                if backward:
                    _ACTIVE[-1]._backward(self, args[0] if args else kwargs.get("dout"), result)
                else:
                    _ACTIVE[-1]._forward(self, args, kwargs, result)
        return result
    _RECORDING.add(recorded)
    return recorded


#: Every recording wrapper made, so that a class is never wrapped twice.
_RECORDING: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()
#: function -> its recording wrapper, made once (a block's entry then only swaps them in)
_WRAPPERS: weakref.WeakKeyDictionary[Any, Callable[..., Any]] = weakref.WeakKeyDictionary()


def _install_class(cls: type) -> None:
    originals = {name: cls.__dict__[name] for name in ("forward", "backward")
                 if callable(cls.__dict__.get(name))
                 and cls.__dict__[name] not in _RECORDING}
    _ORIGINALS[cls] = originals
    for name, function in originals.items():
        wrapper = _WRAPPERS.get(function)
        if wrapper is None:
            wrapper = _WRAPPERS[function] = _wrap(function, backward=name == "backward")
        setattr(cls, name, wrapper)


#: Base classes whose every subclass is recorded (:class:`bp_xp.Layer` registers itself).
_BASES: list[type] = []
#: While a block is open: base -> its own ``__init_subclass__`` (None: it had none).
_HOOKED: dict[type, Any] = {}


def record_subclasses(base: T) -> T:
    """Have :func:`record` record every subclass of ``base``, also those defined later.

    :class:`bp_xp.Layer` is registered this way, so every layer is recorded with no mark
    (this module sits below the layers and does not import them). Returns ``base``.
    """
    if base not in _BASES:
        _BASES.append(base)
    return base


def _subclasses(base: type) -> list[type]:
    found: list[type] = []
    stack: list[type] = list(base.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls not in found:
            found.append(cls)
            stack.extend(cls.__subclasses__())
    return found


def _install() -> None:
    for base in _BASES:
        for cls in _subclasses(base):
            if cls not in _ORIGINALS:
                _install_class(cls)
        _hook_subclassing(base)
    for cls in list(_RECORDABLE):
        if cls not in _ORIGINALS:
            _install_class(cls)


def _hook_subclassing(base: type) -> None:
    """A subclass of ``base`` defined while a block is open is recorded too."""
    own = base.__dict__.get("__init_subclass__")

    def init_subclass(cls: type, **kwargs: Any) -> None:
        if own is not None:
            own.__func__(cls, **kwargs)
        else:
            super(base, cls).__init_subclass__(**kwargs)  # type: ignore[arg-type]
        with _LOCK:
            if _ACTIVE and cls not in _ORIGINALS:
                _install_class(cls)

    _HOOKED[base] = own
    base.__init_subclass__ = classmethod(init_subclass)  # type: ignore[assignment, method-assign]


def _uninstall() -> None:
    for cls, originals in _ORIGINALS.items():
        for name, function in originals.items():
            setattr(cls, name, function)
    _ORIGINALS.clear()
    for base, own in _HOOKED.items():
        if own is None:
            delattr(base, "__init_subclass__")
        else:
            base.__init_subclass__ = own  # type: ignore[method-assign]
    _HOOKED.clear()


@functools.cache
def _takes_need_dx(function: Any) -> bool:
    """Whether a ``backward`` takes the keyword ``need_dx`` (Affine, Convolution)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "need_dx" and p.kind in (inspect.Parameter.KEYWORD_ONLY,
                                                   inspect.Parameter.POSITIONAL_OR_KEYWORD)
               for p in parameters)


@contextmanager
def record(names: dict[str, Any] | None = None, /, *, head: int = 3, keep_layers: bool = True,
           check_inplace: bool = True, **more_names: Any) -> Iterator[Graph]:
    """Record the ``forward`` (and any ``backward``) calls of layers inside the block.

    Keyword arguments name input values (``record(x=x, y=y)``): the picture labels them
    and :meth:`Graph.backward` returns their gradients under those names;
    :meth:`Graph.name` names more, inside the block or after it. Blocks may nest: calls
    go to the innermost recorder.

    Parameters
    ----------
    names : dict, optional
        More names, for a name that is also a keyword here: ``record({"head": h})``.
    head : int
        How many values of each array the picture shows (3); the recording keeps no more.
    keep_layers : bool
        Keep the layer objects alive, so that :meth:`Graph.backward` can run their
        ``backward`` (True). ``False`` keeps only weak references: a recording for the
        picture alone, costing nothing when a layer made inside the block is dropped.
    check_inplace : bool
        Stamp each value's version when it flows, so that backward refuses a value changed
        in place since (True); costs one checksum pass per NumPy array that flows.

    Examples
    --------
    >>> from bp_xp import MulLayer
    >>> from bp_xp.graph import record
    >>> mul_apple, mul_tax = MulLayer(), MulLayer()
    >>> with record(apple=100, apple_num=2, tax=1.1) as g:
    ...     price = g.name(mul_tax.forward(mul_apple.forward(100, 2), 1.1), "price")
    >>> g.backward(price)
    {'apple': 2.2, 'apple_num': 110.00000000000001, 'tax': 200.0}
    >>> for edge in g.edges:
    ...     print(edge)
    apple -> ×: 100 | 2.2
    apple_num -> ×: 2 | 110
    × -> ×: 200 | 1.1
    tax -> ×: 1.1 | 200
    × -> price: 220 | 1
    """
    graph = Graph({**(names or {}), **more_names}, head=head, keep_layers=keep_layers,
                  check_inplace=check_inplace)
    with _LOCK:
        if not _ACTIVE:
            _install()
        _ACTIVE.append(graph)
    try:
        yield graph
    finally:
        with _LOCK:
            _ACTIVE.remove(graph)
            if not _ACTIVE:
                _uninstall()
