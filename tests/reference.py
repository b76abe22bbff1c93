"""Float64 NumPy references, and the book's chapter-5 network, written the plain way the book writes them.

They are deliberately naive (no namespace logic, no stability tricks beyond the max
shift), so that a bug in bp_xp cannot hide in shared code.

This file is the one copy of the book's network outside bp_xp: the test suite checks bp_xp
against it (:func:`two_layer_forward_backward`), and ``benchmarks/`` times bp_xp against it
(:class:`BookNet` is the baseline every step time there is divided by).
"""

from typing import Any

import numpy as np


def sigmoid(x):
    x = np.asarray(x, dtype=np.float64)
    # math.exp-free formulation would repeat the library; use the textbook formula where it
    # cannot overflow (|x| < 700) and the exact limits beyond.
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def relu(x):
    return np.maximum(np.asarray(x, dtype=np.float64), 0.0)


def softmax(x):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def one_hot(t, c):
    out = np.zeros((len(t), c))
    out[np.arange(len(t)), np.asarray(t, dtype=np.int64)] = 1.0
    return out


def cross_entropy_from_logits(x, t):
    """Mean cross-entropy; t integer labels."""
    logp = log_softmax(x)
    return -logp[np.arange(len(t)), np.asarray(t, dtype=np.int64)].mean()


# --------------------------------------------------------------------------------------
# The book's chapter-5 network, as a reader writes it: np.dot, boolean masks, in-place
# --------------------------------------------------------------------------------------


class BookAffine:
    """The book's ``Affine``: ``np.dot``, caches its input, sets ``dW``/``db`` in ``backward``."""

    def __init__(self, W: np.ndarray, b: np.ndarray) -> None:
        self.W, self.b = W, b
        self.x: np.ndarray | None = None
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return np.dot(x, self.W) + self.b

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dx = np.dot(dout, self.W.T)
        self.dW = np.dot(self.x.T, dout)
        self.db = np.sum(dout, axis=0)
        return dx


class BookRelu:
    """The book's ``Relu``: a boolean mask, ``out[mask] = 0``."""

    def __init__(self) -> None:
        self.mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dout[self.mask] = 0  # the book writes into dout: a fresh array from the layer above
        return dout


class BookSoftmaxWithLoss:
    """The book's ``SoftmaxWithLoss`` for integer labels, with its ``+ 1e-7`` inside the log."""

    def __init__(self) -> None:
        self.y: np.ndarray | None = None
        self.t: np.ndarray | None = None

    def forward(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        self.t = t
        shifted = x - np.max(x, axis=1, keepdims=True)
        self.y = np.exp(shifted) / np.sum(np.exp(shifted), axis=1, keepdims=True)
        n = self.y.shape[0]
        return -np.sum(np.log(self.y[np.arange(n), t] + 1e-7)) / n

    def backward(self, dout: float = 1) -> np.ndarray:
        n = self.t.shape[0]
        dx = self.y.copy()
        dx[np.arange(n), self.t] -= 1
        return dx * dout / n


class BookNet:
    """The book's network as a reader writes it: a dict of layers, ``np.dot``, in-place SGD.

    Any depth: ``Affine1, Relu1, ..., AffineL`` then ``SoftmaxWithLoss``. Labels are
    integers (the book's ``SoftmaxWithLoss`` takes them through its ``t.size != y.size``
    branch). It keeps the dtype of its parameters.

    Parameters
    ----------
    params : dict of str to numpy.ndarray
        ``W1, b1, W2, b2, ...``; used (and updated) in place, as in the book.

    Examples
    --------
    >>> import numpy as np
    >>> net = BookNet({"W1": np.ones((3, 2)), "b1": np.zeros(2)})
    >>> sorted(net.gradient(np.ones((4, 3)), np.array([0, 1, 1, 0])))
    ['W1', 'b1']
    """

    def __init__(self, params: dict[str, np.ndarray]) -> None:
        self.params = params
        count = len(params) // 2
        self.layers: dict[str, Any] = {}
        for i in range(1, count + 1):
            self.layers[f"Affine{i}"] = BookAffine(params[f"W{i}"], params[f"b{i}"])
            if i < count:
                self.layers[f"Relu{i}"] = BookRelu()
        self.last_layer = BookSoftmaxWithLoss()

    def predict(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        return self.last_layer.forward(self.predict(x), t)

    def gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        self.loss(x, t)
        dout = self.last_layer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        grads = {}
        for key in self.params:
            layer = self.layers[f"Affine{key[1:]}"]
            grads[key] = layer.dW if key[0] == "W" else layer.db
        return grads


def two_layer_forward_backward(x, t, W1, b1, W2, b2):
    """Logits, loss and gradients of Affine-ReLU-Affine-SoftmaxWithLoss in float64.

    The gradients come from :class:`BookNet` (the book's layers); the loss is the exact
    mean cross-entropy of the logits (:func:`cross_entropy_from_logits`), not the book's
    ``log(y + 1e-7)``, so that it can be compared at float64 tolerances.
    """
    x, W1, b1, W2, b2 = (np.asarray(a, dtype=np.float64) for a in (x, W1, b1, W2, b2))
    x2 = x.reshape(x.shape[0], -1)
    t = np.asarray(t, dtype=np.int64)
    net = BookNet({"W1": W1, "b1": b1, "W2": W2, "b2": b2})
    logits = net.predict(x2)
    return logits, cross_entropy_from_logits(logits, t), net.gradient(x2, t)
