"""Networks built from the layers: the book's ``TwoLayerNet`` and a deeper ``MultiLayerNet``.

Both keep the book's API (``params``, ``predict``, ``loss``, ``accuracy``,
``numerical_gradient``, ``gradient``) and add a backend, a device and a dtype. Initial
weights are drawn on the host from a seeded ``numpy.random.Generator`` and then moved,
so every backend starts from the same numbers and the same seed gives the same run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np  # host-side only: the seeded generator for initial weights

from ._backend import Backend, namespace_of, resolve_backend
from .gradient import numerical_gradient
from .layers import Affine, Relu, Sigmoid, SoftmaxWithLoss
from .params import Params

__all__ = ["MultiLayerNet", "TwoLayerNet"]

Array = Any
_ACTIVATIONS = {"relu": Relu, "sigmoid": Sigmoid}


class _Network:
    """What every network shares: an ordered dict of layers ending in SoftmaxWithLoss."""

    backend: Backend
    dtype: Any
    layers: dict[str, Any]
    last_layer: SoftmaxWithLoss
    params: Params
    weight_decay_lambda: float = 0.0

    def _build(self, sizes: Sequence[int], std: Any, activation: str, rng: np.random.Generator,
               backend: Backend, dtype: Any) -> None:
        self.backend = backend
        self.dtype = backend.dtype(dtype)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        self.layers = {}
        slots: dict[str, tuple[Any, str]] = {}
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            scale = _init_scale(std, fan_in, activation)
            W = backend.asarray(scale * rng.standard_normal((fan_in, fan_out)), dtype=self.dtype)
            b = backend.asarray(np.zeros(fan_out), dtype=self.dtype)
            affine = Affine(W, b)
            self.layers[f"Affine{i}"] = affine
            slots[f"W{i}"] = (affine, "W")
            slots[f"b{i}"] = (affine, "b")
            if i < len(sizes) - 1:
                name = "Relu" if activation == "relu" else "Sigmoid"
                self.layers[f"{name}{i}"] = _ACTIVATIONS[activation]()
        self.last_layer = SoftmaxWithLoss()
        self.params = Params(slots)

    # -- the book's API --------------------------------------------------------------

    def predict(self, x: Array) -> Array:
        """Logits (scores before softmax) for a batch ``x`` of shape ``(N, ...)``.

        Examples
        --------
        >>> import numpy as np, bp_xp
        >>> net = bp_xp.TwoLayerNet(4, 5, 3, seed=0)
        >>> net.predict(np.ones((2, 4), dtype=np.float32)).shape
        (2, 3)
        """
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x: Array, t: Array) -> Array:
        """Mean cross-entropy loss (plus weight decay) as a 0-d array on the device.

        Examples
        --------
        >>> import numpy as np, bp_xp
        >>> net = bp_xp.TwoLayerNet(4, 5, 3, weight_init_std=0.0, seed=0)
        >>> loss = net.loss(np.ones((2, 4), dtype=np.float32), np.array([0, 2]))
        >>> loss.shape, round(float(loss), 4)  # all-zero weights: log(3)
        ((), 1.0986)
        """
        loss = self.last_layer.forward(self.predict(x), t)
        if self.weight_decay_lambda:
            xp = self.backend.xp
            decay = sum(xp.sum(self.params[k] ** 2) for k in self.params if k.startswith("W"))
            loss = loss + 0.5 * self.weight_decay_lambda * decay
        return loss

    def accuracy(self, x: Array, t: Array) -> Array:
        """Fraction of correct predictions, as a 0-d array (``float(...)`` for a number).

        ``t`` holds integer labels or one-hot rows.

        Examples
        --------
        >>> import numpy as np, bp_xp
        >>> net = bp_xp.TwoLayerNet(2, 4, 2, weight_init_std=1.0, seed=0)
        >>> x = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
        >>> predicted = np.argmax(net.predict(x), axis=1)
        >>> float(net.accuracy(x, predicted)), float(net.accuracy(x, 1 - predicted))
        (1.0, 0.0)
        """
        y = self.predict(x)
        xp = namespace_of(y, t, names=("predictions", "t"))
        predicted = xp.argmax(y, axis=1)
        if t.ndim != 1:
            t = xp.argmax(t, axis=1)
        return xp.mean(xp.astype(predicted == t, y.dtype))

    def gradient(self, x: Array, t: Array) -> dict[str, Array]:
        """Gradients of :meth:`loss` by backpropagation, keyed like ``params``.

        Examples
        --------
        >>> import numpy as np, bp_xp
        >>> net = bp_xp.TwoLayerNet(4, 5, 3, seed=0)
        >>> grads = net.gradient(np.ones((2, 4), dtype=np.float32), np.array([0, 2]))
        >>> {key: grads[key].shape for key in grads}
        {'W1': (4, 5), 'b1': (5,), 'W2': (5, 3), 'b2': (3,)}
        """
        self.loss(x, t)
        dout = self.last_layer.backward(1)
        first, *rest = self.layers.values()
        for layer in reversed(rest):
            dout = layer.backward(dout)
        first.backward(dout, need_dx=False)  # the input's gradient is never used
        grads = {}
        for key, (layer, attr) in self.params._slots.items():
            grad = getattr(layer, "d" + attr)
            if attr == "W" and self.weight_decay_lambda:
                grad = grad + self.weight_decay_lambda * layer.W
            grads[key] = grad
        return grads

    def numerical_gradient(self, x: Array, t: Array, h: float = 1e-4) -> dict[str, Array]:
        """Gradients of :meth:`loss` by central differences (slow: for checking only).

        Each parameter is perturbed through ``params`` and restored afterwards.

        Examples
        --------
        >>> import numpy as np, bp_xp
        >>> net = bp_xp.TwoLayerNet(4, 5, 3, weight_init_std=1.0, dtype="float64", seed=0)
        >>> x, t = np.linspace(-1, 1, 8).reshape(2, 4), np.array([0, 2])
        >>> numeric, backprop = net.numerical_gradient(x, t), net.gradient(x, t)
        >>> all(np.allclose(numeric[k], backprop[k], atol=1e-7) for k in backprop)
        True
        """
        return {
            key: numerical_gradient(lambda p, key=key: self._loss_at(key, p, x, t), self.params[key], h)
            for key in self.params
        }

    def _loss_at(self, key: str, value: Array, x: Array, t: Array) -> Array:
        old = self.params[key]
        self.params[key] = value
        try:
            return self.loss(x, t)
        finally:
            self.params[key] = old

    # -- moving ------------------------------------------------------------------------

    def to(self, backend: Any = None, device: Any = None, dtype: Any = None) -> "_Network":
        """A copy of this network on another backend, device and/or dtype.

        The original is left untouched. ``net.to("torch:cuda")`` moves to the GPU;
        ``net.to(dtype="float64")`` makes a float64 copy on the same device.

        Examples
        --------
        >>> import bp_xp
        >>> net = bp_xp.TwoLayerNet(4, 5, 3, seed=0)
        >>> net.to("array_api_strict:device1", dtype="float64")
        TwoLayerNet(4-5-3, backend=array_api_strict:device1, dtype=float64)
        >>> net
        TwoLayerNet(4-5-3, backend=numpy, dtype=float32)
        """
        target = self.backend if backend is None and device is None else resolve_backend(
            backend if backend is not None else self.backend.name, device)
        clone = object.__new__(type(self))
        clone.__dict__.update({k: v for k, v in self.__dict__.items()
                               if k not in ("layers", "last_layer", "params", "backend", "dtype")})
        clone._build(self._sizes, 0.0, self._activation, np.random.default_rng(0), target,
                     self.dtype if dtype is None else dtype)
        for key in self.params:
            clone.params[key] = target.asarray(self.params[key], dtype=clone.dtype)
        return clone

    def __repr__(self) -> str:
        sizes = "-".join(str(s) for s in self._sizes)
        return f"{type(self).__name__}({sizes}, backend={self.backend}, dtype={_name(self.dtype)})"


class TwoLayerNet(_Network):
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
        self._activation = "relu"
        _check_sizes(self._sizes)
        self._build(self._sizes, weight_init_std, "relu", np.random.default_rng(seed),
                    resolve_backend(backend, device), dtype)


class MultiLayerNet(_Network):
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
                 weight_decay_lambda: float = 0.0, *, backend: Any = "numpy", device: Any = None,
                 dtype: Any = "float32", seed: int | None = None) -> None:
        self._sizes = (input_size, *hidden_size_list, output_size)
        self._activation = activation
        _check_sizes(self._sizes)
        if weight_decay_lambda < 0:
            raise ValueError(f"weight_decay_lambda must be >= 0, got {weight_decay_lambda}")
        self.weight_decay_lambda = float(weight_decay_lambda)
        self._build(self._sizes, weight_init_std, activation, np.random.default_rng(seed),
                    resolve_backend(backend, device), dtype)


def _init_scale(std: Any, fan_in: int, activation: str) -> float:
    if isinstance(std, str):
        kind = std.lower()
        if kind in ("relu", "he"):
            return math.sqrt(2.0 / fan_in)
        if kind in ("sigmoid", "xavier"):
            return math.sqrt(1.0 / fan_in)
        raise ValueError(f"weight_init_std must be a number or one of relu/he/sigmoid/xavier, got {std!r}")
    return float(std)


def _check_sizes(sizes: Sequence[int]) -> None:
    if any(not isinstance(s, (int, np.integer)) or s < 1 for s in sizes):
        raise ValueError(f"layer sizes must be positive integers, got {tuple(sizes)}")


def _name(dtype: Any) -> str:
    return str(getattr(dtype, "name", dtype)).rsplit(".", 1)[-1]
