"""The native kernels (convolution, max pooling, the fused loss) against the portable path.

Every backend whose file lists a kernel in ``KERNELS`` runs it here, in float64, against
the portable Array API code on the same backend (``im2col``/``col2im``, the strided-slice
pooling, the log-sum-exp loss with its one-hot and NaN rows), to 1e-12. The portable
references are written at the function level with floored output sizes (the input is cut
to the rows the windows reach, and the gradient of the cut rows is zero), so strides that
do not divide are tested whatever the layers accept. Backends without a kernel must get
``None`` from the dispatcher (the layers then run the portable path).
"""

from __future__ import annotations

import array_api_extra as xpx
import numpy as np
import pytest

import bp_xp
import bp_xp.optim
from bp_xp import backends
from bp_xp._im2col import col2im, fold, im2col, pad_image, windows

#: (N, C, H, W, FN, FH, FW, stride, pad); the ones marked "floor" have strides that do not divide.
CONV_CASES = [
    (2, 3, 7, 7, 4, 3, 3, 1, 0),
    (2, 3, 7, 7, 4, 3, 3, 2, 1),
    (2, 2, 8, 7, 3, 3, 2, 2, 0),  # floor: 8 - 3 = 5 and 7 - 2 = 5 are odd
    (1, 2, 9, 9, 2, 4, 4, 3, 1),  # floor: 9 + 2 - 4 = 7 is not a multiple of 3
    (2, 1, 6, 6, 2, 5, 5, 1, 2),
    # stride 1, square filters, FN*H*W <= C*OH*OW: NumPy/CuPy take dx as the adjoint convolution
    (2, 4, 7, 7, 3, 3, 3, 1, 1),
    (2, 3, 6, 5, 2, 3, 3, 1, 2),  # pad = FH - 1 (DeepConvNet's conv_param_4): no padding of dout
    (1, 3, 5, 6, 3, 2, 2, 1, 0),  # even filters
    (2, 3, 7, 6, 2, 3, 2, 1, 1),  # non-square filters: the folded path
]
#: (N, C, H, W, pool_h, pool_w, stride, pad)
POOL_CASES = [
    (2, 3, 6, 6, 2, 2, 2, 0),  # tiles the image
    (2, 2, 7, 7, 2, 2, 2, 0),  # floor: the last row and column are never read
    (1, 2, 7, 6, 3, 3, 2, 1),  # overlapping windows, zero padding
    (2, 1, 8, 9, 3, 2, 3, 0),  # floor, non-square windows
]


@pytest.fixture(autouse=True)
def _float64_only(request):
    """These comparisons are in float64: the rows without it are skipped."""
    if "xb" in request.fixturenames and not request.getfixturevalue("xb").case.float64:
        pytest.skip("the kernels are compared in float64, which this device lacks")


def _has_kernel(xb, name: str) -> bool:
    probe = xb.asarray(np.zeros((1, 1, 1, 1)), "float64")
    backends.namespace_of(probe)
    return backends.fast_kernel(name, probe) is not None


def _out_size(size: int, window: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - window) // stride + 1


def _used(img, fh: int, fw: int, stride: int, oh: int, ow: int):
    """The padded image cut to the rows and columns the windows reach (floor semantics)."""
    return img[:, :, :stride * (oh - 1) + fh, :stride * (ow - 1) + fw]


def _uncut(xp, grad, padded_shape: tuple[int, ...], pad: int):
    """The adjoint of cutting and padding: zeros for the cut rows, then the padding removed."""
    h, w = grad.shape[2], grad.shape[3]
    grad = xpx.pad(grad, ((0, 0), (0, 0), (0, padded_shape[2] - h), (0, padded_shape[3] - w)), xp=xp)
    return grad[:, :, pad:padded_shape[2] - pad, pad:padded_shape[3] - pad]


def portable_conv(xp, x, W, b, stride: int, pad: int, dout):
    """The portable path (im2col, one product, col2im) with floored output sizes."""
    N, C, H, Wd = x.shape
    FN, _, FH, FW = W.shape
    oh, ow = _out_size(H, FH, stride, pad), _out_size(Wd, FW, stride, pad)
    img = pad_image(xp, x, pad)
    used = _used(img, FH, FW, stride, oh, ow)
    col = im2col(used, FH, FW, stride, 0)
    col_W = xp.reshape(W, (FN, C * FH * FW)).T
    out = xp.permute_dims(xp.reshape(col @ col_W + b, (N, oh, ow, FN)), (0, 3, 1, 2))
    d = xp.reshape(xp.permute_dims(dout, (0, 2, 3, 1)), (N * oh * ow, FN))
    dW = xp.reshape(d.T @ col, W.shape)
    db = xp.sum(d, axis=0)
    dx = _uncut(xp, col2im(d @ col_W.T, tuple(used.shape), FH, FW, stride, 0), tuple(img.shape), pad)
    return out, dx, dW, db


def portable_pool(xp, x, ph: int, pw: int, stride: int, pad: int, dout):
    """The portable pooling (strided slices, first maximum wins) with floored output sizes."""
    N, C, H, W = x.shape
    oh, ow = _out_size(H, ph, stride, pad), _out_size(W, pw, stride, pad)
    img = pad_image(xp, x, pad)
    pieces = windows(img, ph, pw, stride, oh, ow)
    out, arg = pieces[0], xp.zeros(pieces[0].shape, dtype=xp.int32, device=bp_xp.backend_of(x).device)
    for k, piece in enumerate(pieces[1:], start=1):
        wins = piece > out
        out = xp.where(wins, piece, out)
        arg = xp.where(wins, k, arg)
    zero = xp.zeros((), dtype=dout.dtype)
    used = _used(img, ph, pw, stride, oh, ow)
    grads = fold(xp, [xp.where(arg == k, dout, zero) for k in range(ph * pw)],
                 tuple(used.shape), ph, pw, stride)
    return out, _uncut(xp, grads, tuple(img.shape), pad)


def _assert_close(xb, got, expected) -> None:
    got, expected = xb.to_numpy(got), xb.to_numpy(expected)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    scale = max(float(np.max(np.abs(expected))), 1.0)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * scale)


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c)))
def test_native_conv2d_is_the_portable_convolution(xb, rng, case):
    N, C, H, W, FN, FH, FW, stride, pad = case
    hx = rng.standard_normal((N, C, H, W))
    hW, hb = rng.standard_normal((FN, C, FH, FW)), rng.standard_normal(FN)
    x, Wt, b = (xb.asarray(a, "float64") for a in (hx, hW, hb))
    native = backends.conv2d(x, Wt, b, stride, pad)
    if not _has_kernel(xb, "conv2d"):
        assert native is None
        return
    out, backward = native
    dout = xb.asarray(rng.standard_normal(tuple(out.shape)), "float64")
    ref_out, ref_dx, ref_dW, ref_db = portable_conv(xb.xp, x, Wt, b, stride, pad, dout)
    _assert_close(xb, out, ref_out)
    dx, dW, db = backward(dout, True)
    for got, expected in ((dx, ref_dx), (dW, ref_dW), (db, ref_db)):
        _assert_close(xb, got, expected)
    no_dx, dW2, _ = backward(dout, False)
    assert no_dx is None
    _assert_close(xb, dW2, ref_dW)
    np.testing.assert_array_equal(xb.to_numpy(x), hx)  # inputs untouched


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_native_max_pool2d_is_the_portable_pooling(xb, rng, case, ties):
    N, C, H, W, ph, pw, stride, pad = case
    shape = (N, C, H, W)
    hx = rng.integers(-1, 2, size=shape).astype(np.float64) if ties else rng.standard_normal(shape)
    if ties:
        hx[0, 0] = 0.0  # whole windows of equal values: the first one must get the gradient
    x = xb.asarray(hx, "float64")
    native = backends.max_pool2d(x, ph, pw, stride, pad)
    if not _has_kernel(xb, "max_pool2d"):
        assert native is None
        return
    out, backward = native
    dout = xb.asarray(rng.standard_normal(tuple(out.shape)), "float64")
    ref_out, ref_dx = portable_pool(xb.xp, x, ph, pw, stride, pad, dout)
    _assert_close(xb, out, ref_out)
    _assert_close(xb, backward(dout), ref_dx)
    np.testing.assert_array_equal(xb.to_numpy(x), hx)


def test_pooling_ties_send_the_gradient_to_the_first_maximum(xb):
    """An independent reference: a window of equal values sends its gradient to its top-left pixel."""
    if not _has_kernel(xb, "max_pool2d"):
        pytest.skip(f"{xb.case.family} has no max_pool2d kernel (its portable path: test_conv.py)")
    x = xb.asarray(np.ones((1, 1, 4, 4)), "float64")
    out, backward = backends.max_pool2d(x, 2, 2, 2, 0)
    dx = xb.to_numpy(backward(xb.asarray(np.full((1, 1, 2, 2), 3.0), "float64")))
    expected = np.zeros((4, 4))
    expected[::2, ::2] = 3.0
    np.testing.assert_array_equal(dx[0, 0], expected)


# --------------------------------------------------------------------------------------
# The fused loss
# --------------------------------------------------------------------------------------


def portable_loss(xp, x, t, scale: float):
    functions = bp_xp.functions  # the helpers' names with or without a leading underscore
    label_hits = getattr(functions, "label_hits", None) or functions._label_hits
    nll_with_hits = getattr(functions, "nll_with_hits", None) or functions._nll_with_hits
    logp = functions.log_softmax(x)
    hits, nan_rows = label_hits(xp, logp, t, "test")
    loss = nll_with_hits(xp, logp, t, hits, nan_rows)
    y = bp_xp.functions.softmax(x)
    s = scale if nan_rows is None else nan_rows + scale
    return loss, y, (y - xp.astype(hits, y.dtype)) * s


@pytest.mark.parametrize("labels", [[0, 3, 1, 4, 2], [0, -1, 1, 5, 2], [255, 3, 1, 4, 2]],
                         ids=["in_range", "negative_and_too_large", "255"])
def test_fused_loss_is_the_portable_loss_with_its_nan_rule(xb, rng, labels):
    hx = 30 * rng.standard_normal((5, 5))
    x = xb.asarray(hx, "float64")
    t = xb.asarray(np.array(labels), xb.backend.dtype("int32"))
    fused = backends.softmax_cross_entropy_labels(x, t)
    if not _has_kernel(xb, "softmax_cross_entropy_labels"):
        assert fused is None
        return
    loss, y, backward = fused
    ref_loss, ref_y, ref_grad = portable_loss(xb.xp, x, t, 0.2)
    bad = [i for i, label in enumerate(labels) if not 0 <= label < 5]
    assert np.isnan(float(xb.to_numpy(loss))) == bool(bad)
    _assert_close(xb, y, ref_y)
    grad = xb.to_numpy(backward(0.2))
    assert np.isnan(grad[bad]).all() and not np.isnan(np.delete(grad, bad, axis=0)).any()
    np.testing.assert_equal(np.isnan(xb.to_numpy(ref_grad)), np.isnan(grad))
    ok = [i for i in range(5) if i not in bad]
    _assert_close(xb, grad[ok], xb.to_numpy(ref_grad)[ok])
    if not bad:
        _assert_close(xb, loss, ref_loss)


def test_the_loss_layer_gives_the_same_on_its_fused_and_portable_paths(xb, rng, monkeypatch):
    """Layer level: SoftmaxWithLoss with the kernel and with it switched off."""
    hx, labels = rng.standard_normal((6, 4)), np.array([0, 3, 1, 4, 2, -2])
    layer = bp_xp.SoftmaxWithLoss()
    x = xb.asarray(hx, "float64")
    t = xb.asarray(labels, xb.backend.dtype("int32"))
    got = (layer.forward(x, t), layer.backward())
    monkeypatch.setattr(bp_xp.layers.loss, "_fused_loss", lambda *args: None)
    portable = bp_xp.SoftmaxWithLoss()
    expected = (portable.forward(x, t), portable.backward())
    assert np.isnan(float(xb.to_numpy(got[0]))) and np.isnan(float(xb.to_numpy(expected[0])))
    g, e = xb.to_numpy(got[1]), xb.to_numpy(expected[1])
    np.testing.assert_equal(np.isnan(g), np.isnan(e))
    np.testing.assert_allclose(g[:5], e[:5], rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------------------
# The layers and a whole network
# --------------------------------------------------------------------------------------


def test_simple_convnet_gradients_agree_with_and_without_native_kernels(xb, rng, monkeypatch):
    """A SimpleConvNet's loss and every gradient, native kernels vs the portable layers."""
    hx, ht = rng.random((3, 1, 10, 10)), rng.integers(0, 4, size=3)
    conv_param = {"filter_num": 3, "filter_size": 3, "pad": 1, "stride": 1}

    def run():
        net = bp_xp.SimpleConvNet(input_dim=(1, 10, 10), conv_param=conv_param, hidden_size=6,
                                  output_size=4, weight_init_std=0.3, backend=xb.backend,
                                  dtype="float64", seed=1)
        loss, grads = net.loss_and_gradient(xb.asarray(hx, "float64"),
                                            xb.asarray(ht, xb.backend.dtype("int32")))
        return float(xb.to_numpy(loss)), {k: xb.to_numpy(g) for k, g in grads.items()}

    loss, grads = run()
    for name in ("_native_conv2d", "_native_max_pool2d"):
        monkeypatch.setattr(bp_xp.layers.conv, name, lambda *args: None)
    monkeypatch.setattr(bp_xp.layers.loss, "_fused_loss", lambda *args: None)
    ref_loss, ref_grads = run()
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for key, expected in ref_grads.items():
        np.testing.assert_allclose(grads[key], expected, rtol=1e-10, atol=1e-13, err_msg=key)


def test_every_backend_kernel_is_registered_where_the_dispatchers_find_it():
    """The NumPy, PyTorch, JAX and CuPy files list the convolution kernels; NumPy's is the
    strided-window code that CuPy runs too (it takes the array module as an argument)."""
    from bp_xp.backends import cupy, jax, numpy, torch

    for module in (numpy, torch, jax, cupy):
        assert {"conv2d", "max_pool2d"} <= set(module.KERNELS), module.NAME
    assert "softmax_cross_entropy_labels" in torch.KERNELS


@pytest.mark.slow
def test_compile_step_on_jax_compiles_simple_convnet_with_the_native_kernels(rng, monkeypatch):
    """One jax.jit program with lax.conv and reduce_window: equal to the portable eager step."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    hx, ht = rng.random((4, 1, 10, 10)), rng.integers(0, 4, size=4)
    conv_param = {"filter_num": 3, "filter_size": 3, "pad": 1, "stride": 1}

    def make(backend):
        return bp_xp.SimpleConvNet(input_dim=(1, 10, 10), conv_param=conv_param, hidden_size=6,
                                   output_size=4, weight_init_std=0.3, backend=backend,
                                   dtype="float64", seed=1)

    net = make("jax:cpu")
    step = bp_xp.compile_step(net, bp_xp.optim.get_optimizer("sgd", lr=0.1))
    assert step.kind == "jax.jit"
    x, t = bp_xp.to_device(hx, "jax:cpu"), bp_xp.to_device(ht, "jax:cpu")
    losses = [float(bp_xp.to_numpy(step(x, t))) for _ in range(3)]
    assert step.trace_count == 1

    for name in ("_native_conv2d", "_native_max_pool2d"):  # the reference: portable, NumPy, eager
        monkeypatch.setattr(bp_xp.layers.conv, name, lambda *args: None)
    reference = make("numpy")
    optimizer = bp_xp.optim.get_optimizer("sgd", lr=0.1)
    expected = []
    for _ in range(3):
        loss, grads = reference.loss_and_gradient(hx, ht)
        optimizer.update(reference.params, grads)
        expected.append(float(loss))
    np.testing.assert_allclose(losses, expected, rtol=1e-12)
    for key, value in reference.params.items():
        np.testing.assert_allclose(bp_xp.to_numpy(net.params[key]), value, rtol=1e-10, atol=1e-13)
