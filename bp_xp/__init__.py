"""bp_xp: the backpropagation layers of "Deep Learning from Scratch", on any array backend.

The layers take their Array API namespace from their inputs, so the same code runs on
NumPy, CuPy, PyTorch, JAX, Dask and array-api-strict. Choose where arrays live with a
string (``"torch:cuda:0"``), train with the book's API.

>>> import bp_xp
>>> net = bp_xp.TwoLayerNet(784, 50, 10, backend="numpy", seed=0)
>>> net
TwoLayerNet(784-50-10, backend=numpy, dtype=float32)
"""

from importlib.metadata import PackageNotFoundError, version

from . import checkpoint, functions, layers  # noqa: F401 - checkpoint installs net.save_params/load_params
from .backends import (
    BACKEND_NAMES,
    Backend,
    BackendError,
    BackendMismatchError,
    BackendUnavailableError,
    DTypeError,
    available_backends,
    backend_info,
    backend_of,
    namespace_of,
    resolve_backend,
    to_device,
    to_numpy,
)
from .compile import CompiledStep, UntraceableError, compile_step
from .convnet import SimpleConvNet
from .debug import LabelError, checking, debug_checks
from .gradient import gradient_check, numerical_gradient, relative_error
from .layers import (
    AddLayer,
    Affine,
    BatchNormalization,
    Convolution,
    Dropout,
    Layer,
    LossLayer,
    MulLayer,
    Pooling,
    Relu,
    Sigmoid,
    SoftmaxWithLoss,
)
from .nets import MultiLayerNet, TwoLayerNet
from .params import Params
from .sequential import Sequential

try:
    __version__ = version("bp_xp")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "BACKEND_NAMES",
    "AddLayer",
    "Affine",
    "BatchNormalization",
    "Convolution",
    "Dropout",
    "Backend",
    "Layer",
    "LossLayer",
    "BackendError",
    "BackendMismatchError",
    "BackendUnavailableError",
    "CompiledStep",
    "DTypeError",
    "MulLayer",
    "MultiLayerNet",
    "LabelError",
    "Params",
    "Pooling",
    "Relu",
    "Sigmoid",
    "Sequential",
    "SimpleConvNet",
    "SoftmaxWithLoss",
    "TwoLayerNet",
    "UntraceableError",
    "available_backends",
    "backend_info",
    "backend_of",
    "checking",
    "compile_step",
    "debug_checks",
    "functions",
    "gradient_check",
    "layers",
    "namespace_of",
    "numerical_gradient",
    "relative_error",
    "resolve_backend",
    "to_device",
    "to_numpy",
]
