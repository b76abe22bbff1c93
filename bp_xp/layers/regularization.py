"""The book's chapter-6 layers against overfitting and badly scaled activations.

``Dropout`` and ``BatchNormalization`` behave differently when training and when
predicting, so both take the book's keyword ``forward(x, train_flg=True)``; networks
pass it to them (see :class:`bp_xp.Sequential`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np  # host-side only: the seeded generator of Dropout's masks
from array_api_compat import device as _device

from ..backends import backend_of, namespace_of
from ._checks import INFERENCE, ShapeError, check_shape, require_forward
from ._contract import Sample, contract, floats
from .base import Layer

__all__ = ["BatchNormalization", "Dropout"]

Array = Any


@contract(reference=lambda np, x: np.where(np.random.default_rng(3).random(np.shape(x)) > 0.5,
                                            x, 0.0),
          init={"dropout_ratio": 0.5, "seed": 3}, train_flg=True,
          samples=[Sample(floats(4, 5)), Sample(floats(2, 3, 2, 2), name="images"),
                   Sample(floats(3, special="inf"), smooth=False, name="inf"),
                   Sample(floats(0, 3), name="empty batch")])
class Dropout(Layer):
    """Drop each unit with probability ``dropout_ratio`` while training (the book's version).

    In training mode a fresh mask ``rand(x.shape) > dropout_ratio`` is drawn per
    ``forward`` and ``backward`` lets the gradient through where the mask is true. At
    test time every unit is kept and scaled by ``1 - dropout_ratio``, as in the book
    (not "inverted" dropout, which scales at training time instead).

    A dropped unit is 0 even where ``x`` is NaN or infinite (``where``, not the book's
    ``x * mask``, which would give NaN there): dropping means contributing nothing.

    Masks come from a seeded host ``numpy.random.Generator`` and are moved to ``x``'s
    device, so one seed gives the same masks, hence the same training run, on every
    backend. Drawing on the host costs a host-to-device copy of one byte per unit per
    step, never a device-to-host read; ``docs/convnet.md`` has the measured cost.

    In a compiled step (:func:`bp_xp.compile_step` on JAX) the mask is drawn on the device
    instead: the step takes one integer seed per call from the same host generator
    (:meth:`next_seed`) and the layer draws ``random_uniform(seed) > dropout_ratio`` with the
    backend's generator (``BackendSpec.random_uniform``). A compiled run is reproducible from
    ``seed`` too, but its masks are not the eager ones: the two draw from different
    generators.

    Parameters
    ----------
    dropout_ratio : float in [0, 1)
    seed : int, optional
        Seed of the mask generator; ``None`` draws fresh entropy.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.layers import Dropout
    >>> drop = Dropout(0.5, seed=0)
    >>> y = drop.forward(np.ones((2, 4)))
    >>> bool(np.all((y == 0) | (y == 1))), bool(np.all(drop.backward(np.ones((2, 4))) == y))
    (True, True)
    >>> drop.forward(np.ones((1, 2)), train_flg=False)
    array([[0.5, 0.5]])
    """

    #: Each training forward draws a new mask: a compiled step hands it a seed per call.
    draws_random = True

    def __init__(self, dropout_ratio: float = 0.5, *, seed: int | None = None) -> None:
        ratio = float(dropout_ratio)
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"Dropout: dropout_ratio must be in [0, 1), got {dropout_ratio!r}")
        self.dropout_ratio = ratio
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self.mask: Array | None = None

    def config(self) -> dict[str, Any]:
        # A rebuilt layer restarts its mask stream from the seed.
        return {"dropout_ratio": self.dropout_ratio, "seed": self.seed}

    def next_seed(self) -> int:
        """The seed of one compiled step's mask, from the layer's generator (see above)."""
        return int(self._rng.integers(0, 2**32))

    def forward(self, x: Array, train_flg: bool = True) -> Array:
        xp = namespace_of(x)
        if not train_flg:
            out = x * (1.0 - self.dropout_ratio)
            self.mask = None  # nothing to differentiate (see require_forward)
            setattr(self, INFERENCE, True)
            return out
        seed = self.step_seed
        if seed is None:  # eager: the host generator's mask, the same on every backend
            keep = self._rng.random(tuple(x.shape)) > self.dropout_ratio
            mask = backend_of(x).asarray(keep, dtype=xp.bool)
        else:  # a compiled step's seed: the mask is drawn on the device, from the seed alone
            draw = backend_of(x).spec.random_uniform
            if draw is None:
                raise TypeError(f"Dropout: {backend_of(x).spec.name} has no device random "
                                "generator (BackendSpec.random_uniform) to draw a mask from "
                                "step_seed; leave step_seed None")
            mask = draw(seed, tuple(x.shape)) > self.dropout_ratio
        out = xp.where(mask, x, xp.zeros((), dtype=x.dtype, device=_device(x)))
        self.mask = mask  # committed once forward has succeeded
        setattr(self, INFERENCE, False)
        return out

    def backward(self, dout: Array) -> Array:
        mask = require_forward(self, self.mask)
        xp = namespace_of(dout, mask, names=("dout", "mask"))
        check_shape("Dropout", "dout", dout, tuple(mask.shape))
        return xp.where(mask, dout, xp.zeros((), dtype=dout.dtype, device=_device(dout)))


def _batchnorm_reference(np: Any, x: Any, gamma: Any, beta: Any) -> Any:
    flat = np.reshape(x, (x.shape[0], gamma.shape[0]))
    centred = flat - flat.mean(axis=0)
    out = gamma * centred / np.sqrt((centred ** 2).mean(axis=0) + 1e-6) + beta
    return np.reshape(out, x.shape)


def _batchnorm_torch(torch: Any, x: Any, gamma: Any, beta: Any) -> Any:
    flat = x.reshape(x.shape[0], gamma.shape[0])
    out = torch.nn.functional.batch_norm(flat, None, None, gamma, beta, training=True, eps=1e-6)
    return out.reshape(x.shape)


@contract(reference=_batchnorm_reference, torch_reference=_batchnorm_torch, train_flg=True,
          params={"gamma": floats(3, low=0.5, high=1.5), "beta": floats(3)},
          samples=[Sample(floats(5, 3)), Sample(floats(4, 3, 1, 1), name="images"),
                   Sample(floats(3, 3, special="inf"), smooth=False, name="inf"),
                   Sample(floats(0, 3), raises=ValueError, name="empty batch"),
                   Sample(floats(5, 4), raises=ShapeError, name="features that do not fit"),
                   Sample(floats(3), raises=ShapeError, name="no batch axis")])
class BatchNormalization(Layer):
    """Normalise each feature over the batch, then scale by ``gamma`` and shift by ``beta``.

    Training mode uses the batch's mean and (biased) variance and updates the running
    statistics ``running = momentum * running + (1 - momentum) * batch``; test mode uses
    the running statistics. As in the book, ``eps = 1e-6`` (written ``10e-7`` there) is
    added to the variance, and an image batch ``(N, C, H, W)`` is normalised per element
    of ``C * H * W`` (``gamma`` then has that many entries).

    The running statistics are ``state``, not ``params``: they are saved in checkpoints
    and moved by ``.to()``, but no optimizer updates them.

    Parameters
    ----------
    gamma, beta : array, shape (D,)
    momentum : float in [0, 1]
    running_mean, running_var : array, shape (D,), optional
        Zeros by default (the book starts from zeros too, on the first forward).

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.layers import BatchNormalization
    >>> bn = BatchNormalization(np.ones(2), np.zeros(2))
    >>> bn.forward(np.array([[1.0, 10.0], [3.0, 30.0]])).round(3)
    array([[-1., -1.],
           [ 1.,  1.]])
    >>> bn.running_mean, bn.state["running_var"].round(3)
    (array([0.2, 2. ]), array([ 0.1, 10. ]))
    """

    eps = 1e-6  # the book's 10e-7

    def __init__(self, gamma: Array, beta: Array, momentum: float = 0.9,
                 running_mean: Array | None = None, running_var: Array | None = None) -> None:
        xp = namespace_of(gamma, beta, names=("gamma", "beta"))
        if gamma.ndim != 1 or beta.shape != gamma.shape:
            raise ValueError(
                f"BatchNormalization needs gamma and beta of one shape (D,), got gamma "
                f"{tuple(gamma.shape)} and beta {tuple(beta.shape)}"
            )
        if gamma.dtype != beta.dtype:
            raise TypeError(f"BatchNormalization needs gamma and beta of one dtype, got "
                            f"{gamma.dtype} and {beta.dtype}")
        momentum = float(momentum)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNormalization: momentum must be in [0, 1], got {momentum!r}")
        self.momentum = momentum
        self.params["gamma"] = gamma
        self.params["beta"] = beta
        for name, value in (("running_mean", running_mean), ("running_var", running_var)):
            if value is None:
                value = xp.zeros(gamma.shape, dtype=gamma.dtype, device=_device(gamma))
            else:
                namespace_of(gamma, value, names=("gamma", name))
                if value.shape != gamma.shape or value.dtype != gamma.dtype:
                    raise ValueError(
                        f"BatchNormalization: {name} must have gamma's shape {tuple(gamma.shape)} "
                        f"and dtype {gamma.dtype}, got {tuple(value.shape)} {value.dtype}"
                    )
            self.state[name] = value
        self.input_shape: tuple[int, ...] | None = None
        self.batch_size: int | None = None
        self.xc: Array | None = None
        self.xn: Array | None = None
        self.std: Array | None = None

    def config(self) -> dict[str, Any]:
        return {"momentum": self.momentum}

    @classmethod
    def from_config(cls, config: dict[str, Any], params: dict[str, Array],
                    state: dict[str, Array]) -> BatchNormalization:
        if sorted(params) != ["beta", "gamma"] or sorted(state) != ["running_mean", "running_var"]:
            raise ValueError(f"BatchNormalization is rebuilt from params gamma, beta and state "
                             f"running_mean, running_var, got params {sorted(params)} and "
                             f"state {sorted(state)}")
        return cls(params["gamma"], params["beta"], running_mean=state["running_mean"],
                   running_var=state["running_var"], **config)

    # The book's attribute names, as views of the one owner of each array.
    @property
    def gamma(self) -> Array:
        return self.params["gamma"]

    @gamma.setter
    def gamma(self, value: Array) -> None:
        self.params["gamma"] = value

    @property
    def beta(self) -> Array:
        return self.params["beta"]

    @beta.setter
    def beta(self, value: Array) -> None:
        self.params["beta"] = value

    @property
    def running_mean(self) -> Array:
        return self.state["running_mean"]

    @property
    def running_var(self) -> Array:
        return self.state["running_var"]

    @property
    def dgamma(self) -> Array | None:
        return self.grads.get("gamma")

    @property
    def dbeta(self) -> Array | None:
        return self.grads.get("beta")

    def forward(self, x: Array, train_flg: bool = True) -> Array:
        gamma, beta = self.params["gamma"], self.params["beta"]
        xp = namespace_of(x, gamma, names=("x", "gamma"))
        if not hasattr(x, "ndim"):
            raise TypeError(f"BatchNormalization.forward: x must be an array of gamma's "
                            f"backend, got {type(x).__name__}")
        features = math.prod(x.shape[1:]) if x.ndim >= 2 else -1
        if features != gamma.shape[0]:
            raise ShapeError(
                f"BatchNormalization: x of shape {tuple(x.shape)} must be a batch (N, ...) with "
                f"{gamma.shape[0]} features per sample, as gamma of shape {tuple(gamma.shape)}"
            )
        if train_flg and x.shape[0] == 0:
            raise ValueError("BatchNormalization: a training forward needs at least one sample "
                             "(the batch statistics of an empty batch are undefined)")
        input_shape = tuple(x.shape)
        if x.ndim != 2:
            x = xp.reshape(x, (x.shape[0], features))
        if train_flg:
            mu = xp.mean(x, axis=0)
            xc = x - mu
            var = xp.mean(xc ** 2, axis=0)
            std = xp.sqrt(var + self.eps)
            xn = xc / std
            m = self.momentum
            running_mean = m * self.state["running_mean"] + (1 - m) * mu
            running_var = m * self.state["running_var"] + (1 - m) * var
            cache = (x.shape[0], xc, xn, std)
        else:
            xn = (x - self.state["running_mean"]) / xp.sqrt(self.state["running_var"] + self.eps)
            cache = (None, None, None, None)  # nothing to differentiate (see require_forward)
        out = gamma * xn + beta
        out = out if out.shape == input_shape else xp.reshape(out, input_shape)
        # committed together, once forward has succeeded
        self.input_shape = input_shape
        self.batch_size, self.xc, self.xn, self.std = cache
        if train_flg:
            self.state["running_mean"], self.state["running_var"] = running_mean, running_var
        setattr(self, INFERENCE, not train_flg)
        return out

    def backward(self, dout: Array) -> Array:
        xn = require_forward(self, self.xn)
        # a training forward sets these together with xn
        input_shape = require_forward(self, self.input_shape)
        xc, std = require_forward(self, self.xc), require_forward(self, self.std)
        n = require_forward(self, self.batch_size)
        gamma = self.params["gamma"]
        xp = namespace_of(dout, gamma, names=("dout", "gamma"))
        check_shape("BatchNormalization", "dout", dout, input_shape)
        if dout.ndim != 2:
            dout = xp.reshape(dout, xn.shape)
        self.grads["beta"] = xp.sum(dout, axis=0)
        self.grads["gamma"] = xp.sum(xn * dout, axis=0)
        dxn = gamma * dout
        dxc = dxn / std
        dstd = -xp.sum((dxn * xc) / (std * std), axis=0)
        dvar = 0.5 * dstd / std
        dxc = dxc + (2.0 / n) * xc * dvar
        dmu = xp.sum(dxc, axis=0)
        dx = dxc - dmu / n
        return dx if dx.shape == input_shape else xp.reshape(dx, input_shape)
