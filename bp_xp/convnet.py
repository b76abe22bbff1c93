"""The book's convolutional networks as constructors of :class:`bp_xp.Sequential`.

``SimpleConvNet`` (chapter 7): conv - relu - pool - affine - relu - affine - softmax, with
the book's parameter names (``W1``/``b1`` the filters, ``W2``/``b2`` and ``W3``/``b3`` the
two fully connected layers). ``DeepConvNet`` (chapter 8): six 3x3 convolutions in three
pooled pairs, then affine - relu - dropout - affine - dropout (``W1``..``W8``). Both have
the book's API, on any backend, device and dtype.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np  # host-side only: the seeded generator for initial weights

from ._checks import check_integer, is_integer
from ._im2col import conv_output_size
from .backends import dtype_name, matmul_layout, resolve_backend
from .layers import Affine, Convolution, Dropout, Layer, Pooling, Relu, SoftmaxWithLoss
from .sequential import Sequential

__all__ = ["DeepConvNet", "SimpleConvNet", "deep_convnet_parameter_shapes"]

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
            # 2-D (Affine) weights in the backend's matmul layout; filters as drawn
            return matmul_layout(target.asarray(std * rng.standard_normal(dims), dtype=dt))

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
        _check_param_shapes(self.params, _param_shapes(self._shape), f"SimpleConvNet{self._shape}")

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


def _check_param_shapes(params: Any, expected: dict[str, tuple[int, ...]], who: str) -> None:
    """A checkpoint's arrays must fit the configuration it states (issue 19)."""
    shapes = {key: tuple(array.shape) for key, array in params.items()}
    if shapes != expected:
        raise ValueError(f"{who} has parameters of shapes {expected}, got {shapes}")


def _param_shapes(shape: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The shape of each parameter of a SimpleConvNet of these sizes."""
    fn, fs = shape["conv_param"]["filter_num"], shape["conv_param"]["filter_size"]
    hidden, out = shape["hidden_size"], shape["output_size"]
    return {"W1": (fn, shape["input_dim"][0], fs, fs), "b1": (fn,),
            "W2": (_pool_output_size(shape), hidden), "b2": (hidden,),
            "W3": (hidden, out), "b3": (out,)}


# --------------------------------------------------------------------------------------
# DeepConvNet (chapter 8)
# --------------------------------------------------------------------------------------

#: The book's six ``conv_param_k`` defaults (``conv_param_4`` pads by 2: 14 -> 16 -> 8).
DEEP_CONV_PARAMS: tuple[dict[str, int], ...] = (
    {"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 32, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 32, "filter_size": 3, "pad": 2, "stride": 1},
    {"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
)


class DeepConvNet(Sequential):
    """The book's chapter-8 network (0.9797 on the MNIST test set with the book's trained
    parameter file, measured; see ``docs/convnet.md``).

    ``conv - relu - conv - relu - pool`` three times (16, 16, 32, 32, 64, 64 filters of
    3x3; 2x2 max pooling with stride 2), then ``affine - relu - dropout - affine -
    dropout - softmax``. Parameters are the book's ``W1``..``W6``/``b1``..``b6`` (the
    filters), ``W7``/``b7`` (``64*4*4 -> hidden_size``) and ``W8``/``b8``, so the book's
    ``deep_convnet_params.pkl`` maps onto ``params`` key for key.

    Parameters
    ----------
    input_dim : (C, H, W)
        Shape of one image (the book's ``(1, 28, 28)``).
    conv_param_1, ..., conv_param_6 : dict, optional
        ``filter_num``, ``filter_size``, ``pad``, ``stride`` of each convolution; missing
        keys take the book's values (:data:`DEEP_CONV_PARAMS`).
    hidden_size, output_size : int
        50 and 10, as in the book.
    dropout_ratio : float, keyword-only
        Both dropout layers' ratio (the book's 0.5). ``0.0`` keeps every unit, which
        makes the loss deterministic (for a gradient check).
    backend, device, dtype, seed
        As in :class:`bp_xp.TwoLayerNet`. The weights are He-initialised (standard
        deviation ``sqrt(2 / fan_in)``, the book's ``weight_init_scales``) from a host
        generator seeded by ``seed``; the dropout masks are seeded from it too.

    Notes
    -----
    As in the book, :meth:`loss` runs in training mode by default (dropout active), and
    :meth:`accuracy` predicts 100 images at a time in inference mode. Unlike the book's
    ``accuracy``, the last partial batch is counted too.

    Examples
    --------
    >>> import numpy as np, bp_xp
    >>> net = bp_xp.DeepConvNet(input_dim=(1, 8, 8), hidden_size=6, output_size=3, seed=0)
    >>> list(net.params)[::2]
    ['W1', 'W2', 'W3', 'W4', 'W5', 'W6', 'W7', 'W8']
    >>> tuple(net.params["W7"].shape)  # 8 -> pool 4 -> pad 2: 6 -> pool 3 -> pool 1 (floored)
    (64, 6)
    >>> net.predict(np.zeros((2, 1, 8, 8), dtype=np.float32)).shape
    (2, 3)
    """

    _deep_shape: dict[str, Any]

    def __init__(self, input_dim: Sequence[int] = (1, 28, 28),
                 conv_param_1: Mapping[str, int] | None = None,
                 conv_param_2: Mapping[str, int] | None = None,
                 conv_param_3: Mapping[str, int] | None = None,
                 conv_param_4: Mapping[str, int] | None = None,
                 conv_param_5: Mapping[str, int] | None = None,
                 conv_param_6: Mapping[str, int] | None = None,
                 hidden_size: int = 50, output_size: int = 10, *, dropout_ratio: float = 0.5,
                 backend: Any = "numpy", device: Any = None, dtype: Any = "float32",
                 seed: int | None = None) -> None:
        shape = _checked_deep_shape(input_dim, (conv_param_1, conv_param_2, conv_param_3,
                                                conv_param_4, conv_param_5, conv_param_6),
                                    hidden_size, output_size)
        target = resolve_backend(backend, device)
        dt = target.float_dtype(dtype)
        rng = np.random.default_rng(seed)

        def weight(fan_in: int, *dims: int) -> Array:
            return matmul_layout(target.asarray(np.sqrt(2.0 / fan_in) * rng.standard_normal(dims),
                                                dtype=dt))

        def zeros(n: int) -> Array:
            return target.asarray(np.zeros(n), dtype=dt)

        layers: dict[str, Layer] = {}
        channels = shape["input_dim"][0]
        for k, cp in enumerate(shape["conv_params"], start=1):
            fn, fs = cp["filter_num"], cp["filter_size"]
            layers[f"Conv{k}"] = Convolution(weight(channels * fs * fs, fn, channels, fs, fs),
                                             zeros(fn), cp["stride"], cp["pad"])
            layers[f"Relu{k}"] = Relu()
            if k % 2 == 0:
                layers[f"Pool{k // 2}"] = Pooling(pool_h=2, pool_w=2, stride=2)
            channels = fn
        hidden, features = shape["hidden_size"], shape["features"]
        ratio = float(dropout_ratio)
        layers["Affine1"] = Affine(weight(features, features, hidden), zeros(hidden))
        layers["Relu7"] = Relu()
        layers["Dropout1"] = Dropout(ratio, seed=int(rng.integers(2**63)))
        layers["Affine2"] = Affine(weight(hidden, hidden, shape["output_size"]),
                                   zeros(shape["output_size"]))
        layers["Dropout2"] = Dropout(ratio, seed=int(rng.integers(2**63)))
        self._deep_shape = shape
        super().__init__(layers, SoftmaxWithLoss(), backend=target)

    def loss(self, x: Array, t: Array, train_flg: bool = True) -> Array:
        """The loss, in training mode (dropout active) by default, as the book's."""
        return super().loss(x, t, train_flg)

    def accuracy(self, x: Array, t: Array, batch_size: int | None = 100) -> Array:
        """Fraction of correct predictions, predicted 100 images at a time as in the book."""
        return super().accuracy(x, t, batch_size=batch_size)

    def _extra_config(self) -> dict[str, Any]:
        s = self._deep_shape
        return {"deep_shape": {"input_dim": list(s["input_dim"]),
                               "conv_params": [dict(cp) for cp in s["conv_params"]],
                               "hidden_size": s["hidden_size"], "output_size": s["output_size"]}}

    def _restore_extra(self, extra: dict[str, Any]) -> None:
        saved = extra.pop("deep_shape", None)
        super()._restore_extra(extra)
        if not isinstance(saved, dict) or not isinstance(saved.get("conv_params"), list):
            raise ValueError(f"DeepConvNet needs its shape configuration, got {saved!r}")
        self._deep_shape = _checked_deep_shape(saved.get("input_dim"), saved["conv_params"],
                                               saved.get("hidden_size"), saved.get("output_size"))
        _check_param_shapes(self.params, _deep_param_shapes(self._deep_shape),
                            "DeepConvNet of this configuration")

    def __repr__(self) -> str:
        s = self._deep_shape
        c, h, w = s["input_dim"]
        filters = ", ".join(str(cp["filter_num"]) for cp in s["conv_params"])
        return (f"DeepConvNet({c}x{h}x{w} -> conv ({filters}) -> {s['hidden_size']} -> "
                f"{s['output_size']}, backend={self.backend}, dtype={dtype_name(self.dtype)})")


def deep_convnet_parameter_shapes(input_dim: Sequence[int] = (1, 28, 28), hidden_size: int = 50,
                                  output_size: int = 10) -> dict[str, tuple[int, ...]]:
    """The shape of each parameter of a DeepConvNet with the book's convolutions, checked,
    without building it (``bp-xp train`` sizes a network before allocating it).

    Examples
    --------
    >>> from bp_xp.convnet import deep_convnet_parameter_shapes
    >>> deep_convnet_parameter_shapes()["W7"]
    (1024, 50)
    """
    return _deep_param_shapes(_checked_deep_shape(input_dim, [{}] * len(DEEP_CONV_PARAMS),
                                                  hidden_size, output_size))


def _deep_param_shapes(shape: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The shape of each parameter of a DeepConvNet of these sizes."""
    shapes: dict[str, tuple[int, ...]] = {}
    channels = shape["input_dim"][0]
    for k, cp in enumerate(shape["conv_params"], start=1):
        fn, fs = cp["filter_num"], cp["filter_size"]
        shapes[f"W{k}"], shapes[f"b{k}"] = (fn, channels, fs, fs), (fn,)
        channels = fn
    hidden, out = shape["hidden_size"], shape["output_size"]
    shapes.update({"W7": (shape["features"], hidden), "b7": (hidden,), "W8": (hidden, out),
                   "b8": (out,)})
    return shapes


def _checked_deep_shape(input_dim: Any, conv_params: Sequence[Any], hidden_size: Any,
                        output_size: Any) -> dict[str, Any]:
    """DeepConvNet's sizes, checked, with the book's defaults filled in, and the number of
    features that reach the first affine layer."""
    dims = tuple(input_dim) if isinstance(input_dim, (list, tuple)) else ()
    if len(dims) != 3 or not all(is_integer(d) and d >= 1 for d in dims):
        raise ValueError(f"DeepConvNet: input_dim must be (channels, height, width) of "
                         f"positive integers, got {input_dim!r}")
    if len(conv_params) != 6:
        raise ValueError(f"DeepConvNet has six convolutions, got {len(conv_params)} conv_params")
    checked = []
    _, h, w = (int(d) for d in dims)
    for k, (given, default) in enumerate(zip(conv_params, DEEP_CONV_PARAMS), start=1):
        given = dict(given or {})
        unknown = sorted(set(given) - set(default))
        if unknown:
            raise ValueError(f"DeepConvNet: unknown conv_param_{k} keys {unknown}; expected "
                             f"{sorted(default)}")
        cp = {**default, **given}
        for key, low in (("filter_num", 1), ("filter_size", 1), ("stride", 1), ("pad", 0)):
            if not is_integer(cp[key]) or cp[key] < low:
                raise ValueError(f"DeepConvNet: conv_param_{k}[{key!r}] must be an integer >= "
                                 f"{low}, got {cp[key]!r}")
        cp = {key: int(value) for key, value in cp.items()}
        h, w = (conv_output_size(size, cp["filter_size"], cp["stride"], cp["pad"],
                                 what=f"DeepConvNet's convolution {k}", axis=axis)
                for size, axis in ((h, "height"), (w, "width")))
        if k % 2 == 0:
            h, w = (conv_output_size(size, 2, 2, 0, what=f"DeepConvNet's pooling {k // 2}",
                                     axis=axis)
                    for size, axis in ((h, "height"), (w, "width")))
        checked.append(cp)
    for name, value in (("hidden_size", hidden_size), ("output_size", output_size)):
        if not is_integer(value) or value < 1:
            raise ValueError(f"DeepConvNet: {name} must be a positive integer, got {value!r}")
    return {"input_dim": tuple(int(d) for d in dims), "conv_params": checked,
            "hidden_size": int(hidden_size), "output_size": int(output_size),
            "features": checked[-1]["filter_num"] * h * w}
