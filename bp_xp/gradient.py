"""Numerical gradients by central differences, and the gradient check of a network.

The book's ``numerical_gradient(f, x)`` writes ``x[idx] = tmp + h`` into the parameter
itself, and its idiom ``numerical_gradient(lambda W: net.loss(x, t), net.params["W1"])``
relies on that: ``f`` ignores its argument and reads the perturbed array through the
network. bp_xp does the same where the array can be written in place (writeable NumPy
arrays, torch tensors without ``requires_grad``, CuPy arrays) and restores every element
bit for bit, also when ``f`` raises. Where it cannot (JAX, Dask, array-api-strict,
read-only arrays), ``f`` receives a perturbed *copy* as its argument (made on a private
float64 host copy), and nothing the caller owns is written. Each evaluation reads a
number back from the device: these functions are for checking, never for training.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np  # host-side only: the private copy that is perturbed, and error norms

from ._checks import require_array
from ._inplace import copy_into, mutable
from .backends import BackendUnavailableError, backend_of, dtype_name, namespace_of, to_numpy

__all__ = ["gradient_check", "numerical_gradient", "relative_error"]

Array = Any


def numerical_gradient(f: Callable[[Array], Any], x: Array, h: float = 1e-4) -> Array:
    """Central-difference gradient ``(f(x + h e_i) - f(x - h e_i)) / 2h`` of a scalar ``f``.

    Parameters
    ----------
    f : callable
        Takes an array shaped like ``x`` (same backend, device and dtype) and returns a
        scalar (Python number or 0-d array). Where ``x`` is mutable, ``f`` receives ``x``
        itself, perturbed in place, so the book's ``lambda W: net.loss(x, t)`` works;
        elsewhere it receives a perturbed copy and must use its argument (the book's
        idiom then gives zeros, with a warning; use ``net.numerical_gradient(x, t)``).
    x : array of a real floating dtype
        An integer ``x`` is refused (``TypeError``): ``x + h`` cannot be represented,
        and the result would be garbage, not a gradient. Cast it first.
    h : float

    Returns
    -------
    array
        Same shape, backend, device and dtype as ``x``. ``x`` holds its original values
        afterwards, bit for bit (it was perturbed in place during the call only where it
        is mutable).

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.gradient import numerical_gradient
    >>> numerical_gradient(lambda v: (v ** 2).sum(), np.array([3.0, 4.0])).round(6)
    array([6., 8.])
    """
    backend = backend_of(x)
    if not backend.xp.isdtype(x.dtype, "real floating"):
        raise TypeError(
            f"numerical_gradient: x has dtype {dtype_name(x.dtype)}; central differences need "
            f"a real floating dtype (x + h with h={h!r} is not representable), e.g. "
            f"xp.astype(x, xp.float64)"
        )
    in_place = mutable(x)
    grad = _in_place(f, x, h) if in_place else _on_a_copy(f, x, h)
    if grad.size > 1 and not grad.any():
        hint = ("x was perturbed in place" if in_place else
                f"x is a {backend.name} array, which is not written in place, so the book's "
                "`lambda W: net.loss(x, t)` (which relies on in-place aliasing) cannot see the "
                "perturbation; use net.numerical_gradient(x, t)")
        warnings.warn(
            f"numerical_gradient: f did not change at all when x was perturbed; does f use its "
            f"argument? ({hint})",
            RuntimeWarning,
            stacklevel=2,
        )
    return backend.asarray(grad, dtype=x.dtype)


def _on_a_copy(f: Callable[[Array], Any], x: Array, h: float) -> np.ndarray:
    """Central differences on a private float64 host copy, handed to ``f`` as new arrays."""
    backend = backend_of(x)
    point = np.array(to_numpy(x), dtype=np.float64, copy=True)
    grad = np.zeros_like(point)
    for idx in np.ndindex(point.shape):
        centre = point[idx]
        point[idx] = centre + h
        f_plus = float(f(backend.asarray(point, dtype=x.dtype)))
        point[idx] = centre - h
        f_minus = float(f(backend.asarray(point, dtype=x.dtype)))
        point[idx] = centre
        grad[idx] = (f_plus - f_minus) / (2 * h)
    return grad


def _in_place(f: Callable[[Array], Any], x: Array, h: float) -> np.ndarray:
    """The book's loop: perturb ``x[idx]`` in place, evaluate ``f(x)``, put it back.

    Every element is restored from a host copy of its original value (exact: a float32
    value round-trips through a Python float), and the whole array once more if ``f``
    raises or the loop is interrupted.
    """
    original = to_numpy(x)
    grad = np.zeros(original.shape, dtype=np.float64)
    try:
        for idx in np.ndindex(original.shape):
            centre = float(original[idx])
            x[idx] = centre + h
            f_plus = float(f(x))
            x[idx] = centre - h
            f_minus = float(f(x))
            x[idx] = centre
            grad[idx] = (f_plus - f_minus) / (2 * h)
    except BaseException:
        copy_into(x, backend_of(x).asarray(original, dtype=x.dtype))
        raise
    return grad


def relative_error(a: Array, b: Array) -> float:
    """``||a - b|| / (||a|| + ||b||)`` on the host in float64 (0.0 when both are zero).

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.gradient import relative_error
    >>> relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    0.0
    """
    a64 = to_numpy(a).astype(np.float64)
    b64 = to_numpy(b).astype(np.float64)
    scale = np.linalg.norm(a64) + np.linalg.norm(b64)
    return 0.0 if scale == 0 else float(np.linalg.norm(a64 - b64) / scale)


def gradient_check(net: Any, x: Array, t: Array, h: float = 1e-5) -> dict[str, float]:
    """Relative error between backprop and numerical gradients, per parameter.

    Runs on a float64 copy of ``net`` on the same backend and device (float32 central
    differences are too coarse to tell a bug from rounding), falling back to the net's
    own dtype where the device has no float64, with a warning. ``net``, ``x`` and ``t``
    are left unchanged.

    Parameters
    ----------
    net
        A network with ``to(dtype=...)``, ``gradient`` and ``numerical_gradient``
        (:class:`bp_xp.TwoLayerNet`, :class:`bp_xp.MultiLayerNet`).
    x, t : arrays on the net's backend
        Keep the batch and the net small: this evaluates the loss twice per parameter.
        Arrays of another backend or device raise :class:`bp_xp.BackendMismatchError`.

    Returns
    -------
    dict
        ``{"W1": 3.1e-10, ...}``; below about 1e-7 in float64 means the gradients agree.

    Examples
    --------
    >>> import numpy as np, bp_xp
    >>> net = bp_xp.TwoLayerNet(4, 5, 3, weight_init_std=1.0, seed=0)
    >>> x = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    >>> errors = bp_xp.gradient_check(net, x, np.array([0, 2]))
    >>> max(errors.values()) < 1e-7
    True
    """
    for name, value in (("x", x), ("t", t)):
        require_array(value, "gradient_check", name, f"an array on the network's backend "
                      f"({net.backend})")
    first = next(iter(net.params.values()), None)
    if first is not None:  # mixed backends fail here, naming both, not deep inside net.to
        namespace_of(first, x, t, names=("the network's parameters", "x", "t"))
    try:
        checked = net.to(dtype="float64")
        dtype = checked.dtype
    except BackendUnavailableError:
        warnings.warn(
            f"gradient_check: {net.backend} has no float64; checking in {net.dtype}, where "
            "relative errors of 1e-2 are rounding, not bugs",
            RuntimeWarning,
            stacklevel=2,
        )
        checked, dtype = net, net.dtype
    xp = checked.backend.xp
    x = xp.astype(x, dtype)
    if t.ndim == 2 and xp.isdtype(t.dtype, "real floating"):  # one-hot labels
        t = xp.astype(t, dtype)
    backprop = checked.gradient(x, t)
    numeric = checked.numerical_gradient(x, t, h=h)
    return {key: relative_error(backprop[key], numeric[key]) for key in backprop}
