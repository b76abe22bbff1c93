"""im2col/col2im, Convolution and Pooling on every backend, against loop references,
numerical gradients and PyTorch autograd."""

import numpy as np
import pytest

from bp_xp import DTypeError
from bp_xp.functions import col2im, conv_output_size, im2col
from bp_xp.layers import Convolution, Pooling, ShapeError
from layer_checks import (
    REPEATING_ROWS,
    loop_col2im,
    loop_conv,
    loop_im2col,
    loop_max_pool,
    numeric_grad,
    rel_error,
    torch_or_skip,
)

# (input shape, filter_h, filter_w, stride, pad): square and non-square filters, stride 2,
# padding, and windows that tile the image (the pooling case).
GEOMETRIES = [
    ((2, 3, 5, 5), 3, 3, 1, 0),
    ((2, 3, 7, 8), 3, 2, 2, 1),
    ((1, 2, 6, 7), 2, 3, 1, 1),
    ((3, 2, 6, 6), 2, 2, 2, 0),
    ((2, 1, 4, 6), 2, 2, 2, 1),
    ((2, 2, 5, 5), 1, 1, 2, 0),
    # strides that do not divide: the size is floored, as in the book and PyTorch
    ((2, 3, 6, 7), 3, 3, 2, 0),
    ((2, 2, 5, 7), 2, 2, 2, 0),
]
IDS = [f"{s[0]}-{s[1]}x{s[2]}-s{s[3]}-p{s[4]}" for s in GEOMETRIES]


@pytest.mark.parametrize(("shape", "fh", "fw", "stride", "pad"), GEOMETRIES, ids=IDS)
def test_im2col_and_col2im_match_the_loop_definition(xb, dtype, rng, shape, fh, fw, stride, pad):
    hx = rng.standard_normal(shape)
    x = xb.asarray(hx, dtype)
    col = im2col(x, fh, fw, stride, pad)
    expected = loop_im2col(hx.astype(dtype), fh, fw, stride, pad)
    xb.assert_close(col, expected, dtype)
    hc = rng.standard_normal(expected.shape)
    c = xb.asarray(hc, dtype)
    img = col2im(c, shape, fh, fw, stride, pad)
    xb.assert_close(img, loop_col2im(hc.astype(dtype), shape, fh, fw, stride, pad), dtype)
    np.testing.assert_array_equal(xb.to_numpy(x), hx.astype(dtype))  # inputs untouched
    np.testing.assert_array_equal(xb.to_numpy(c), hc.astype(dtype))


def test_col2im_is_the_adjoint_of_im2col(rng):
    shape, fh, fw, stride, pad = (2, 3, 7, 8), 3, 2, 2, 1
    x = rng.standard_normal(shape)
    c = rng.standard_normal(loop_im2col(x, fh, fw, stride, pad).shape)
    lhs = np.sum(im2col(x, fh, fw, stride, pad) * c)
    rhs = np.sum(x * col2im(c, shape, fh, fw, stride, pad))
    assert lhs == pytest.approx(rhs, rel=1e-12)


@pytest.mark.parametrize(("shape", "fh", "fw", "stride", "pad"), GEOMETRIES[:3], ids=IDS[:3])
def test_convolution_forward_backward(xb, dtype, rng, shape, fh, fw, stride, pad):
    fn = 4
    hx = rng.standard_normal(shape)
    hW = rng.standard_normal((fn, shape[1], fh, fw))
    hb = rng.standard_normal(fn)
    out_ref = loop_conv(hx, hW, hb, stride, pad)
    hd = rng.standard_normal(out_ref.shape)
    x, W, b, dout = (xb.asarray(a, dtype) for a in (hx, hW, hb, hd))
    layer = Convolution(W, b, stride, pad)
    out = layer.forward(x)
    xb.assert_close(out, out_ref, dtype, rtol=1e-4 if dtype == "float32" else 1e-10,
                    atol=1e-4 if dtype == "float32" else 1e-10)
    dx = layer.backward(dout)
    # The gradients of a linear map are exact adjoints: check against the loop forms.
    dcol = hd.transpose(0, 2, 3, 1).reshape(-1, fn) @ hW.reshape(fn, -1)
    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == "float32" else {}
    xb.assert_close(dx, loop_col2im(dcol, shape, fh, fw, stride, pad), dtype, **tol)
    col = loop_im2col(hx, fh, fw, stride, pad)
    xb.assert_close(layer.dW, (hd.transpose(0, 2, 3, 1).reshape(-1, fn).T @ col).reshape(hW.shape),
                    dtype, **tol)
    xb.assert_close(layer.db, hd.sum(axis=(0, 2, 3)), dtype, **tol)
    for arr, host in ((x, hx), (W, hW), (b, hb), (dout, hd)):
        np.testing.assert_array_equal(xb.to_numpy(arr), host.astype(dtype))
    assert layer.backward(dout, need_dx=False) is None


@REPEATING_ROWS
def test_convolution_gradients_match_numerical(xb, rng):
    if not xb.case.float64:
        pytest.skip("needs float64")
    shape, fh, fw, stride, pad = (1, 2, 5, 4), 3, 2, 2, 1  # small: each entry costs 2 losses
    hx, hW, hb = rng.standard_normal(shape), rng.standard_normal((2, 2, fh, fw)), rng.standard_normal(2)
    hd = rng.standard_normal(loop_conv(hx, hW, hb, stride, pad).shape)
    on = lambda a: xb.asarray(a, "float64")  # noqa: E731
    dout = on(hd)
    layer = Convolution(on(hW), on(hb), stride, pad)
    layer.forward(on(hx))
    dx = layer.backward(dout)

    def loss(x=None, W=None, b=None):
        conv = Convolution(on(hW) if W is None else W, on(hb) if b is None else b, stride, pad)
        return xb.xp.sum(conv.forward(on(hx) if x is None else x) * dout)

    assert rel_error(xb.to_numpy(dx), numeric_grad(xb, lambda v: loss(x=v), hx)) < 1e-7
    assert rel_error(xb.to_numpy(layer.dW), numeric_grad(xb, lambda v: loss(W=v), hW)) < 1e-7
    assert rel_error(xb.to_numpy(layer.db), numeric_grad(xb, lambda v: loss(b=v), hb)) < 1e-7


@pytest.mark.parametrize(("shape", "ph", "pw", "stride", "pad"),
                         [((2, 3, 6, 6), 2, 2, 2, 0), ((2, 2, 7, 5), 3, 3, 2, 1),
                          ((1, 2, 5, 6), 2, 3, 1, 0), ((2, 2, 5, 7), 2, 2, 2, 0)],
                         ids=["book-2x2", "3x3-s2-p1", "2x3-s1", "book-2x2-odd"])
def test_pooling_forward_backward(xb, dtype, rng, shape, ph, pw, stride, pad):
    hx = rng.standard_normal(shape)
    x = xb.asarray(hx, dtype)
    layer = Pooling(ph, pw, stride, pad)
    out = layer.forward(x)
    expected = loop_max_pool(hx.astype(dtype).astype(np.float64), ph, pw, stride, pad)
    xb.assert_close(out, expected, dtype)
    hd = rng.standard_normal(expected.shape)
    dx = layer.backward(xb.asarray(hd, dtype))
    # Each window's gradient goes to its maximum (by the loop reference's argmax).
    col = loop_im2col(hx.astype(dtype).astype(np.float64), ph, pw, stride, pad)
    col = col.reshape(-1, ph * pw)
    dmax = np.zeros_like(col)
    dmax[np.arange(col.shape[0]), col.argmax(axis=1)] = hd.transpose(0, 2, 3, 1).ravel()
    expected_dx = loop_col2im(dmax.reshape(-1, shape[1] * ph * pw), shape, ph, pw, stride, pad)
    xb.assert_close(dx, expected_dx, dtype)
    np.testing.assert_array_equal(xb.to_numpy(x), hx.astype(dtype))


@REPEATING_ROWS
def test_pooling_gradient_matches_numerical(xb, rng):
    if not xb.case.float64:
        pytest.skip("needs float64")
    hx = rng.standard_normal((1, 2, 7, 5))
    hd = rng.standard_normal((1, 2, 4, 3))
    dout = xb.asarray(hd, "float64")
    layer = Pooling(3, 3, 2, 1)
    layer.forward(xb.asarray(hx, "float64"))
    dx = layer.backward(dout)
    numeric = numeric_grad(xb, lambda v: xb.xp.sum(Pooling(3, 3, 2, 1).forward(v) * dout), hx)
    assert rel_error(xb.to_numpy(dx), numeric) < 1e-7


def test_ties_go_to_the_first_maximum_as_argmax():
    layer = Pooling(2, 2)
    layer.forward(np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 1, 1)))[0, 0], [[1, 0], [0, 0]])


def test_conv_and_pool_match_torch_autograd(xb, dtype, rng):
    torch = torch_or_skip()
    F = torch.nn.functional
    hx = rng.standard_normal((2, 3, 11, 10))
    hW, hb = rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    conv, pool = Convolution(xb.asarray(hW, dtype), xb.asarray(hb, dtype), 2, 1), Pooling(2, 2)
    out = pool.forward(conv.forward(xb.asarray(hx, dtype)))
    hd = rng.standard_normal(tuple(out.shape))
    dx = conv.backward(pool.backward(xb.asarray(hd, dtype)))
    tx, tW, tb = (torch.tensor(a, requires_grad=True) for a in (hx, hW, hb))
    tout = F.max_pool2d(F.conv2d(tx, tW, tb, stride=2, padding=1), 2, 2)
    tout.backward(torch.tensor(hd))
    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == "float32" else {}
    xb.assert_close(out, tout.detach().numpy(), dtype, **tol)
    xb.assert_close(dx, tx.grad.numpy(), dtype, **tol)
    xb.assert_close(conv.dW, tW.grad.numpy(), dtype, **tol)
    xb.assert_close(conv.db, tb.grad.numpy(), dtype, **tol)


def test_bad_shapes_name_the_shapes():
    conv = Convolution(np.ones((2, 3, 3, 3)), np.zeros(2))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\) for W of shape \(2, 3, 3, 3\).*\(4, 2, 5, 5\)"):
        conv.forward(np.ones((4, 2, 5, 5)))
    with pytest.raises(ValueError, match=r"filter height 3 is larger than the padded input height 2"):
        conv.forward(np.ones((1, 3, 2, 5)))
    with pytest.raises(ValueError, match=r"W of shape \(FN, C, FH, FW\).*\(2, 3\)"):
        Convolution(np.ones((2, 3)), np.zeros(2))
    conv.forward(np.ones((1, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(1, 2, 3, 3\)"):
        conv.backward(np.ones((1, 2, 3, 4)))
    with pytest.raises(ValueError, match=r"Pooling: the filter height 2 is larger than the padded "
                                         r"input height 1"):
        Pooling(2, 2).forward(np.ones((1, 1, 1, 4)))
    with pytest.raises(ValueError, match=r"image batch of shape \(N, C, H, W\), got shape \(4, 4\)"):
        im2col(np.ones((4, 4)), 2, 2)
    with pytest.raises(ValueError, match=r"col must have shape \(4, 4\).*got \(4, 5\)"):
        col2im(np.ones((4, 5)), (1, 1, 4, 4), 2, 2, 2)
    with pytest.raises(ValueError, match="stride must be an integer >= 1, got 0"):
        conv_output_size(5, 3, 0)
    with pytest.raises(RuntimeError, match="before forward"):
        Pooling(2, 2).backward(np.ones((1, 1, 1, 1)))


# One wrong shape or dtype per line: the layer and its arguments, the bad input, the error.
_BAD_IMAGES = [
    ("Convolution", (2, 3, 3, 3), None, (4, 2, 5, 5), "float", ShapeError, r"\(N, 3, H, W\)"),
    ("Convolution", (2, 3, 3, 3), None, (3, 5, 5), "float", ShapeError, r"\(N, 3, H, W\)"),
    ("Convolution", (2, 3, 3, 3), None, (1, 3, 2, 5), "float", ShapeError, "filter height 3"),
    ("Convolution", (2, 3, 3, 3), None, (1, 3, 5, 5), "bool", DTypeError, "bool array"),
    ("Pooling", None, (2, 2), (1, 1, 1, 4), "float", ShapeError, "filter height 2"),
    ("Pooling", None, (2, 2), (4, 4), "float", ShapeError, r"\(N, C, H, W\)"),
    ("Pooling", None, (2, 2), (1, 1, 4, 4), "bool", DTypeError, "bool array"),
]


@pytest.mark.parametrize(("layer", "W_shape", "pool", "shape", "kind", "error", "words"),
                         _BAD_IMAGES, ids=[f"{r[0]}-{r[4]}-{'x'.join(map(str, r[3]))}"
                                           for r in _BAD_IMAGES])
def test_bad_images_raise_bp_xp_errors_on_every_backend(xb, layer, W_shape, pool, shape, kind,
                                                        error, words):
    """A wrong shape is a ShapeError (a ValueError), a bool image a DTypeError (a TypeError),
    on every backend alike, raised before the backend's own kernels see the image."""
    if layer == "Convolution":
        layer_obj = Convolution(xb.asarray(np.ones(W_shape), "float32"),
                                xb.asarray(np.zeros(W_shape[0]), "float32"))
    else:
        layer_obj = Pooling(*pool)
    host = np.ones(shape, dtype=bool) if kind == "bool" else np.ones(shape)
    x = xb.asarray(host, None if kind == "bool" else "float32")
    with pytest.raises(error, match=words) as caught:
        layer_obj.forward(x)
    assert isinstance(caught.value, ValueError if error is ShapeError else TypeError)
    assert type(caught.value) is error  # not a backend's own exception


def test_an_empty_batch_goes_through_convolution_and_padded_pooling(xb):
    """N = 0 gives empty outputs and gradients of the input's shape, zero dW and db, on every
    backend (Dask's reshape and item assignment fail on zero-size arrays: see _im2col.reshape).
    The conformance contracts hold the same sample to the float64 reference."""
    W = xb.asarray(np.ones((3, 2, 3, 3)), "float32")
    x = xb.asarray(np.ones((0, 2, 5, 5)), "float32")
    for layer, out_shape in ((Convolution(W, xb.asarray(np.zeros(3), "float32"), 2, 1),
                              (0, 3, 3, 3)),
                             (Pooling(3, 3, 1, 1), (0, 2, 5, 5)), (Pooling(2, 2), (0, 2, 2, 2))):
        out = layer.forward(x)
        xb.assert_close(out, np.zeros(out_shape), "float32")
        dx = layer.backward(xb.asarray(np.zeros(out_shape), "float32"))
        xb.assert_close(dx, np.zeros((0, 2, 5, 5)), "float32")
        for name, grad in layer.grads.items():
            xb.assert_close(grad, np.zeros(tuple(layer.params[name].shape)), "float32")


def test_layers_rebuild_from_their_config():
    conv = Convolution(np.ones((2, 1, 3, 3)), np.zeros(2), stride=2, pad=1)
    again = Convolution.from_config(conv.config(), dict(conv.params), {})
    assert (again.stride, again.pad) == (2, 1) and again.W is conv.W
    pool = Pooling.from_config(Pooling(3, 2, 1, 1).config(), {}, {})
    assert (pool.pool_h, pool.pool_w, pool.stride, pool.pad) == (3, 2, 1, 1)
