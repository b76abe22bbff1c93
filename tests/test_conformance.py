"""Every built-in layer and node held to the one contract of :mod:`bp_xp.conformance`.

Each generic check runs for every registered contract on every matrix row (``xb``) and
dtype. The layers declare their samples and float64 references next to their classes
(``@contract`` in ``bp_xp/layers/*.py``); nothing here is specific to one layer. The
heavier contracts (convolution, pooling, batch normalization: many numerical-gradient
evaluations) run in the slow lane; the fast lane (``-m "not slow"``) keeps the rest, on the
rows that do not repeat another row (``REPEATING_ROWS``: ``numpy_readonly`` and
``strict_device1`` run in the full suite; the checks compare the inputs before and after and
refuse another device on ``numpy`` and ``strict`` already).
"""

from __future__ import annotations

import numpy as np
import pytest

import bp_xp.layers
from bp_xp import BackendMismatchError
from bp_xp.conformance import CHECKS, check_layer, registered_contracts
from bp_xp.layers import Layer, MulLayer, Sample, contract, floats
from bp_xp.layers._contract import contracts_of
from layer_checks import REPEATING_ROWS

#: Layers whose contracts take more than a few hundred milliseconds per row (many
#: numerical-gradient evaluations, or im2col's Python loops): the slow lane runs them.
SLOW = (bp_xp.layers.Convolution, bp_xp.layers.Pooling, bp_xp.layers.BatchNormalization)

BUILT_IN = [spec for spec in registered_contracts() if spec.layer.__module__.startswith("bp_xp.")]


def _param(spec):
    return pytest.param(spec, id=spec.name, marks=[pytest.mark.slow] if spec.layer in SLOW else [])


@REPEATING_ROWS
@pytest.mark.parametrize("spec", [_param(s) for s in BUILT_IN])
@pytest.mark.parametrize("check", list(CHECKS))
def test_layer_contract(xb, dtype, spec, check):
    """One generic check of one layer's contract on one row of the matrix."""
    CHECKS[check](spec, xb, dtype)


def test_every_built_in_layer_declares_a_contract():
    """A new built-in layer is one file plus its ``@contract`` entry: none is left out."""
    missing = [name for name, obj in vars(bp_xp.layers).items()
               if isinstance(obj, type) and issubclass(obj, Layer)
               and obj not in (Layer, bp_xp.layers.LossLayer) and not contracts_of(obj)]
    assert not missing, f"layers without a contract: {missing}"


def test_the_book_mul_example_gives_floating_gradients(xb):
    """The issue's example: int arrays and backward(0.5) give [1.5, 2.], [0.5, 1.]."""
    m = MulLayer()
    m.forward(xb.asarray(np.array([1, 2])), xb.asarray(np.array([3, 4])))
    dx, dy = m.backward(0.5)
    default = xb.xp.__array_namespace_info__().default_dtypes(device=xb.device)["real floating"]
    xb.assert_close(dx, [1.5, 2.0], default)
    xb.assert_close(dy, [0.5, 1.0], default)


# -- the harness catches what it claims to catch: broken layers fail it ------------------
# (plain classes, not bp_xp.Layer subclasses: they stay out of the checkpoint registry)


class _Square:
    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, dout):
        return 2 * dout * self.x


def _reference(np, x):
    return x * x


@contract(reference=_reference, samples=[Sample(floats(3, 2))])
class _WrongGradient(_Square):
    def backward(self, dout):
        return 3 * dout * self.x


@contract(reference=_reference, samples=[Sample(floats(3, 2))])
class _NoForwardCheck(_Square):
    x = 0.0  # backward before forward quietly answers for 0


@contract(reference=_reference, samples=[Sample(floats(3, 2))])
class _CacheBeforeCompute(_Square):
    def forward(self, x):
        self.x = x  # overwritten although the next line raises
        if not hasattr(x, "shape"):
            raise TypeError("not an array")
        return x * x


@pytest.mark.parametrize(("layer", "check", "message"), [
    (_WrongGradient, "backward", "gradient of input 0"),
    (_NoForwardCheck, "backward_before_forward", "expected RuntimeError"),
    (_CacheBeforeCompute, "failed_forward", "changed x"),
])
def test_the_harness_catches_broken_layers(xb, layer, check, message):
    if xb.case.id != "numpy":
        pytest.skip("the harness itself is backend-independent; one row shows it")
    with pytest.raises(AssertionError, match=message):
        check_layer(layer, xb, "float64", checks=[check])


def test_a_correct_user_layer_passes_every_check(xb, dtype):
    """The docs' one call, on a small correct layer written here."""

    @contract(reference=_reference, samples=[Sample(floats(3, 2)), Sample(floats(0, 2))],
              torch_reference=lambda torch, x: x * x)
    class Square:
        def __init__(self):
            self.x = None

        def forward(self, x):
            bp_xp.namespace_of(x)
            self.x = x
            return x * x

        def backward(self, dout):
            from bp_xp.layers._checks import require_forward

            x = require_forward(self, self.x)
            bp_xp.namespace_of(dout, x, names=("dout", "x"))
            return 2 * dout * x

    check_layer(Square, xb, dtype)


def test_a_node_refuses_an_operand_of_another_backend(xb):
    """Spelled out once for reading; ``check_mixed`` does it for every contract."""
    if xb.case.family == "numpy":
        pytest.skip("needs a second backend: the numpy row mixes with array_api_strict in check_mixed")
    with pytest.raises(BackendMismatchError):
        MulLayer().forward(xb.asarray([1.0, 2.0], "float32"), np.array([1.0, 2.0], dtype=np.float32))
