"""Float64 NumPy references, written the plain way the book writes them.

They are deliberately naive (no namespace logic, no stability tricks beyond the max
shift), so that a bug in bp_xp cannot hide in shared code.
"""

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


def two_layer_forward_backward(x, t, W1, b1, W2, b2):
    """Loss and gradients of Affine-ReLU-Affine-SoftmaxWithLoss, straight from the book."""
    x, W1, b1, W2, b2 = (np.asarray(a, dtype=np.float64) for a in (x, W1, b1, W2, b2))
    n = x.shape[0]
    x2 = x.reshape(n, -1)
    a1 = x2 @ W1 + b1
    z1 = np.maximum(a1, 0)
    a2 = z1 @ W2 + b2
    loss = cross_entropy_from_logits(a2, t)
    dy = (softmax(a2) - one_hot(t, a2.shape[1])) / n
    grads = {"W2": z1.T @ dy, "b2": dy.sum(axis=0)}
    dz1 = dy @ W2.T
    da1 = dz1 * (a1 > 0)
    grads["W1"] = x2.T @ da1
    grads["b1"] = da1.sum(axis=0)
    return a2, loss, grads
