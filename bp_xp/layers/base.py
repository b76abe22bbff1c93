"""The layer protocol: what every layer of bp_xp, and every layer a user writes, offers.

A layer is the book's small class with ``forward`` and ``backward``. On top of that it

* owns its parameters in ``params`` (a dict, name -> array) and, after ``backward``,
  their gradients in ``grads`` (same keys);
* keeps any other state that must survive a checkpoint or ``.to()`` in ``state``
  (BatchNormalization's running statistics), never in ``params``;
* says what it needs to be rebuilt with :meth:`Layer.config` (plain JSON values), and is
  rebuilt from that, its parameters and its state by :meth:`Layer.from_config`.

Networks, checkpoints, the Trainer, the Dask path and the CLI talk to layers only
through this protocol, so a layer written outside bp_xp works everywhere a built-in one
does. The smallest useful layer needs only ``forward`` and ``backward``::

    class Tanh(bp_xp.Layer):
        def forward(self, x):
            self.out = bp_xp.namespace_of(x).tanh(x)
            return self.out

        def backward(self, dout):
            return dout * (1 - self.out ** 2)

A layer whose behaviour differs between training and inference takes the book's
keyword ``forward(x, train_flg=True)``; networks pass ``train_flg`` to exactly the layers
whose ``forward`` accepts it.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, ClassVar

from ..graph import record_subclasses

__all__ = ["Layer", "LossLayer", "accepts_keyword", "layer_class", "registered_layers"]

Array = Any

_REGISTRY: dict[str, type[Layer]] = {}


@record_subclasses  # bp_xp.graph.record() records every layer's calls, no mark needed
class Layer:
    """Base class of every layer: parameters, gradients, state and a rebuild recipe.

    Subclasses implement ``forward`` and ``backward``. They do not need to call
    ``super().__init__()``: the three dicts exist from the moment the object is created.

    Attributes
    ----------
    params : dict[str, array]
        The layer's trainable arrays, owned by the layer. Replace an entry to update it
        (``layer.params["W"] = new``): that works on every backend, JAX included.
    grads : dict[str, array]
        The gradients of ``params`` from the last ``backward`` (same keys).
    state : dict[str, array]
        Arrays that are not trained but must be kept (running statistics).

    Examples
    --------
    >>> import numpy as np, bp_xp
    >>> class Double(bp_xp.Layer):
    ...     def forward(self, x):
    ...         return 2 * x
    ...     def backward(self, dout):
    ...         return 2 * dout
    >>> layer = Double()
    >>> layer.forward(np.array([1.0, 2.0])), layer.params, layer.config()
    (array([2., 4.]), {}, {})
    """

    params: dict[str, Array]
    grads: dict[str, Array]
    state: dict[str, Array]

    #: Registry key of this class in checkpoints: ``"module.QualName"``.
    layer_type: ClassVar[str]

    #: Whether ``forward``/``backward`` may be traced once and replayed (``jax.jit`` in
    #: :func:`bp_xp.compile_step`). ``False`` for a layer whose calls do host work that a
    #: trace would freeze, such as drawing a fresh random mask from a NumPy generator.
    traceable: ClassVar[bool] = True

    #: Whether a training ``forward`` draws random numbers (Dropout's mask). A compiled step
    #: (:func:`bp_xp.compile_step` on JAX) cannot replay draws made on the host, so before
    #: every call it asks such a layer for :meth:`next_seed`, copies the seeds to the device,
    #: and while the step is traced sets :attr:`step_seed` to the layer's seed; the layer
    #: then draws with its backend's ``BackendSpec.random_uniform``.
    draws_random: ClassVar[bool] = False

    #: This step's seed for a ``draws_random`` layer: a 0-d uint32 array on the device (a
    #: tracer while a compiled step is traced), or ``None``: draw as the layer does eagerly.
    step_seed: Array | None = None

    def next_seed(self) -> int:
        """A new seed in ``[0, 2**32)`` for one compiled step (``draws_random`` layers).

        Drawn from the layer's own seeded host generator, so a compiled run is reproducible
        from the layer's seed.
        """
        raise NotImplementedError(f"{type(self).__name__} sets draws_random but does not "
                                  "implement next_seed")

    def __new__(cls, *args: Any, **kwargs: Any) -> Layer:
        layer = super().__new__(cls)
        layer.params = {}
        layer.grads = {}
        layer.state = {}
        return layer

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.layer_type = f"{cls.__module__}.{cls.__qualname__}"
        # Checkpoints name a layer by this key and are rebuilt only from classes that are
        # already defined in this process: loading a file never imports anything.
        _REGISTRY[cls.layer_type] = cls

    # The protocol is ``forward(x)`` and ``backward(dout)``, but layers legitimately widen
    # it: ``forward(x, train_flg=...)``, ``backward(dout, need_dx=...)``, two-input graph
    # nodes ``forward(x, y)``, losses ``forward(x, t)``. Hence the open signatures: each
    # subclass states its own, and networks pass the keywords only where
    # :func:`accepts_keyword` says a layer takes them.
    def forward(self, *args: Any, **kwargs: Any) -> Array:  # pragma: no cover - protocol
        """The layer's output for its input(s): ``forward(x)`` in the single-input protocol."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, *args: Any, **kwargs: Any) -> Array:  # pragma: no cover - protocol
        """The gradient of the input(s) from ``dout``, the gradient of the output."""
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def config(self) -> dict[str, Any]:
        """Keyword arguments, other than arrays, that rebuild this layer (JSON values).

        The default, ``{}``, fits layers whose constructor takes no argument.
        """
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any], params: dict[str, Array],
                    state: dict[str, Array]) -> Layer:
        """Rebuild a layer from :meth:`config`, its parameters and its state.

        The default calls ``cls(**config)`` and then installs ``params`` and ``state``,
        which must have exactly the keys the new layer expects. Layers whose constructor
        takes arrays (``Affine(W, b)``) override this.
        """
        layer = cls(**config)
        _install(layer, "params", params)
        _install(layer, "state", state)
        return layer


class LossLayer(Layer):
    """A layer that ends a network: ``forward(x, t)`` returns the loss, ``backward(dout=1)``.

    ``forward`` keeps the loss it returned in ``self.loss`` (a 0-d array on the device),
    as the book's ``SoftmaxWithLoss`` does; ``backward`` starts the backward pass from it.
    """

    loss: Array | None = None

    def forward(self, x: Array, t: Array) -> Array:  # pragma: no cover - the protocol's signature
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, dout: Any = 1) -> Array:  # pragma: no cover - the protocol's signature
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")


def _install(layer: Layer, what: str, arrays: dict[str, Array]) -> None:
    held: dict[str, Array] = getattr(layer, what)
    if held and sorted(arrays) != sorted(held):
        raise ValueError(f"{type(layer).__name__} has {what} {sorted(held)}, got {sorted(arrays)}")
    if not held and arrays:
        raise ValueError(f"{type(layer).__name__} has no {what}, got {sorted(arrays)}")
    held.update(arrays)


def layer_class(layer_type: str) -> type[Layer]:
    """The layer class registered under ``layer_type`` (``"module.QualName"``).

    Raises :class:`KeyError` naming the known types when none is.

    Examples
    --------
    >>> from bp_xp.layers import layer_class
    >>> layer_class("bp_xp.layers.affine.Affine").__name__
    'Affine'
    """
    try:
        return _REGISTRY[layer_type]
    except KeyError:
        raise KeyError(
            f"no layer class {layer_type!r} is defined in this process; import the module "
            f"that defines it first (known: {', '.join(sorted(_REGISTRY))})"
        ) from None


def registered_layers() -> dict[str, type[Layer]]:
    """Every layer class defined so far, by registry key (a copy)."""
    return dict(_REGISTRY)


@functools.cache
def _keywords(function: Any) -> frozenset[str]:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        return frozenset()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return frozenset({"*"})
    return frozenset(p.name for p in parameters
                     if p.kind in (inspect.Parameter.KEYWORD_ONLY,
                                   inspect.Parameter.POSITIONAL_OR_KEYWORD))


def accepts_keyword(method: Any, name: str) -> bool:
    """Whether a bound or plain function takes the keyword ``name`` (or ``**kwargs``).

    Networks use it once per layer to decide whether to pass ``train_flg``.

    Examples
    --------
    >>> from bp_xp.layers import Affine, Relu, accepts_keyword
    >>> accepts_keyword(Affine.backward, "need_dx"), accepts_keyword(Relu.forward, "train_flg")
    (True, False)
    """
    function = getattr(method, "__func__", method)
    keywords = _keywords(function)
    return name in keywords or "*" in keywords
