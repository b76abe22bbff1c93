"""``Sequential``: an ordered stack of layers ending in a loss layer, with the book's API.

The book's networks keep an ``OrderedDict`` of layers, run them in order for
``predict``, and in reverse for ``gradient``. ``Sequential`` is that loop, written once
against the layer protocol (:class:`bp_xp.Layer`), so that any layer that follows it,
one of bp_xp's or one a user wrote, trains, checks its gradient, saves, loads and moves
between backends. ``TwoLayerNet`` and ``MultiLayerNet`` are thin constructors of it.

Parameters are named as in the book: the ``k``-th layer that has a weight ``W`` gives
``W{k}`` and ``b{k}``, and parameters of layers that follow it before the next weight
layer take the same number (BatchNormalization after ``Affine1`` has ``gamma1`` and
``beta1``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from ._checks import require_array
from .backends import Backend, backend_of, dtype_name, namespace_of, resolve_backend
from .debug import check_labels
from .gradient import numerical_gradient
from .layers.base import Layer, LossLayer, accepts_keyword, layer_class
from .layers.loss import SoftmaxWithLoss
from .params import Params

__all__ = ["Sequential", "network_class"]

Array = Any

_NETWORKS: dict[str, type[Sequential]] = {}


class Sequential:
    """An ordered stack of layers ending in a loss layer.

    Parameters
    ----------
    layers : mapping of name to Layer, or iterable of Layer
        The layers, in the order ``predict`` runs them. Unnamed layers are named after
        their class and numbered per class, as in the book (``Affine1``, ``Relu1``,
        ``Affine2``).
    loss : LossLayer, optional
        The last layer; :class:`bp_xp.layers.SoftmaxWithLoss` by default.
    weight_decay_lambda : float
        L2 penalty ``0.5 * lambda * sum(W ** 2)`` over every parameter named ``W``, added
        to the loss and its gradient.
    backend : str or Backend, optional
        Where the arrays live. By default, where the layers' parameters are; needed only
        for a network without parameters.

    Attributes
    ----------
    layers : dict[str, Layer]
        The book's ordered dict of layers.
    last_layer : LossLayer
    params : Params
        The book's ``params``: ``params["W1"]`` reads and writes the layer's own array.
    backend : Backend
    dtype : dtype of the parameters

    Examples
    --------
    >>> import numpy as np, bp_xp
    >>> from bp_xp.layers import Affine, Relu
    >>> rng = np.random.default_rng(0)
    >>> net = bp_xp.Sequential([
    ...     Affine(rng.standard_normal((4, 8)), np.zeros(8)), Relu(),
    ...     Affine(rng.standard_normal((8, 3)), np.zeros(3)),
    ... ])
    >>> list(net.layers), list(net.params)
    (['Affine1', 'Relu1', 'Affine2'], ['W1', 'b1', 'W2', 'b2'])
    >>> grads = net.gradient(np.ones((2, 4)), np.array([0, 2]))
    >>> grads["W2"].shape
    (8, 3)
    """

    #: Registry key of this class in checkpoints: ``"module.QualName"``.
    network_type: ClassVar[str] = "bp_xp.sequential.Sequential"

    layers: dict[str, Layer]
    last_layer: LossLayer
    params: Params
    backend: Backend
    dtype: Any
    weight_decay_lambda: float

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.network_type = f"{cls.__module__}.{cls.__qualname__}"
        _NETWORKS[cls.network_type] = cls

    def __init__(self, layers: Mapping[str, Layer] | Iterable[Layer],
                 loss: LossLayer | None = None, *, weight_decay_lambda: float = 0.0,
                 backend: Any = None) -> None:
        named = _named_layers(layers)
        if loss is None:
            loss = SoftmaxWithLoss()
        if not isinstance(loss, LossLayer):
            raise TypeError(f"loss must be a bp_xp.layers.LossLayer (forward(x, t) -> loss), "
                            f"got {type(loss).__name__}")
        lam = float(weight_decay_lambda)
        if not lam >= 0 or lam == float("inf"):  # also refuses NaN
            raise ValueError(f"weight_decay_lambda must be a finite number >= 0, got "
                             f"{weight_decay_lambda!r}")
        self.layers = named
        self.last_layer = loss
        self.weight_decay_lambda = lam
        self.params = Params(_param_slots(named))
        arrays = [layer.params[name] for layer, name in self.params.owners.values()]
        if arrays:
            namespace_of(*arrays, names=list(self.params))
            dtypes = {dtype_name(a.dtype) for a in arrays}
            if len(dtypes) != 1:
                raise TypeError(f"the parameters of a network must share one dtype, got "
                                f"{', '.join(sorted(dtypes))}")
            if backend is None:
                # where the parameters are; new arrays (minibatch indices, moved data) get
                # the backend's default layout, not the chunks of the first parameter
                backend = dataclasses.replace(backend_of(arrays[0]), chunks="auto")
            self.backend = resolve_backend(backend)
            self.dtype = arrays[0].dtype
        else:
            self.backend = resolve_backend(backend)
            self.dtype = self.backend.dtype("float32")
        self._train_aware = tuple(accepts_keyword(layer.forward, "train_flg")
                                  for layer in named.values())
        # What every step walks, computed once: the layers in backward order and the
        # (key, layer, name) of each parameter.
        self._backward_order = tuple(reversed(named.values()))
        self._backward_names = tuple(reversed(named))
        self._slot_items = tuple((key, layer, name)
                                 for key, (layer, name) in self.params.owners.items())
        first = next(iter(named.values()), None)
        self._first_skips_dx = first is not None and accepts_keyword(first.backward, "need_dx")

    # -- the book's API --------------------------------------------------------------

    def predict(self, x: Array, train_flg: bool = False) -> Array:
        """Scores before the loss layer (logits) for a batch ``x`` of shape ``(N, ...)``.

        ``train_flg`` reaches every layer whose ``forward`` takes it (Dropout,
        BatchNormalization); the others ignore the mode.
        """
        self._check_input(x)
        for layer, aware in zip(self.layers.values(), self._train_aware):
            x = layer.forward(x, train_flg=train_flg) if aware else layer.forward(x)
        return x

    def loss(self, x: Array, t: Array, train_flg: bool = False) -> Array:
        """The loss (plus weight decay) as a 0-d array on the device."""
        loss = self.last_layer.forward(self.predict(x, train_flg), t)
        if self.weight_decay_lambda:
            xp = self.backend.xp
            decay = sum(xp.sum(layer.params[name] ** 2)
                        for _, layer, name in self._slot_items if name == "W")
            loss = loss + 0.5 * self.weight_decay_lambda * decay
        return loss

    def accuracy(self, x: Array, t: Array, batch_size: int | None = None) -> Array:
        """Fraction of correct predictions, as a 0-d array (``float(...)`` for a number).

        ``t`` holds integer labels of shape ``(N,)`` or one-hot rows ``(N, C)`` with the
        network's ``C`` classes. A label outside ``[0, C)`` never matches, so it counts as
        a wrong prediction (with :func:`bp_xp.debug.checking` it raises
        :class:`bp_xp.LabelError`). ``batch_size`` predicts in batches of that many
        samples (the book's ``SimpleConvNet.accuracy``), summing the hits on the device.
        """
        require_array(t, "accuracy", "t", "an array of integer labels (N,) or one-hot rows (N, C)")
        xp = namespace_of(x, t, names=("x", "t"))
        n = x.shape[0]
        if t.ndim not in (1, 2) or t.shape[0] != n:
            raise ValueError(f"accuracy: t must be labels of shape ({n},) or one-hot rows of "
                             f"shape ({n}, classes) for x of shape {tuple(x.shape)}, got t of "
                             f"shape {tuple(t.shape)}")
        rows = t if t.ndim == 2 else None
        if rows is not None:
            t = xp.argmax(rows, axis=1)
        elif not xp.isdtype(t.dtype, "integral"):
            raise TypeError(f"accuracy: labels of shape ({n},) must have an integer dtype, got "
                            f"{dtype_name(t.dtype)}; pass one-hot rows of shape ({n}, classes) "
                            "for float targets")
        if n == 0:
            raise ValueError("accuracy of an empty batch is undefined (x has 0 samples)")
        step = n if batch_size is None else int(batch_size)
        if step < 1:
            raise ValueError(f"accuracy: batch_size must be at least 1, got {batch_size!r}")
        hits = None
        for start in range(0, n, step):
            stop = min(start + step, n)  # array_api_strict refuses out-of-bounds stops
            y = self.predict(x[start:stop, ...], train_flg=False)
            if y.ndim != 2:
                raise ValueError(f"accuracy needs scores of shape (N, classes), got {tuple(y.shape)}")
            if hits is None:  # first batch: the number of classes is known now
                _check_targets(rows, t, y.shape[1])
            count = xp.sum(xp.astype(xp.argmax(y, axis=1) == t[start:stop], y.dtype))
            hits = count if hits is None else hits + count
        if hits is None:
            raise ValueError("accuracy of an empty batch is undefined (x has 0 samples)")
        return hits / n

    def loss_and_gradient(self, x: Array, t: Array) -> tuple[Array, dict[str, Array]]:
        """The training loss (train mode) and its gradients, keyed like ``params``.

        This is the step the Trainer, the Dask path and compiled steps run: one forward
        in train mode, one backward, no device-to-host read.
        """
        loss = self.loss(x, t, train_flg=True)
        dout = self.last_layer.backward(1)
        if dout is None:
            self._returned_none(self.last_layer)
        *later, first = self._backward_order or (None,)
        for layer in later:
            dout = layer.backward(dout)
            if dout is None:  # else the layer below fails with an AttributeError about None
                self._returned_none(layer)
        if first is not None:
            if self._first_skips_dx:
                first.backward(dout, need_dx=False)  # the input's gradient is never used
            else:
                first.backward(dout)
        decay = self.weight_decay_lambda
        grads = {}
        for key, layer, name in self._slot_items:
            grad = layer.grads[name]
            if decay and name == "W":
                grad = grad + decay * layer.params[name]
            grads[key] = grad
        return loss, grads

    def _returned_none(self, layer: Layer) -> None:
        name = ("loss" if layer is self.last_layer
                else self._backward_names[self._backward_order.index(layer)])
        raise TypeError(
            f"layer {name!r} ({type(layer).__name__}).backward returned None; a backward must "
            "return the gradient of its input (the layer below needs it), and keep the "
            "gradients of its parameters in self.grads")

    def gradient(self, x: Array, t: Array) -> dict[str, Array]:
        """Gradients of the loss by backpropagation, keyed like ``params``."""
        return self.loss_and_gradient(x, t)[1]

    def numerical_gradient(self, x: Array, t: Array, h: float = 1e-4) -> dict[str, Array]:
        """Gradients of the loss by central differences (slow: for checking only).

        Each parameter is perturbed through ``params`` and restored afterwards; the loss
        is taken in train mode, like :meth:`gradient`.
        """
        return {
            key: numerical_gradient(functools.partial(self._loss_at, key, x=x, t=t),
                                    self.params[key], h)
            for key in self.params
        }

    def _loss_at(self, key: str, value: Array, x: Array, t: Array) -> Array:
        old = self.params[key]
        self.params[key] = value
        try:
            return self.loss(x, t, train_flg=True)
        finally:
            self.params[key] = old

    def _check_input(self, x: Array) -> None:
        dtype = getattr(x, "dtype", None)
        if dtype is None:
            raise TypeError(f"{type(self).__name__}: x must be an array of {self.backend}, got "
                            f"{type(x).__name__}")
        if self.params and dtype != self.dtype:
            raise TypeError(
                f"{type(self).__name__}: x has dtype {dtype_name(dtype)} but the network's "
                f"parameters are {dtype_name(self.dtype)}; cast the batch first "
                f"(e.g. xp.astype(x, net.dtype)) or move the network with "
                f"net.to(dtype={dtype_name(dtype)!r})"
            )

    # -- rebuilding: .to(), checkpoints --------------------------------------------------

    def config(self) -> dict[str, Any]:
        """Everything but the arrays that rebuilds this network (plain JSON values)."""
        return {
            "network": self.network_type,
            "layers": [{"name": name, "type": layer.layer_type, "config": layer.config()}
                       for name, layer in self.layers.items()],
            "loss": {"type": self.last_layer.layer_type, "config": self.last_layer.config()},
            "weight_decay_lambda": self.weight_decay_lambda,
            "extra": self._extra_config(),
        }

    def _extra_config(self) -> dict[str, Any]:
        """What a subclass keeps beyond its layers (``TwoLayerNet``'s sizes, for its repr)."""
        return {}

    def _restore_extra(self, extra: dict[str, Any]) -> None:
        if extra:
            raise ValueError(f"{type(self).__name__} takes no extra configuration, got {extra}")

    @classmethod
    def from_layers(cls, config: dict[str, Any], layers: dict[str, Layer],
                    loss: LossLayer, backend: Any = None) -> Sequential:
        """Assemble a network of this class from rebuilt layers and its :meth:`config`."""
        net = object.__new__(cls)
        Sequential.__init__(net, layers, loss,
                            weight_decay_lambda=config.get("weight_decay_lambda", 0.0),
                            backend=backend)
        net._restore_extra(dict(config.get("extra", {})))
        return net

    def to(self, backend: Any = None, device: Any = None, dtype: Any = None) -> Sequential:
        """A copy of this network on another backend, device and/or dtype.

        The original is left untouched. ``net.to("torch:cuda")`` moves to the GPU;
        ``net.to(dtype="float64")`` makes a float64 copy on the same device. Parameters
        and state (running statistics) travel; caches of the last forward do not.

        Examples
        --------
        >>> import bp_xp
        >>> net = bp_xp.TwoLayerNet(4, 5, 3, seed=0)
        >>> net.to("array_api_strict:device1", dtype="float64")
        TwoLayerNet(4-5-3, backend=array_api_strict:device1, dtype=float64)
        >>> net
        TwoLayerNet(4-5-3, backend=numpy, dtype=float32)
        """
        if backend is None and device is None:
            target = self.backend
        else:
            target = resolve_backend(backend if backend is not None else self.backend.name, device)
        new_dtype = target.float_dtype(self.dtype if dtype is None else dtype)

        def move(array: Array) -> Array:
            floating = namespace_of(array).isdtype(array.dtype, "real floating")
            return target.asarray(array, dtype=new_dtype if floating else array.dtype)

        config = self.config()
        layers = {name: _rebuild(layer, move) for name, layer in self.layers.items()}
        return type(self).from_layers(config, layers, _rebuild(self.last_layer, move), target)

    def __repr__(self) -> str:
        stack = " -> ".join([*self.layers, type(self.last_layer).__name__])
        return f"{type(self).__name__}({stack}, backend={self.backend}, dtype={dtype_name(self.dtype)})"

    # -- the book's save_params / load_params (issue 20; bp_xp.checkpoint does the work) --

    def save_params(self, file_name: str | os.PathLike[str] = "params.pkl") -> None:
        """Save this network to ``file_name``, as the book's networks do, but safely.

        The file is a bp_xp checkpoint (a safetensors file, see :mod:`bp_xp.checkpoint`)
        under the name given, even the book's default ``params.pkl``: no pickle is written.
        """
        _params_files()["save"](self, file_name)

    def load_params(self, file_name: str | os.PathLike[str] = "params.pkl") -> None:
        """Replace this network's parameters by those in ``file_name``, as the book does.

        Reads bp_xp checkpoints and the book's own pickled parameter files
        (``deep_convnet_params.pkl``...) without unpickling them; names and shapes must
        fit this network. See :func:`bp_xp.checkpoint.load_params`.
        """
        _params_files()["load"](self, file_name)


#: ``save_params``/``load_params`` live in :mod:`bp_xp.checkpoint`, a level above this
#: module; it installs them here when imported, which ``import bp_xp`` does.
PARAMS_FILES: dict[str, Any] = {}


def _params_files() -> dict[str, Any]:
    if not PARAMS_FILES:  # pragma: no cover - importing bp_xp imports bp_xp.checkpoint
        raise RuntimeError("save_params/load_params need bp_xp.checkpoint: import bp_xp.checkpoint")
    return PARAMS_FILES


def _rebuild(layer: Layer, move: Any) -> Any:
    cls = type(layer)
    return cls.from_config(layer.config(), {k: move(v) for k, v in layer.params.items()},
                           {k: move(v) for k, v in layer.state.items()})


def rebuild_layer(spec: dict[str, Any], params: dict[str, Array], state: dict[str, Array]) -> Layer:
    """A layer from its checkpoint entry ``{"type", "config"}``, parameters and state.

    Only classes already defined in this process are used (see
    :func:`bp_xp.layers.layer_class`).
    """
    return layer_class(spec["type"]).from_config(dict(spec.get("config", {})), params, state)


def network_class(network_type: str) -> type[Sequential]:
    """The network class registered under ``network_type`` (``"module.QualName"``)."""
    if network_type == Sequential.network_type:
        return Sequential
    try:
        return _NETWORKS[network_type]
    except KeyError:
        known = ", ".join(sorted([Sequential.network_type, *_NETWORKS]))
        raise KeyError(f"no network class {network_type!r} is defined in this process "
                       f"(known: {known})") from None


def _named_layers(layers: Mapping[str, Layer] | Iterable[Layer]) -> dict[str, Layer]:
    if isinstance(layers, Mapping):
        items = list(layers.items())
    else:
        counts: dict[str, int] = {}
        items = []
        for layer in layers:
            kind = type(layer).__name__
            counts[kind] = counts.get(kind, 0) + 1
            items.append((f"{kind}{counts[kind]}", layer))
    named: dict[str, Layer] = {}
    seen: set[int] = set()
    for name, layer in items:
        # checked once, here: a name is a non-empty str, so that no two keys become one
        # (``{1: A, "1": B}`` would otherwise lose A) and checkpoints name each layer
        if not isinstance(name, str) or not name:
            raise TypeError(f"layer names must be non-empty strings, got {name!r} "
                            f"({type(name).__name__}) for {type(layer).__name__}; name it "
                            f"{str(name)!r} or pass a list of layers to number them")
        if not isinstance(layer, Layer):
            raise TypeError(f"layer {name!r} is a {type(layer).__name__}, not a bp_xp.Layer; "
                            "subclass bp_xp.Layer (forward, backward, params, grads)")
        if isinstance(layer, LossLayer):
            raise TypeError(f"layer {name!r} is a loss layer; pass it as loss=, it ends the network")
        if id(layer) in seen:
            raise ValueError(f"layer {name!r} appears twice; each position needs its own layer")
        seen.add(id(layer))
        named[name] = layer
    return named


def _param_slots(layers: dict[str, Layer]) -> dict[str, tuple[Layer, str]]:
    slots: dict[str, tuple[Layer, str]] = {}
    index = 0
    for layer_name, layer in layers.items():
        if "W" in layer.params:
            index += 1
        for name in layer.params:
            key = f"{name}{max(index, 1)}"
            if key in slots:
                raise ValueError(
                    f"two layers would both name a parameter {key!r} (the second is "
                    f"{layer_name!r}); give each group of layers one weight layer with W, "
                    "or rename the parameter"
                )
            slots[key] = (layer, name)
    return slots


def _check_targets(rows: Array | None, labels: Array, classes: int) -> None:
    """``accuracy``'s check of one-hot rows (their width) or labels (debug range check)."""
    if rows is None:
        check_labels(labels, classes, "accuracy")
    elif rows.shape[1] != classes:
        raise ValueError(f"accuracy: one-hot rows have {rows.shape[1]} columns but the network "
                         f"predicts {classes} classes")

