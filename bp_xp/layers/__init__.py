"""The layers of backpropagation by computational graph ("Deep Learning from Scratch", ch. 5).

Each layer is a small class with ``forward`` and ``backward`` and the cache it needs
between the two, exactly as in the book. What differs is how they compute: every layer
takes its Array API namespace from its inputs, creates nothing without naming dtype and
device, and never writes into an array it did not create. The book's
``dout[self.mask] = 0`` becomes ``where(mask, 0, dout)``, which runs on JAX and leaves the
caller's ``dout`` alone.

Every layer follows the protocol of :class:`bp_xp.Layer` (``params``, ``grads``,
``state``, ``config``), one module per family:

* :mod:`.nodes` - the graph's two-input nodes (``MulLayer``, ``AddLayer``, ``SubLayer``,
  ``DivLayer``, ``MaxLayer``, ``MatMulLayer``);
* :mod:`.unary` - its one-input nodes (``ExpLayer``, ``LogLayer``, ``ReciprocalLayer``,
  ``PowLayer``);
* :mod:`.activations` - ``Relu``, ``Sigmoid``;
* :mod:`.affine` - ``Affine``;
* :mod:`.loss` - ``SoftmaxWithLoss``;
* :mod:`.regularization` - ``Dropout``, ``BatchNormalization`` (chapter 6);
* :mod:`.conv` - ``Convolution``, ``Pooling`` (chapter 7).

Each class declares its contract next to it (:func:`contract`: sample inputs and a
float64 reference), which :mod:`bp_xp.conformance` holds every layer to.
"""

from ._checks import ShapeError
from ._contract import Contract, Sample, bools, contract, floats, ints, values
from .activations import Relu, Sigmoid
from .affine import Affine
from .base import Layer, LossLayer, accepts_keyword, layer_class, registered_layers
from .conv import Convolution, Pooling
from .loss import SoftmaxWithLoss
from .nodes import AddLayer, DivLayer, MatMulLayer, MaxLayer, MulLayer, SubLayer
from .regularization import BatchNormalization, Dropout
from .unary import ExpLayer, LogLayer, PowLayer, ReciprocalLayer

__all__ = [
    "Contract",
    "Sample",
    "ShapeError",
    "bools",
    "contract",
    "floats",
    "ints",
    "values",
    "AddLayer",
    "Affine",
    "DivLayer",
    "ExpLayer",
    "BatchNormalization",
    "Convolution",
    "Dropout",
    "Layer",
    "LogLayer",
    "LossLayer",
    "MatMulLayer",
    "MaxLayer",
    "MulLayer",
    "PowLayer",
    "ReciprocalLayer",
    "Pooling",
    "Relu",
    "Sigmoid",
    "SoftmaxWithLoss",
    "SubLayer",
    "accepts_keyword",
    "layer_class",
    "registered_layers",
]
