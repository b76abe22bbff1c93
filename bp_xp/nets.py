"""The book's networks as constructors of :class:`bp_xp.Sequential`.

``TwoLayerNet`` and the deeper ``MultiLayerNet`` build the book's stack of layers and
hand it to ``Sequential``, which gives them the book's API (``params``, ``predict``,
``loss``, ``accuracy``, ``numerical_gradient``, ``gradient``) plus a backend, a device
and a dtype. Initial
weights are drawn on the host from a seeded ``numpy.random.Generator`` and then moved,
so every backend starts from the same numbers and the same seed gives the same run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np  # host-side only: the seeded generator for initial weights
from array_api_compat import device as _device

from .backends import Backend, dtype_name, matmul_layout, namespace_of, resolve_backend
from .layers import Affine, BatchNormalization, Dropout, Layer, Relu, Sigmoid, SoftmaxWithLoss
from .sequential import Sequential

__all__ = ["ACTIVATIONS", "MultiLayerNet", "TwoLayerNet", "activation_class"]

Array = Any
#: The activations of the fully connected networks, by class. Each names itself:
#: ``activation="relu"`` is :class:`~bp_xp.layers.Relu` (its class name, lowercased) and its
#: layers are ``Relu1``, ``Relu2``...; checkpoints rebuild from the same table. A new
#: activation is one more class here.
ACTIVATIONS: tuple[type[Layer], ...] = (Relu, Sigmoid)


def activation_class(name: str) -> type[Layer]:
    """The class of ``MultiLayerNet(activation=name)``: the one whose lowercased name is ``name``.

    Examples
    --------
    >>> activation_class("sigmoid").__name__
    'Sigmoid'
    """
    for cls in ACTIVATIONS:
        if cls.__name__.lower() == name:
            return cls
    raise ValueError(f"activation must be one of {sorted(c.__name__.lower() for c in ACTIVATIONS)}, "
                     f"got {name!r}")


def _fully_connected(sizes: Sequence[int], std: Any, activation: str, rng: np.random.Generator,
                     backend: Backend, dtype: Any) -> dict[str, Layer]:
    """The book's stack: Affine, activation, ..., Affine, with weights from ``rng``."""
    kind = activation_class(activation)
    layers: dict[str, Layer] = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        scale = _init_scale(std, fan_in, activation)
        W = matmul_layout(backend.asarray(scale * rng.standard_normal((fan_in, fan_out)),
                                          dtype=dtype))
        b = backend.asarray(np.zeros(fan_out), dtype=dtype)
        layers[f"Affine{i}"] = Affine(W, b)
        if i < len(sizes) - 1:
            layers[f"{kind.__name__}{i}"] = kind()
    return layers


class _FullyConnected(Sequential):
    """What the book's fully connected networks add to Sequential: their sizes, in the repr."""

    _sizes: tuple[int, ...]

    def _extra_config(self) -> dict[str, Any]:
        return {"sizes": [int(s) for s in self._sizes]}

    def _restore_extra(self, extra: dict[str, Any]) -> None:
        sizes = extra.pop("sizes", None)
        super()._restore_extra(extra)
        if not isinstance(sizes, list) or not all(isinstance(s, int) for s in sizes):
            raise ValueError(f"{type(self).__name__} needs its layer sizes, got {sizes!r}")
        weights = [layer.params["W"] for layer in self.layers.values() if "W" in layer.params]
        expected = list(zip(sizes[:-1], sizes[1:]))
        shapes = [tuple(W.shape) for W in weights]
        if shapes != expected:
            raise ValueError(f"{type(self).__name__}{tuple(sizes)} has weights of shapes "
                             f"{expected}, got {shapes}")
        self._sizes = tuple(sizes)

    def __repr__(self) -> str:
        sizes = "-".join(str(s) for s in self._sizes)
        return f"{type(self).__name__}({sizes}, backend={self.backend}, dtype={dtype_name(self.dtype)})"


class TwoLayerNet(_FullyConnected):
    """The book's two-layer network: Affine - ReLU - Affine - SoftmaxWithLoss.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
    weight_init_std : float
        Standard deviation of the initial weights (biases start at zero).
    backend : str, module or Backend
        Where the parameters live: ``"numpy"``, ``"torch:cuda"``, ``"cupy"``, ``"jax"``...
    device : optional
        Overrides the backend's device.
    dtype : str
        ``"float32"`` (default, the GPU's fast path) or ``"float64"``.
    seed : int, optional
        Seed of the host generator the initial weights are drawn from.

    Examples
    --------
    >>> import numpy as np, bp_xp
    >>> net = bp_xp.TwoLayerNet(784, 50, 10, seed=0)
    >>> x = np.zeros((2, 784), dtype=np.float32)
    >>> net.predict(x).shape, sorted(net.gradient(x, np.array([3, 7])))
    ((2, 10), ['W1', 'W2', 'b1', 'b2'])
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 weight_init_std: float = 0.01, *, backend: Any = "numpy", device: Any = None,
                 dtype: Any = "float32", seed: int | None = None) -> None:
        self._sizes = (input_size, hidden_size, output_size)
        _check_sizes(self._sizes)
        target = resolve_backend(backend, device)
        layers = _fully_connected(self._sizes, weight_init_std, "relu",
                                  np.random.default_rng(seed), target, target.float_dtype(dtype))
        super().__init__(layers, SoftmaxWithLoss(), backend=target)


class MultiLayerNet(_FullyConnected):
    """A fully connected network of any depth (the book's chapter-6 ``MultiLayerNet``).

    Parameters
    ----------
    input_size : int
    hidden_size_list : sequence of int
        One entry per hidden layer, e.g. ``[100, 100, 100]``.
    output_size : int
    activation : {"relu", "sigmoid"}
    weight_init_std : float or {"relu", "he", "sigmoid", "xavier"}
        A fixed standard deviation, He initialisation (``sqrt(2 / fan_in)``) for ReLU, or
        Xavier (``sqrt(1 / fan_in)``) for sigmoid.
    weight_decay_lambda : float
        L2 penalty ``0.5 * lambda * sum(W ** 2)`` added to the loss (and its gradient).
    use_dropout : bool
        A :class:`~bp_xp.layers.Dropout` after every hidden activation (the book's
        ``MultiLayerNetExtend``); its masks are seeded from ``seed``.
    dropout_ration : float
        The book's spelling of the dropout ratio (0.5); ``dropout_ratio=`` (keyword)
        is accepted too, not both.
    use_batchnorm : bool
        A :class:`~bp_xp.layers.BatchNormalization` between every hidden Affine and its
        activation, with ``gamma{k}`` (ones) and ``beta{k}`` (zeros) in ``params``.
    dropout_ratio : float, keyword-only
    backend : str, module or Backend
        Where the parameters live, as in :class:`TwoLayerNet`.
    device : optional
        Overrides the backend's device.
    dtype : str
        ``"float32"`` (default) or ``"float64"``.
    seed : int, optional
        Seed of the host generator the initial weights are drawn from.

    Examples
    --------
    >>> import bp_xp
    >>> net = bp_xp.MultiLayerNet(784, [100, 100], 10, seed=0)
    >>> list(net.params)
    ['W1', 'b1', 'W2', 'b2', 'W3', 'b3']
    """

    def __init__(self, input_size: int, hidden_size_list: Sequence[int], output_size: int,
                 activation: str = "relu", weight_init_std: Any = "relu",
                 weight_decay_lambda: float = 0.0, use_dropout: bool = False,
                 dropout_ration: float = 0.5, use_batchnorm: bool = False, *,
                 dropout_ratio: float | None = None, backend: Any = "numpy", device: Any = None,
                 dtype: Any = "float32", seed: int | None = None) -> None:
        self._sizes = (input_size, *hidden_size_list, output_size)
        _check_sizes(self._sizes)
        target = resolve_backend(backend, device)
        rng = np.random.default_rng(seed)
        layers = _fully_connected(self._sizes, weight_init_std, activation, rng, target,
                                  target.float_dtype(dtype))
        if use_dropout or use_batchnorm:
            layers = _with_chapter6_layers(layers, use_dropout,
                                           _dropout_ratio(dropout_ration, dropout_ratio),
                                           use_batchnorm, rng)
        super().__init__(layers, SoftmaxWithLoss(), weight_decay_lambda=weight_decay_lambda,
                         backend=target)


def _dropout_ratio(ration: float, ratio: float | None) -> float:
    if ratio is not None and ration != 0.5 and ratio != ration:
        raise ValueError(f"give dropout_ration (the book's spelling) or dropout_ratio, not both "
                         f"(got {ration!r} and {ratio!r})")
    return ration if ratio is None else ratio


def _with_chapter6_layers(layers: dict[str, Layer], use_dropout: bool, ratio: float,
                          use_batchnorm: bool, rng: np.random.Generator) -> dict[str, Layer]:
    """The book's ``MultiLayerNetExtend`` order: Affine, BatchNorm, activation, Dropout."""
    out: dict[str, Layer] = {}
    names = list(layers)
    for name in names:
        layer = layers[name]
        out[name] = layer
        index = name.rstrip("0123456789")
        index = name[len(index):]  # "Relu2" -> "2": the new layers share their neighbour's number
        hidden = isinstance(layer, Affine) and name != names[-1]
        if hidden and use_batchnorm:
            W = layer.params["W"]
            xp = namespace_of(W)
            width = (W.shape[1],)
            out[f"BatchNorm{index}"] = BatchNormalization(
                xp.ones(width, dtype=W.dtype, device=_device(W)),
                xp.zeros(width, dtype=W.dtype, device=_device(W)))
        if not isinstance(layer, Affine) and use_dropout:
            out[f"Dropout{index}"] = Dropout(ratio, seed=int(rng.integers(2**63)))
    return out


def _init_scale(std: Any, fan_in: int, activation: str) -> float:
    if isinstance(std, str):
        kind = std.lower()
        if kind in ("relu", "he"):
            return math.sqrt(2.0 / fan_in)
        if kind in ("sigmoid", "xavier"):
            return math.sqrt(1.0 / fan_in)
        raise ValueError(f"weight_init_std must be a number or one of relu/he/sigmoid/xavier, got {std!r}")
    scale = float(std)
    if not (math.isfinite(scale) and scale >= 0):  # NaN or inf would fill the weights with it
        raise ValueError(f"weight_init_std must be a finite number >= 0, got {std!r}")
    return scale


def _check_sizes(sizes: Sequence[int]) -> None:
    if any(not isinstance(s, (int, np.integer)) or s < 1 for s in sizes):
        raise ValueError(f"layer sizes must be positive integers, got {tuple(sizes)}")

