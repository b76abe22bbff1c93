"""The book's ``SimpleConvNet`` (chapter 7) as a constructor of :class:`bp_xp.Sequential`.

conv - relu - pool - affine - relu - affine - softmax, with the book's parameter names
(``W1``/``b1`` the filters, ``W2``/``b2`` and ``W3``/``b3`` the two fully connected
layers) and the book's API, on any backend, device and dtype.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np  # host-side only: the seeded generator for initial weights

from ._checks import check_integer, is_integer
from ._im2col import conv_output_size
from .backends import dtype_name, resolve_backend
from .layers import Affine, Convolution, Pooling, Relu, SoftmaxWithLoss
from .sequential import Sequential

__all__ = ["SimpleConvNet"]

Array = Any

#: The book's ``conv_param`` default.
CONV_PARAM: dict[str, int] = {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1}


class SimpleConvNet(Sequential):
    """The book's convolutional network: conv - relu - pool - affine - relu - affine.

    Parameters
    ----------
    input_dim : (C, H, W)
        Shape of one input image; batches are ``(N, C, H, W)``.
    conv_param : dict, optional
        ``filter_num``, ``filter_size``, ``pad``, ``stride`` of the convolution; missing
        keys take the book's values ``{'filter_num': 30, 'filter_size': 5, 'pad': 0,
        'stride': 1}``.
    hidden_size, output_size : int
    weight_init_std : float
        Standard deviation of the initial weights (biases start at zero).
    backend, device, dtype, seed
        As in :class:`bp_xp.TwoLayerNet`: where the parameters live, their dtype
        (``"float32"`` by default), and the seed of the host generator the initial
        weights are drawn from (so every backend starts from the same numbers).

    Notes
    -----
    The pooling layer is the book's 2x2 max pooling with stride 2, so the
    convolution's output height and width must be even.

    Examples
    --------
    >>> import numpy as np, bp_xp
    >>> net = bp_xp.SimpleConvNet(input_dim=(1, 6, 6), hidden_size=4, output_size=3,
    ...                           conv_param={"filter_num": 2, "filter_size": 3}, seed=0)
    >>> net
    SimpleConvNet(1x6x6 -> conv 2x3x3 -> 4 -> 3, backend=numpy, dtype=float32)
    >>> list(net.layers), list(net.params)
    (['Conv1', 'Relu1', 'Pool1', 'Affine1', 'Relu2', 'Affine2'], ['W1', 'b1', 'W2', 'b2', 'W3', 'b3'])
    >>> x = np.zeros((5, 1, 6, 6), dtype=np.float32)
    >>> net.predict(x).shape, net.gradient(x, np.zeros(5, dtype=np.int64))["W1"].shape
    ((5, 3), (2, 1, 3, 3))
    """

    _shape: dict[str, Any]

    def __init__(self, input_dim: Sequence[int] = (1, 28, 28),
                 conv_param: Mapping[str, int] | None = None, hidden_size: int = 100,
                 output_size: int = 10, weight_init_std: float = 0.01, *,
                 backend: Any = "numpy", device: Any = None, dtype: Any = "float32",
                 seed: int | None = None) -> None:
        shape = _checked_shape(input_dim, conv_param, hidden_size, output_size)
        target = resolve_backend(backend, device)
        dt = target.float_dtype(dtype)
        rng = np.random.default_rng(seed)
        std = float(weight_init_std)
        channels = shape["input_dim"][0]
        cp = shape["conv_param"]
        fn, fs = cp["filter_num"], cp["filter_size"]

        def weight(*dims: int) -> Array:
            return target.asarray(std * rng.standard_normal(dims), dtype=dt)

        def zeros(n: int) -> Array:
            return target.asarray(np.zeros(n), dtype=dt)

        layers = {
            "Conv1": Convolution(weight(fn, channels, fs, fs), zeros(fn), cp["stride"], cp["pad"]),
            "Relu1": Relu(),
            "Pool1": Pooling(pool_h=2, pool_w=2, stride=2),
            "Affine1": Affine(weight(_pool_output_size(shape), hidden_size), zeros(hidden_size)),
            "Relu2": Relu(),
            "Affine2": Affine(weight(hidden_size, output_size), zeros(output_size)),
        }
        self._shape = shape
        super().__init__(layers, SoftmaxWithLoss(), backend=target)

    def accuracy(self, x: Array, t: Array, batch_size: int | None = 100) -> Array:
        """Fraction of correct predictions, predicted 100 images at a time as in the book."""
        return super().accuracy(x, t, batch_size=batch_size)

    def _extra_config(self) -> dict[str, Any]:
        return {"shape": {"input_dim": list(self._shape["input_dim"]),
                          "conv_param": dict(self._shape["conv_param"]),
                          "hidden_size": self._shape["hidden_size"],
                          "output_size": self._shape["output_size"]}}

    def _restore_extra(self, extra: dict[str, Any]) -> None:
        saved = extra.pop("shape", None)
        super()._restore_extra(extra)
        if not isinstance(saved, dict):
            raise ValueError(f"SimpleConvNet needs its shape configuration, got {saved!r}")
        self._shape = _checked_shape(saved.get("input_dim"), saved.get("conv_param"),
                                     saved.get("hidden_size"), saved.get("output_size"))
        # A checkpoint's arrays must fit the configuration it states (issue 19).
        expected = _param_shapes(self._shape)
        shapes = {key: tuple(array.shape) for key, array in self.params.items()}
        if shapes != expected:
            raise ValueError(f"SimpleConvNet{self._shape} has parameters of shapes {expected}, "
                             f"got {shapes}")

    def __repr__(self) -> str:
        s = self._shape
        c, h, w = s["input_dim"]
        cp = s["conv_param"]
        fs = cp["filter_size"]
        return (f"SimpleConvNet({c}x{h}x{w} -> conv {cp['filter_num']}x{fs}x{fs} -> "
                f"{s['hidden_size']} -> {s['output_size']}, backend={self.backend}, "
                f"dtype={dtype_name(self.dtype)})")


def _checked_shape(input_dim: Any, conv_param: Any, hidden_size: Any,
                   output_size: Any) -> dict[str, Any]:
    """The network's sizes, checked, with the book's defaults filled into ``conv_param``."""
    dims = tuple(input_dim) if isinstance(input_dim, (list, tuple)) else ()
    if len(dims) != 3 or not all(is_integer(d) and d >= 1 for d in dims):
        raise ValueError(f"SimpleConvNet: input_dim must be (channels, height, width) of "
                         f"positive integers, got {input_dim!r}")
    given = dict(conv_param or {})
    unknown = sorted(set(given) - set(CONV_PARAM))
    if unknown:
        raise ValueError(f"SimpleConvNet: unknown conv_param keys {unknown}; expected "
                         f"{sorted(CONV_PARAM)}")
    cp = {**CONV_PARAM, **given}
    for key, low in (("filter_num", 1), ("filter_size", 1), ("stride", 1), ("pad", 0)):
        check_integer(cp[key], f"conv_param[{key!r}]", low=low, where="SimpleConvNet")
    for name, value in (("hidden_size", hidden_size), ("output_size", output_size)):
        check_integer(value, name, where="SimpleConvNet")
    shape = {"input_dim": tuple(int(d) for d in dims), "conv_param": {k: int(v) for k, v in cp.items()},
             "hidden_size": int(hidden_size), "output_size": int(output_size)}
    _pool_output_size(shape)  # refuse sizes the convolution or the pooling cannot take
    return shape


def _pool_output_size(shape: dict[str, Any]) -> int:
    """Features after conv and 2x2 pooling: ``filter_num * (conv_out / 2) ** 2``."""
    _, h, w = shape["input_dim"]
    cp = shape["conv_param"]
    sizes = []
    for axis, size in (("height", h), ("width", w)):
        conv = conv_output_size(size, cp["filter_size"], cp["stride"], cp["pad"],
                                what="SimpleConvNet's convolution", axis=axis)
        sizes.append(conv_output_size(conv, 2, 2, 0, what="SimpleConvNet's 2x2 pooling",
                                      axis=axis))
    return cp["filter_num"] * sizes[0] * sizes[1]


def _param_shapes(shape: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The shape of each parameter of a SimpleConvNet of these sizes."""
    fn, fs = shape["conv_param"]["filter_num"], shape["conv_param"]["filter_size"]
    hidden, out = shape["hidden_size"], shape["output_size"]
    return {"W1": (fn, shape["input_dim"][0], fs, fs), "b1": (fn,),
            "W2": (_pool_output_size(shape), hidden), "b2": (hidden,),
            "W3": (hidden, out), "b3": (out,)}
