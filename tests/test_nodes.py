"""The computational graph's nodes on every backend: gradients, shapes, numbers, gates."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from bp_xp import BackendMismatchError, relative_error, to_device
from bp_xp.layers import (
    AddLayer,
    DivLayer,
    ExpLayer,
    Layer,
    LogLayer,
    MatMulLayer,
    MaxLayer,
    MulLayer,
    PowLayer,
    ReciprocalLayer,
    Relu,
    Sigmoid,
    SubLayer,
    layer_class,
)
from layer_checks import REPEATING_ROWS

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _draw(rng, shape, domain):
    """Host float64 inputs inside a node's smooth domain."""
    if domain == "positive":
        return rng.uniform(0.5, 2.0, shape)
    if domain == "away_from_zero":
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)
    return rng.standard_normal(shape)


# name -> (factory, torch reference of forward, input shapes, input domains)
NODES = {
    "mul": (MulLayer, lambda x, y: x * y, [(3, 4), (3, 4)], ["any", "any"]),
    "add": (AddLayer, lambda x, y: x + y, [(3, 4), (3, 4)], ["any", "any"]),
    "sub": (SubLayer, lambda x, y: x - y, [(3, 4), (3, 4)], ["any", "any"]),
    "div": (DivLayer, lambda x, y: x / y, [(3, 4), (3, 4)], ["any", "away_from_zero"]),
    "max": (MaxLayer, lambda x, y: __import__("torch").maximum(x, y), [(3, 4), (3, 4)],
            ["any", "any"]),
    "matmul": (MatMulLayer, lambda w, x: w @ x, [(3, 4), (4, 2)], ["any", "any"]),
    "reciprocal": (ReciprocalLayer, lambda x: 1 / x, [(3, 4)], ["away_from_zero"]),
    "exp": (ExpLayer, lambda x: x.exp(), [(3, 4)], ["any"]),
    "log": (LogLayer, lambda x: x.log(), [(3, 4)], ["positive"]),
    "square": (lambda: PowLayer(2), lambda x: x ** 2, [(3, 4)], ["any"]),
    "cube": (lambda: PowLayer(3), lambda x: x ** 3, [(3, 4)], ["any"]),
    "sqrt": (lambda: PowLayer(0.5), lambda x: x ** 0.5, [(3, 4)], ["positive"]),
    "inverse_square": (lambda: PowLayer(-2), lambda x: x ** -2, [(3, 4)], ["away_from_zero"]),
}


def _inputs(rng, name):
    _, _, shapes, domains = NODES[name]
    hosts = [_draw(rng, s, d) for s, d in zip(shapes, domains)]
    if name == "max":  # keep the two inputs apart: no tie within the finite difference
        hosts[1] = hosts[0] + rng.choice([-1.0, 1.0], shapes[0]) * rng.uniform(0.1, 1.0, shapes[0])
    return hosts


def _numerical(xb, name, hosts, hd, h=1e-6):
    """Central differences of sum(forward(inputs) * dout), forward run on xb's backend."""
    factory = NODES[name][0]

    def f(values):
        out = factory().forward(*(xb.asarray(v, "float64") for v in values))
        return float(np.sum(xb.to_numpy(out) * hd))

    grads = []
    for i, host in enumerate(hosts):
        grad = np.zeros_like(host)
        for idx in np.ndindex(host.shape):
            plus = [v.copy() for v in hosts]
            minus = [v.copy() for v in hosts]
            plus[i][idx] += h
            minus[i][idx] -= h
            grad[idx] = (f(plus) - f(minus)) / (2 * h)
        grads.append(grad)
    return grads


def _as_tuple(grads):
    return grads if isinstance(grads, tuple) else (grads,)




@REPEATING_ROWS
@pytest.mark.parametrize("name", list(NODES))
def test_backward_matches_numerical_gradient(xb, rng, name):
    if not xb.case.float64:
        pytest.skip(f"{xb.case.id} has no float64")
    hosts = _inputs(rng, name)
    layer = NODES[name][0]()
    out = layer.forward(*(xb.asarray(v, "float64") for v in hosts))
    hd = rng.standard_normal(tuple(out.shape))
    grads = _as_tuple(layer.backward(xb.asarray(hd, "float64")))
    assert len(grads) == len(hosts)
    for grad, host, expected in zip(grads, hosts, _numerical(xb, name, hosts, hd)):
        xb.assert_on_backend(grad, "float64")
        assert tuple(grad.shape) == host.shape
        assert relative_error(grad, expected) < 1e-7


@REPEATING_ROWS
@pytest.mark.parametrize("name", list(NODES))
def test_forward_and_backward_match_torch_autograd(xb, dtype, rng, name):
    torch = pytest.importorskip("torch")
    factory, reference, _, _ = NODES[name]
    hosts = _inputs(rng, name)
    leaves = [torch.tensor(v, requires_grad=True) for v in hosts]
    expected_out = reference(*leaves)
    hd = rng.standard_normal(tuple(expected_out.shape))
    expected_out.backward(torch.tensor(hd))
    layer = factory()
    inputs = [xb.asarray(v, dtype) for v in hosts]
    xb.assert_close(layer.forward(*inputs), expected_out.detach().numpy(), dtype)
    for grad, leaf in zip(_as_tuple(layer.backward(xb.asarray(hd, dtype))), leaves):
        xb.assert_close(grad, leaf.grad.numpy(), dtype)
    for arr, host in zip(inputs, hosts):  # the inputs were not written to
        np.testing.assert_array_equal(xb.to_numpy(arr), host.astype(dtype))


BINARY = {"mul": MulLayer, "add": AddLayer, "sub": SubLayer, "div": DivLayer, "max": MaxLayer}
#: shape of x, shape of y (None: a Python number); the output is (2, 3) each time
BROADCASTS = {
    "row": ((2, 3), (3,)),
    "keepdims_row": ((2, 3), (1, 3)),
    "column": ((2, 3), (2, 1)),
    "zero_d": ((2, 3), ()),
    "x_broadcast": ((3,), (2, 3)),
    "number": ((2, 3), None),
    "number_first": (None, (2, 3)),
}


@REPEATING_ROWS
@pytest.mark.parametrize("case", list(BROADCASTS))
@pytest.mark.parametrize("name", list(BINARY))
def test_broadcast_and_number_operands_get_gradients_in_their_shape(xb, dtype, rng, name, case):
    torch = pytest.importorskip("torch")
    shapes = BROADCASTS[case]
    hosts = [1.5 if s is None else rng.uniform(0.5, 2.0, s) * rng.choice([-1.0, 1.0], s)
             for s in shapes]
    values = [h if s is None else xb.asarray(h, dtype) for h, s in zip(hosts, shapes)]
    leaves = [torch.tensor(np.asarray(h, dtype=np.float64), requires_grad=True) for h in hosts]
    hd = rng.standard_normal((2, 3))
    {"mul": lambda a, b: a * b, "add": lambda a, b: a + b, "sub": lambda a, b: a - b,
     "div": lambda a, b: a / b, "max": torch.maximum}[name](*leaves).backward(torch.tensor(hd))
    layer = BINARY[name]()
    layer.forward(*values)
    for grad, shape, leaf in zip(layer.backward(xb.asarray(hd, dtype)), shapes, leaves):
        if shape is None:
            assert type(grad) is float, f"a Python-number input got a {type(grad).__name__}"
            assert grad == pytest.approx(float(leaf.grad), rel=1e-4)
        else:
            assert tuple(grad.shape) == shape
            xb.assert_close(grad, leaf.grad.numpy(), dtype)


def test_python_numbers_in_python_numbers_out():
    layer = MulLayer()
    assert layer.forward(3, 4) == 12
    assert layer.backward(2) == (8, 6)
    for node, x in ((ExpLayer(), 0.5), (LogLayer(), 2.0), (ReciprocalLayer(), 4.0),
                    (PowLayer(3), 2), (Sigmoid(), -1.5), (Relu(), 2.5), (Relu(), -2)):
        node.forward(x)
        assert type(node.backward(1.0)) is float, type(node).__name__
    assert Relu().forward(-3) == 0 and Relu().forward(-3.0) == 0.0


def test_the_issue_example_scalar_operand_of_an_array_product(rng):
    x = rng.standard_normal(3)
    layer = MulLayer()
    layer.forward(x, 1.1)
    dx, dtax = layer.backward(np.ones(3))
    assert dx.shape == (3,) and type(dtax) is float
    assert dtax == pytest.approx(x.sum())


@pytest.mark.parametrize("layer_type", [AddLayer, SubLayer, MulLayer, MaxLayer])
def test_gradients_are_independent_arrays(xb, layer_type):
    x, y = xb.asarray(np.array([1.0, 2.0]), "float32"), xb.asarray(np.array([3.0, 1.0]), "float32")
    dout = xb.asarray(np.array([1.0, 1.0]), "float32")
    layer = layer_type()
    layer.forward(x, y)
    dx, dy = layer.backward(dout)
    assert dx is not dy and dx is not dout and dy is not dout
    if xb.case.family in ("numpy", "torch") and not xb.case.readonly:
        before = xb.to_numpy(dy).copy()
        dx += 10  # the lecture's accumulation; must change nothing else
        np.testing.assert_array_equal(xb.to_numpy(dy), before)
        np.testing.assert_array_equal(xb.to_numpy(dout), [1.0, 1.0])


def test_mixed_backends_are_refused_in_backward(rng):
    x = rng.standard_normal((2, 3))
    for layer in (MulLayer(), AddLayer(), DivLayer(), MaxLayer()):
        layer.forward(x, x + 3)
        with pytest.raises(BackendMismatchError, match=r"dout is a array_api_strict.*x is a numpy"):
            layer.backward(to_device(np.ones((2, 3)), "array_api_strict"))
    exp = ExpLayer()
    exp.forward(to_device(x, "array_api_strict"))
    with pytest.raises(BackendMismatchError, match="dout is on .*device1.*x is on"):
        exp.backward(to_device(np.ones((2, 3)), "array_api_strict:device1"))


def test_bad_operands_and_upstream_are_named():
    with pytest.raises(TypeError, match=r"MulLayer.forward: y must be a Python number or an array.*list"):
        MulLayer().forward(np.ones(2), [1.0, 2.0])
    layer = AddLayer()
    layer.forward(np.ones((2, 3)), 1.0)
    with pytest.raises(ValueError, match=r"AddLayer.backward: dout must have .* \(2, 3\), got \(3,\)"):
        layer.backward(np.ones(3))
    with pytest.raises(RuntimeError, match="DivLayer.backward called before forward"):
        DivLayer().backward(1.0)
    with pytest.raises(TypeError, match="MatMulLayer.forward: W and X must both be arrays"):
        MatMulLayer().forward(2.0, np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"W \(2, 3\) and X \(2, 3\)"):
        MatMulLayer().forward(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(TypeError, match="PowLayer: p must be a Python int or float"):
        PowLayer(np.array(2.0))
    with pytest.raises(TypeError, match="Sigmoid.forward: x must be an array or a real Python"):
        Sigmoid().forward("1")


def test_matmul_with_batch_axes_sums_them_back(rng):
    torch = pytest.importorskip("torch")
    hw, hx, hd = rng.standard_normal((3, 4)), rng.standard_normal((5, 4, 2)), rng.standard_normal((5, 3, 2))
    w, x = torch.tensor(hw, requires_grad=True), torch.tensor(hx, requires_grad=True)
    (w @ x).backward(torch.tensor(hd))
    node = MatMulLayer()
    node.forward(hw, hx)
    dW, dX = node.backward(hd)
    np.testing.assert_allclose(dW, w.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(dX, x.grad.numpy(), rtol=1e-12)


def test_max_gate_routes_to_the_larger_input_and_ties_to_x(xb, dtype):
    x = xb.asarray(np.array([1.0, 5.0, 2.0, -1.0]), dtype)
    y = xb.asarray(np.array([3.0, 4.0, 2.0, -1.0]), dtype)
    dout = xb.asarray(np.array([10.0, 20.0, 30.0, 40.0]), dtype)
    gate = MaxLayer()
    xb.assert_close(gate.forward(x, y), [3.0, 5.0, 2.0, -1.0], dtype)
    dx, dy = gate.backward(dout)
    xb.assert_close(dx, [0.0, 20.0, 30.0, 40.0], dtype)  # ties (last two) all go to x
    xb.assert_close(dy, [10.0, 0.0, 0.0, 0.0], dtype)
    assert MaxLayer().forward(2, 2) == 2
    gate = MaxLayer()
    gate.forward(-4.0, 2.0)
    assert gate.backward(2.0) == (0.0, 2.0)  # the lecture's max gate


def test_max_tie_rule_differs_from_torch_maximum_which_splits_ties():
    torch = pytest.importorskip("torch")
    hx, hy = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 4.0])  # a tie at index 0
    x, y = torch.tensor(hx, requires_grad=True), torch.tensor(hy, requires_grad=True)
    torch.maximum(x, y).backward(torch.ones(3))
    gate = MaxLayer()
    gate.forward(hx, hy)
    dx, dy = gate.backward(np.ones(3))
    np.testing.assert_array_equal(x.grad.numpy(), [0.5, 1.0, 0.0])  # torch: half each
    np.testing.assert_array_equal(y.grad.numpy(), [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(dx, [1.0, 1.0, 0.0])  # bp_xp: all to x, the first input
    np.testing.assert_array_equal(dy, [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(dx + dy, x.grad.numpy() + y.grad.numpy())  # same total


def test_staged_computation_reproduces_the_lectures_numbers(xb):
    if not xb.case.float64:
        pytest.skip(f"{xb.case.id} has no float64")
    f_and_grads = _example("staged_computation").f_and_grads
    x, y = xb.asarray(np.array(3.0), "float64"), xb.asarray(np.array(-4.0), "float64")
    f, dx, dy = f_and_grads(x, y)
    for value in (f, dx, dy):
        xb.assert_on_backend(value, "float64")
    np.testing.assert_allclose(
        [float(xb.to_numpy(v)) for v in (f, dx, dy)],
        [1.5456448841066441, 2.059569795572165, 1.5922327514838093], rtol=0, atol=1e-12)


def test_staged_computation_on_python_numbers():
    f, dx, dy = _example("staged_computation").f_and_grads(3, -4)
    assert all(type(v) is float for v in (f, dx, dy))
    np.testing.assert_allclose([f, dx, dy], [1.5456448841066441, 2.059569795572165,
                                             1.5922327514838093], rtol=0, atol=1e-12)


def test_decomposed_sigmoid_equals_the_sigmoid_layer(xb, dtype, rng):
    decomposed_sigmoid = _example("sigmoid_graph").decomposed_sigmoid
    hx, hd = rng.standard_normal((4, 3)) * 3, rng.standard_normal((4, 3))
    y, dx = decomposed_sigmoid(xb.asarray(hx, dtype), xb.asarray(hd, dtype))
    layer = Sigmoid()
    xb.assert_close(y, xb.to_numpy(layer.forward(xb.asarray(hx, dtype))), dtype)
    xb.assert_close(dx, xb.to_numpy(layer.backward(xb.asarray(hd, dtype))), dtype)
    s = 1 / (1 + np.exp(-hx))  # and both are the formula dout * y * (1 - y)
    xb.assert_close(dx, hd * s * (1 - s), dtype)


def test_pow_layer_round_trips_through_its_config():
    layer = PowLayer(3)
    rebuilt = layer_class(layer.layer_type).from_config(layer.config(), {}, {})
    assert isinstance(rebuilt, Layer) and rebuilt.p == 3
    assert rebuilt.forward(2.0) == 8.0 and rebuilt.backward(1.0) == 12.0
    zero = PowLayer(0)
    zero.forward(np.array([0.0, 2.0]))
    np.testing.assert_array_equal(zero.backward(np.ones(2)), [0.0, 0.0])  # no 0 * inf


# -- the operand rules, one shared mechanism (bp_xp/layers/_operands.py) ------------------


def _default_float(xb):
    return xb.xp.__array_namespace_info__().default_dtypes(device=xb.device)["real floating"]


def test_int_arrays_and_a_python_float_dout_give_the_books_floating_gradients(xb):
    """The book's NumPy code: [1, 2] * [3, 4], backward(0.5) -> [1.5, 2.], [0.5, 1.]."""
    m = MulLayer()
    m.forward(xb.asarray(np.array([1, 2])), xb.asarray(np.array([3, 4])))
    dx, dy = m.backward(0.5)
    xb.assert_close(dx, [1.5, 2.0], _default_float(xb))
    xb.assert_close(dy, [0.5, 1.0], _default_float(xb))


@pytest.mark.parametrize("node", [MulLayer, AddLayer, SubLayer, MaxLayer, DivLayer])
def test_a_python_float_against_an_int_array_is_not_truncated(xb, node):
    x = np.array([1, -2, 3])
    expected = {MulLayer: x * 0.5, AddLayer: x + 0.5, SubLayer: x - 0.5,
                MaxLayer: np.maximum(x, 0.5), DivLayer: x / 0.5}[node]
    out = node().forward(xb.asarray(x), 0.5)
    xb.assert_close(out, expected, _default_float(xb))


def test_max_layer_propagates_nan(xb, dtype):
    gate = MaxLayer()
    out = gate.forward(xb.asarray([np.nan, 1.0, 2.0], dtype), xb.asarray([0.0, np.nan, 1.0], dtype))
    xb.assert_close(out, [np.nan, np.nan, 2.0], dtype)
    dx, dy = gate.backward(xb.asarray([1.0, 1.0, 1.0], dtype))
    xb.assert_close(dx, [1.0, 0.0, 1.0], dtype)  # each NaN takes the gradient to its input
    xb.assert_close(dy, [0.0, 1.0, 0.0], dtype)
    assert math.isnan(MaxLayer().forward(math.nan, 1.0))


def test_pow_of_a_negative_base_to_a_fractional_power_is_nan_not_complex(xb, dtype):
    """Arrays: float semantics (nan). Python numbers: Python's, but never a complex number."""
    out = PowLayer(0.5).forward(xb.asarray([-4.0, 4.0], dtype))
    xb.assert_close(out, [np.nan, 2.0], dtype)
    node = PowLayer(0.5)
    with pytest.raises(ValueError, match="negative base -4.0 to a fractional power"):
        node.forward(-4.0)  # was (1.2e-16+2j)
    assert node.out is None  # and nothing was cached
    with pytest.raises(ZeroDivisionError):
        ReciprocalLayer().forward(0.0)
    with np.errstate(divide="ignore"):  # NumPy's own warning for 1/0 in an array
        xb.assert_close(ReciprocalLayer().forward(xb.asarray([0.0], dtype)), [np.inf], dtype)


@pytest.mark.parametrize("node", [MulLayer, AddLayer, SubLayer, DivLayer, MaxLayer])
def test_mismatched_shapes_raise_shape_error_on_every_backend(xb, node):
    from bp_xp.layers import ShapeError

    with pytest.raises(ShapeError, match=r"x of shape \(3,\) and y of shape \(2,\)"):
        node().forward(xb.asarray([1.0, 2.0, 3.0], "float32"), xb.asarray([1.0, 2.0], "float32"))
    with pytest.raises(ShapeError, match=r"W \(2, 3\) and X \(2, 3\)"):
        MatMulLayer().forward(xb.asarray(np.ones((2, 3)), "float32"),
                              xb.asarray(np.ones((2, 3)), "float32"))


def test_a_forward_that_raises_keeps_the_last_cache(xb):
    m = MulLayer()
    m.forward(xb.asarray([1.0, 2.0], "float32"), xb.asarray([3.0, 4.0], "float32"))
    with pytest.raises(ValueError):
        m.forward(xb.asarray([1.0, 2.0, 3.0], "float32"), xb.asarray([1.0, 2.0], "float32"))
    dx, dy = m.backward(xb.asarray([1.0, 1.0], "float32"))  # answers for the first forward
    xb.assert_close(dx, [3.0, 4.0], "float32")
    xb.assert_close(dy, [1.0, 2.0], "float32")
