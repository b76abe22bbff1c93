"""Pictures of a computational graph: which node fed which, and the values both passes sent.

Wrap the book's forward and backward calls in :func:`record`, and the recorder draws the
chapter's figures: each node a circle, the forward value above each edge, the backward
value (red, arrow pointing back) below it, inputs and output labelled with your names::

    with bp_xp.graph.record(apple=apple, apple_num=apple_num, tax=tax) as g:
        price = mul_tax.forward(mul_apple.forward(apple, apple_num), tax)
        g.name(price, "price")
        dapple_price, dtax = mul_tax.backward(1)
        dapple, dapple_num = mul_apple.backward(dapple_price)
    g.to_dot()             # Graphviz DOT text, no dependency
    g.save("apple.svg")    # SVG/PNG: needs the graphviz package and its `dot` binary
    g                      # in a notebook: the picture

How values are linked: an input of a node call is the output of an earlier recorded call
when it is *the same object* (``is``). Arrays and floats made by a node are new objects,
so this is exact for them; CPython shares the small ints -5..256, so a Python int input
equal to an earlier small-int output is linked to it.

Cost when not recording: none. Node classes are marked with :func:`recordable`, which
only notes the class. :func:`record` wraps the marked classes' ``forward`` and
``backward`` on entry and puts the original functions back on exit, so outside a
``with record()`` block the layers run exactly the code they were written with.
Recording is process-wide (every thread's calls of marked classes are recorded), and
values are copied to the host when recorded, so the picture shows what flowed even if an
array is changed later.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from .backends import dtype_name, to_numpy

__all__ = ["Edge", "Graph", "GraphvizUnavailableError", "Node", "record", "recordable"]

T = TypeVar("T", bound=type)

_SCALARS = (bool, int, float, complex)
#: Classes whose calls are recorded, with the symbol drawn in their circle.
_RECORDABLE: dict[type, str] = {}
#: Active recorders, innermost last; calls go to the innermost.
_ACTIVE: list[Graph] = []
_ORIGINALS: dict[type, dict[str, Any]] = {}
_LOCK = threading.RLock()
_NESTED = threading.local()  # inside a recorded call: calls it makes are not recorded


class GraphvizUnavailableError(RuntimeError):
    """SVG or PNG was asked for, but the ``graphviz`` package or its ``dot`` binary is missing."""


def recordable(label: str) -> Callable[[T], T]:
    """Mark a layer class so that :func:`record` captures its ``forward``/``backward`` calls.

    ``label`` is what its circle shows (``"×"``, ``"exp"``); a layer whose label depends
    on its settings gives a ``graph_label`` attribute instead (``PowLayer(2)``: ``**2``).
    The class is returned unchanged: marking costs nothing when not recording.

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
    """A host copy of what an array held when it was recorded: shape, dtype, first values."""

    shape: tuple[int, ...]
    dtype: str
    head: tuple[Any, ...]

    def text(self, digits: int) -> str:
        values = ", ".join(_number(v, digits) for v in self.head)
        more = ", …" if len(self.head) < math.prod(self.shape) else ""
        return f"{self.dtype} {self.shape}\n[{values}{more}]"


_HEAD = 3


def _snapshot(value: Any) -> Any:
    """A Python number stays as it is; a 0-d array becomes its number; an array a summary."""
    if isinstance(value, _SCALARS) or value is None:
        return value
    try:
        host = to_numpy(value)
    except Exception:  # an abstract value (a JAX tracer): shape and dtype only
        return _ArrayValue(tuple(value.shape), str(value.dtype), ())
    if host.ndim == 0:
        return host.item()
    return _ArrayValue(tuple(host.shape), dtype_name(value.dtype), tuple(host.reshape(-1)[:_HEAD].tolist()))


def _number(v: Any, digits: int) -> str:
    if isinstance(v, bool) or isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    if isinstance(v, complex):
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


# -- what was recorded ---------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class Node:
    """A vertex: one ``forward`` call of a layer, an input value, or an output.

    ``kind`` is ``"op"``, ``"input"`` or ``"output"``; ``label`` is what is drawn.
    """

    id: str
    kind: str
    label: str
    layer: Any = None
    value: Any = None  # an input's or output's object, for naming after the fact

    def __str__(self) -> str:
        return self.label


@dataclasses.dataclass(eq=False)
class Edge:
    """A value travelling from ``source`` to input ``slot`` of ``target``.

    ``forward`` is the value sent forward (a Python number, or an array summary);
    ``backward`` the gradient ``target.backward`` returned for that input (``None``
    until backward is recorded).
    """

    source: Node
    target: Node
    slot: int
    forward: Any
    backward: Any = None
    value: Any = dataclasses.field(default=None, repr=False)  # the forward object itself

    def __str__(self) -> str:
        back = "" if self.backward is None else f" | {format_value(self.backward)}"
        return f"{self.source} -> {self.target}: {format_value(self.forward)}{back}"


class Graph:
    """What :func:`record` captured; renders it as DOT, SVG or PNG.

    Attributes
    ----------
    nodes : list of Node
        Input values, node calls and outputs, in the order they were met.
    edges : list of Edge
        Every value that travelled, with what went forward and what came back.
    """

    def __init__(self, names: dict[str, Any] | None = None) -> None:
        self._ops: list[Node] = []
        self._in_edges: dict[Node, list[Edge]] = {}
        self._inputs: dict[int, Node] = {}
        self._produced: dict[int, Node] = {}  # id(output object) -> node that made it
        self._consumed: set[int] = set()
        self._latest: dict[int, Node] = {}  # id(layer) -> its latest forward call
        self._douts: dict[Node, Any] = {}
        self._outputs: dict[Node, Any] = {}  # each call's output as it was when made
        self._names: dict[int, str] = {}
        self._keep: list[Any] = []  # holds every object whose id is a key above
        for label, value in (names or {}).items():
            self.name(value, label)

    def __repr__(self) -> str:
        return f"Graph({len(self._ops)} nodes, {len(self.edges)} edges)"

    # -- building -------------------------------------------------------------------------

    def name(self, value: Any, label: str) -> Any:
        """Call ``value`` (an input, output or intermediate value) ``label`` in the picture.

        Returns ``value``, so that ``price = g.name(layer.forward(a, b), "price")`` works.
        Names may be given before or after the value is used.
        """
        self._keep.append(value)
        self._names[id(value)] = str(label)
        return value

    def _forward(self, layer: Any, args: tuple[Any, ...], out: Any) -> None:
        node = Node(f"n{len(self._ops)}", "op", _label_of(layer), layer=layer)
        self._keep.extend((layer, out, *args))
        edges = []
        for slot, arg in enumerate(args):
            source = self._produced.get(id(arg))
            if source is None:
                source = self._inputs.get(id(arg))
            if source is None:
                source = Node(f"i{len(self._inputs)}", "input", "", value=arg)
                self._inputs[id(arg)] = source
            self._consumed.add(id(arg))
            edges.append(Edge(source, node, slot, _snapshot(arg), value=arg))
        self._ops.append(node)
        self._in_edges[node] = edges
        self._produced[id(out)] = node
        self._outputs[node] = _snapshot(out)
        node.value = out
        self._latest[id(layer)] = node

    def _backward(self, layer: Any, dout: Any, grads: Any) -> None:
        node = self._latest.get(id(layer))
        if node is None:  # its forward ran before recording began
            return
        edges = self._in_edges[node]
        if not (isinstance(grads, tuple) and len(grads) == len(edges)):
            grads = (grads,)
        for edge, grad in zip(edges, grads):
            edge.backward = _snapshot(grad)
        self._douts[node] = _snapshot(dout)

    # -- reading --------------------------------------------------------------------------

    @property
    def nodes(self) -> list[Node]:
        inputs = list(self._inputs.values())
        for node in inputs:
            node.label = self._input_label(node)
        return inputs + self._ops + [edge.target for edge in self._output_edges()]

    @property
    def edges(self) -> list[Edge]:
        self.nodes  # noqa: B018 - refreshes the input labels from the names
        inner = [edge for node in self._ops for edge in self._in_edges[node]]
        return inner + self._output_edges()

    def _input_label(self, node: Node) -> str:
        name = self._names.get(id(node.value))
        if name is not None:
            return name
        if isinstance(node.value, _SCALARS):
            return format_value(node.value)  # a constant such as the 1 of 1 + exp(-x)
        return f"input {node.id[1:]}"

    def _output_edges(self) -> list[Edge]:
        edges = []
        for node in self._ops:
            if id(node.value) in self._consumed:
                continue
            sink = Node(f"o{node.id[1:]}", "output", self._names.get(id(node.value), ""),
                        value=node.value)
            edges.append(Edge(node, sink, 0, self._outputs[node], self._douts.get(node),
                              value=node.value))
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
            name = self._names.get(id(edge.value))
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
                "rendering needs the graphviz Python package (pip install graphviz) and the "
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
                    _ACTIVE[-1]._forward(self, args, result)
        return result
    return recorded


def _install() -> None:
    for cls in _RECORDABLE:
        originals = {name: cls.__dict__[name] for name in ("forward", "backward")
                     if name in cls.__dict__}
        _ORIGINALS[cls] = originals
        for name, function in originals.items():
            setattr(cls, name, _wrap(function, backward=name == "backward"))


def _uninstall() -> None:
    for cls, originals in _ORIGINALS.items():
        for name, function in originals.items():
            setattr(cls, name, function)
    _ORIGINALS.clear()


@contextmanager
def record(**names: Any) -> Iterator[Graph]:
    """Record the ``forward`` and ``backward`` calls of graph nodes inside the block.

    Keyword arguments name input values for the picture (``record(apple=apple)``);
    :meth:`Graph.name` names more, inside the block or after it. Blocks may nest: calls
    go to the innermost recorder.

    Examples
    --------
    >>> from bp_xp import MulLayer
    >>> from bp_xp.graph import record
    >>> mul_apple, mul_tax = MulLayer(), MulLayer()
    >>> with record(apple=100, apple_num=2, tax=1.1) as g:
    ...     price = g.name(mul_tax.forward(mul_apple.forward(100, 2), 1.1), "price")
    ...     dapple_price, dtax = mul_tax.backward(1)
    ...     dapple, dapple_num = mul_apple.backward(dapple_price)
    >>> for edge in g.edges:
    ...     print(edge)
    apple -> ×: 100 | 2.2
    apple_num -> ×: 2 | 110
    × -> ×: 200 | 1.1
    tax -> ×: 1.1 | 200
    × -> price: 220 | 1
    """
    graph = Graph(names)
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
