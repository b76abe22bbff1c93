"""The layer conformance harness: one set of generic checks that every layer is held to.

Like PyTorch's OpInfo database or Chainer's ``FunctionTestCase``, each layer *declares*
what it computes and on what (its :class:`~bp_xp.layers.Contract`: sample inputs and a
float64 NumPy reference, written next to its class with :func:`bp_xp.layers.contract`),
and the checks here are written once for all of them:

* ``forward``: each output equals the float64 reference at the dtype's tolerance, on the
  backend, device and dtype of the inputs (integer outputs exactly: no truncation);
* ``backward``: gradients of the inputs and parameters equal the numerical gradient of the
  *reference*, and ``torch.autograd``'s where the contract gives a PyTorch forward and
  PyTorch is installed; each has its input's shape and the dtype rule below; forward and
  backward leave the caller's arrays as they were;
* ``nan``: a NaN in any float input is NaN exactly where the reference's output is;
* ``backward_before_forward``: raises ``RuntimeError`` naming the layer;
* ``eval_backward``: after ``forward(x, train_flg=False)``, backward raises ``RuntimeError``
  instead of using an older training batch;
* ``failed_forward``: a forward that raises (refused samples, a string, an array of another
  backend) leaves the layer exactly as it was;
* ``mixed``: inputs or ``dout`` of another backend or device are refused with
  :class:`bp_xp.BackendMismatchError`.

The dtype rule (the Array API's type promotion, with NumPy's float semantics where the
standard leaves a case open): a gradient of a float input has that input's dtype, whatever
Python number ``dout`` is; a gradient of an integer input is floating (the dtype of the
float operands, else the backend's default float dtype, as the book's NumPy code gives
``[1.5, 2.]`` for ``MulLayer`` on ``[1, 2]``, ``[3, 4]`` and ``backward(0.5)``); a Python
number input gets a Python number.

Use it on your own layer with one call, inside a test that takes the matrix fixtures
(see ``docs/testing.md``)::

    def test_my_layer_meets_the_contract(xb, dtype):
        bp_xp.testing.check_layer(MyLayer, xb, dtype)
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import array_api_compat
import numpy as np

from .backends import (
    BackendMismatchError,
    BackendUnavailableError,
    backend_names,
    dtype_name,
    get_spec,
    resolve_backend,
    to_numpy,
)
from .layers._contract import Contract, Input, Sample, contracts_of

__all__ = ["CHECKS", "Contract", "Sample", "check_layer", "contracts", "registered_contracts"]

Array = Any

#: ``(rtol, atol)`` of gradients against the numerical gradient of the reference, per dtype.
GRAD_TOLERANCES: dict[str, tuple[float, float]] = {
    "float32": (2e-3, 2e-4),
    "float64": (1e-5, 1e-7),
}
#: ``(rtol, atol)`` of outputs against the float64 reference, per dtype.
OUT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float32": (1e-4, 1e-5),
    "float64": (1e-10, 1e-12),
}


# --------------------------------------------------------------------------------------
# which contracts exist
# --------------------------------------------------------------------------------------


def contracts(layer: Any) -> tuple[Contract, ...]:
    """The contracts of a layer class (or a :class:`Contract` itself, as a 1-tuple)."""
    if isinstance(layer, Contract):
        return (layer,)
    found = contracts_of(layer if isinstance(layer, type) else type(layer))
    if not found:
        raise TypeError(f"{getattr(layer, '__name__', layer)!r} declares no contract: decorate "
                        "the class with bp_xp.layers.contract(reference=..., samples=[...])")
    return found


def registered_contracts() -> list[Contract]:
    """Every contract declared on a layer class defined so far (bp_xp's and the user's)."""
    from .layers import registered_layers

    return [spec for cls in registered_layers().values() for spec in contracts_of(cls)]


# --------------------------------------------------------------------------------------
# samples: host values, backend values, references
# --------------------------------------------------------------------------------------


def _seed(spec: Contract, index: int, what: str) -> int:
    return zlib.crc32(f"{spec.name}/{index}/{what}".encode())


def _draw(item: Input, rng: np.random.Generator, dtype: str) -> np.ndarray:
    """A host array for ``item``: float values already rounded to ``dtype``."""
    host: np.ndarray
    if item.data is not None:
        host = np.asarray(item.data, dtype={"float": np.float64, "int": np.int64,
                                            "bool": np.bool_}[item.kind])
    elif item.kind == "int":
        host = rng.integers(int(item.low or 0), int(item.high or 1), size=item.shape)
    elif item.kind == "bool":
        host = rng.random(item.shape) > 0.5
    elif item.low is None:
        host = np.asarray(rng.standard_normal(item.shape))
    else:
        high = item.low + 1.0 if item.high is None else item.high
        host = np.asarray(rng.uniform(item.low, high, item.shape))
    if item.kind == "float" and item.away:
        host = np.where(host < 0, -1.0, 1.0) * (np.abs(host) + item.away)
    if item.kind == "float":
        host = host.astype(dtype).astype(np.float64)
        if item.special is not None and host.size:
            host = host.copy()
            host.flat[0] = float(item.special)
    return np.asarray(host)


@dataclasses.dataclass
class _Prepared:
    """One sample, drawn on the host (``args``, ``params``, ``dout``) for one dtype."""

    spec: Contract
    sample: Sample
    index: int
    dtype: str
    args: list[Any]  # np.ndarray or Python numbers
    params: dict[str, np.ndarray]
    dout: Any = None  # filled once the output shape is known

    def float64_args(self) -> list[Any]:
        return [a.astype(np.float64) if isinstance(a, np.ndarray) else float(a) for a in self.args]

    def reference(self, args: list[Any] | None = None, params: dict[str, Any] | None = None) -> Any:
        with np.errstate(all="ignore"):
            out = self.spec.reference(np, *(self.float64_args() if args is None else args),
                                      **(self.params if params is None else params))
        return out if self.all_numbers else np.asarray(out, dtype=np.float64)

    def on(self, xb: Any) -> tuple[Any, list[Any]]:
        """A fresh layer with the parameters on ``xb``, and the inputs on ``xb``."""
        layer = self.spec.build({k: xb.asarray(v, self.dtype) for k, v in self.params.items()})
        return layer, [_move(xb, a, self.dtype) for a in self.args]

    def dout_on(self, xb: Any) -> Any:
        return _move(xb, self.dout, self.dtype)

    @property
    def all_numbers(self) -> bool:
        return not self.params and not any(isinstance(a, np.ndarray) for a in self.args)



def _move(xb: Any, value: Any, dtype: str) -> Any:
    if not isinstance(value, np.ndarray):
        return value
    return xb.asarray(value, dtype if value.dtype.kind == "f" else None)


def _prepare(spec: Contract, index: int, sample: Sample, dtype: str) -> _Prepared:
    rng = np.random.default_rng(_seed(spec, index, dtype))
    args = [_draw(a, rng, dtype) if isinstance(a, Input) else a for a in sample.args]
    params = {k: _draw(v, rng, dtype) for k, v in spec.params.items()}
    prepared = _Prepared(spec, sample, index, dtype, args, params)
    if sample.raises is None:
        if isinstance(sample.dout, Input):
            prepared.dout = _draw(sample.dout, rng, dtype)
        elif sample.dout is not None:
            prepared.dout = sample.dout
        else:
            out = prepared.reference()
            if isinstance(out, np.ndarray):
                drawn = np.asarray(rng.standard_normal(out.shape))
                prepared.dout = drawn.astype(dtype).astype(np.float64)
            else:
                prepared.dout = 0.75
    return prepared


def _samples(spec: Contract, dtype: str, *, refused: bool = False) -> Iterator[_Prepared]:
    for index, sample in enumerate(spec.samples):
        if (sample.raises is not None) == refused:
            yield _prepare(spec, index, sample, dtype)


def _label(p: _Prepared) -> str:
    return f"{p.spec.name} sample {p.index}{' (' + p.sample.name + ')' if p.sample.name else ''}"


def _forward(layer: Any, p: _Prepared, args: list[Any], train: bool | None = None) -> Any:
    kwargs = dict(p.sample.kwargs)
    if train is not None:
        kwargs["train_flg"] = train
    with _quiet(p):
        return layer.forward(*args, **kwargs)


def _backward(layer: Any, p: _Prepared, dout: Any) -> Any:
    with _quiet(p):
        return layer.backward(dout)


def _quiet(p: _Prepared) -> Any:
    """NumPy's own warnings at IEEE edges (``1/0``, ``log(0)``) are not the layer's doing:
    silenced for samples at an edge, kept (as errors, in bp_xp's suite) everywhere else."""
    return np.errstate(all="ignore") if not p.sample.smooth else contextlib.nullcontext()


def _grads(layer: Any, p: _Prepared, result: Any) -> dict[Any, Any]:
    """``{input position or parameter name: gradient}`` from ``backward``'s result."""
    if len(p.spec.grads_for) == 1:
        result = (result,)
    if not isinstance(result, tuple) or len(result) != len(p.spec.grads_for):
        raise AssertionError(f"{_label(p)}: backward returned {type(result).__name__}, expected "
                             f"{len(p.spec.grads_for)} gradient(s) for inputs {p.spec.grads_for}")
    grads: dict[Any, Any] = dict(zip(p.spec.grads_for, result))
    grads.update({name: getattr(layer, "grads", {}).get(name) for name in p.params})
    return grads


# --------------------------------------------------------------------------------------
# references of the gradient: numerical (of the reference) and torch.autograd
# --------------------------------------------------------------------------------------


_HOST_CACHE: dict[tuple[Any, ...], Any] = {}


def _cached(kind: str, p: _Prepared, compute: Callable[[_Prepared], Any]) -> Any:
    """Host-side references depend only on the contract, the sample and the dtype, not on
    the matrix row: computed once per session."""
    key = (kind, id(p.spec), p.index, p.dtype)
    if key not in _HOST_CACHE:
        _HOST_CACHE[key] = (p.spec, compute(p))  # holding spec keeps its id unique
    return _HOST_CACHE[key][1]


def _numerical_grads(p: _Prepared, h: float = 1e-6) -> dict[Any, Any]:
    """Central differences of ``sum(reference * dout)`` for each input and parameter."""
    args = p.float64_args()
    params = {k: v.astype(np.float64) for k, v in p.params.items()}
    dout = np.asarray(p.dout, dtype=np.float64)

    def f(a: list[Any], q: dict[str, Any]) -> float:
        return float(np.sum(np.asarray(p.reference(a, q), dtype=np.float64) * dout))

    out: dict[Any, Any] = {}
    for pos in p.spec.grads_for:
        if not isinstance(args[pos], np.ndarray):
            plus, minus = list(args), list(args)
            plus[pos], minus[pos] = args[pos] + h, args[pos] - h
            out[pos] = (f(plus, params) - f(minus, params)) / (2 * h)
            continue
        grad = np.zeros_like(args[pos])
        for i in range(grad.size):
            for sign in (1, -1):
                moved = list(args)
                moved[pos] = args[pos].copy()
                moved[pos].flat[i] += sign * h
                grad.flat[i] += sign * f(moved, params) / (2 * h)
        out[pos] = grad
    for name, value in params.items():
        grad = np.zeros_like(value)
        for i in range(grad.size):
            for sign in (1, -1):
                moved_params = dict(params)
                moved_params[name] = value.copy()
                moved_params[name].flat[i] += sign * h
                grad.flat[i] += sign * f(args, moved_params) / (2 * h)
        out[name] = grad
    return out


def _torch_module() -> Any:
    """PyTorch, whose ``torch.autograd`` is the second reference of the gradients, where it
    is installed (``None`` elsewhere); found through the backend registry, which knows the
    module to import, so that no module outside ``bp_xp/backends`` imports an array library."""
    spec = get_spec("torch")
    if spec is None or importlib.util.find_spec(spec.module) is None:
        return None
    return importlib.import_module(spec.module)


def _torch_grads(p: _Prepared) -> dict[Any, Any] | None:
    """``torch.autograd``'s gradients in float64, or ``None`` without PyTorch or a reference."""
    torch = _torch_module()
    if p.spec.torch_reference is None or torch is None:
        return None

    def tensor(value: Any) -> Any:
        return torch.tensor(np.asarray(value, dtype=np.float64), requires_grad=True)

    args = [tensor(a) for a in p.float64_args()]
    params = {k: tensor(v) for k, v in p.params.items()}
    out = p.spec.torch_reference(torch, *args, **params)
    out.backward(torch.broadcast_to(torch.as_tensor(np.asarray(p.dout, dtype=np.float64)),
                                    out.shape))
    grads: dict[Any, Any] = {pos: args[pos].grad.numpy() for pos in p.spec.grads_for}
    grads.update({k: v.grad.numpy() for k, v in params.items()})
    return grads


# --------------------------------------------------------------------------------------
# comparisons
# --------------------------------------------------------------------------------------


def _default_float(xb: Any) -> Any:
    info = xb.xp.__array_namespace_info__()
    return info.default_dtypes(device=xb.device)["real floating"]


def _check_value(xb: Any, what: str, actual: Any, expected: Any, dtype: Any,
                 tolerances: dict[str, tuple[float, float]]) -> None:
    """``actual`` (an array on ``xb``, or a Python number) against a float64 host value."""
    if isinstance(expected, np.ndarray) or dtype is not None:
        expected = np.asarray(expected, dtype=np.float64)
        _check_placement(xb, what, actual, dtype, expected.shape)
        with np.errstate(all="ignore"):  # a lazy (Dask) array computes here, inf samples too
            host = to_numpy(actual)
        if host.dtype.kind in "iub":
            np.testing.assert_array_equal(host, expected, err_msg=what)
            return
        rtol, atol = tolerances[dtype_name(actual.dtype)]
        np.testing.assert_allclose(host.astype(np.float64), expected, rtol=rtol, atol=atol,
                                   err_msg=what)
        return
    if array_api_compat.is_array_api_obj(actual) or not isinstance(actual, (int, float)):
        raise AssertionError(f"{what}: Python numbers in give a Python number out, got "
                             f"{type(actual).__name__} {actual!r:.60}")
    rtol, atol = tolerances["float64"]
    np.testing.assert_allclose(float(actual), float(expected), rtol=rtol, atol=atol, err_msg=what)


def _check_placement(xb: Any, what: str, actual: Any, dtype: Any, shape: tuple[int, ...]) -> None:
    """``actual`` is an array of ``xb``'s backend and device, of ``dtype`` and ``shape``."""
    if not array_api_compat.is_array_api_obj(actual):
        raise AssertionError(f"{what}: expected an array of {xb.backend}, got "
                             f"{type(actual).__name__} {actual!r:.60}")
    try:
        xb.assert_on_backend(actual)
    except AssertionError as exc:
        raise AssertionError(f"{what}: {exc}") from None
    allowed = dtype if isinstance(dtype, tuple) else (dtype,)
    if dtype is not None and actual.dtype not in allowed:
        raise AssertionError(f"{what}: dtype {dtype_name(actual.dtype)}, expected "
                             f"{' or '.join(dtype_name(d) for d in allowed)}")
    if tuple(actual.shape) != tuple(shape):
        raise AssertionError(f"{what}: shape {tuple(actual.shape)}, expected {tuple(shape)}")


def _out_dtype(xb: Any, p: _Prepared, out: Any) -> Any:
    """The dtype the forward output must have; ``None`` for a Python-number output."""
    if p.all_numbers:
        return None
    arrays = [a for a in p.args if isinstance(a, np.ndarray)] + list(p.params.values())
    if any(a.dtype.kind == "f" for a in arrays):
        return xb.dtype(p.dtype)
    if array_api_compat.is_array_api_obj(out) and xb.xp.isdtype(out.dtype, "integral"):
        return out.dtype  # integer in, integer out: the values are checked exactly
    return _default_float(xb)


def _grad_dtype(xb: Any, p: _Prepared, out: Any) -> Any:
    """The dtype every array gradient must have (see the module's dtype rule): the row's
    float dtype where a float array went in; else the promotion of ``dout`` with a floating
    output; else the output's float dtype, or the default float dtype for an integer output."""
    arrays = [a for a in p.args if isinstance(a, np.ndarray)] + list(p.params.values())
    if any(a.dtype.kind == "f" for a in arrays):
        return xb.dtype(p.dtype)
    floating_out = (array_api_compat.is_array_api_obj(out)
                    and xb.xp.isdtype(out.dtype, "real floating"))
    if isinstance(p.dout, np.ndarray):  # dout's dtype, or wider where the output is wider
        dout = xb.dtype(p.dtype)
        return (dout, xb.xp.result_type(dout, out.dtype)) if floating_out else dout
    return out.dtype if floating_out else _default_float(xb)


# --------------------------------------------------------------------------------------
# the checks
# --------------------------------------------------------------------------------------


def check_forward(spec: Contract, xb: Any, dtype: str) -> None:
    """Every sample's output against the float64 reference, on the right backend and dtype."""
    for p in _samples(spec, dtype):
        layer, args = p.on(xb)
        out = _forward(layer, p, args)
        expected = p.reference()
        _check_value(xb, f"{_label(p)}: forward", out, expected, _out_dtype(xb, p, out),
                     OUT_TOLERANCES)


def check_backward(spec: Contract, xb: Any, dtype: str) -> None:
    """One forward and backward per sample, held to three references at once:

    * the gradients of the inputs and parameters equal the numerical gradient of the float64
      reference, in each input's shape, by the dtype rule;
    * they equal ``torch.autograd``'s, where the contract has a PyTorch forward and PyTorch
      is installed;
    * the caller's inputs, ``dout`` and the parameters are as they were before the calls.
    """
    for p in _samples(spec, dtype):
        layer, args = p.on(xb)
        params = dict(getattr(layer, "params", {}))
        dout = p.dout_on(xb)
        before = [_host(a) for a in (*args, dout, *params.values())]
        out = _forward(layer, p, args)
        grads = _grads(layer, p, _backward(layer, p, dout))
        expected = _cached("numerical", p, _numerical_grads) if p.sample.smooth else None
        autograd = _cached("torch", p, _torch_grads) if p.sample.smooth else None
        for key, grad in grads.items():
            what = f"{_label(p)}: gradient of {'input ' + str(key) if isinstance(key, int) else key}"
            is_number = isinstance(key, int) and not isinstance(p.args[key], np.ndarray)
            want_dtype = None if is_number else _grad_dtype(xb, p, out)
            if expected is None:
                if not is_number:  # at least placement, shape and dtype
                    shape = (p.args[key] if isinstance(key, int) else p.params[key]).shape
                    _check_placement(xb, what, grad, want_dtype, shape)
                continue
            _check_value(xb, what, grad, expected[key], want_dtype, GRAD_TOLERANCES)
            if autograd is not None:
                _check_value(xb, f"{what} (against torch.autograd)", grad,
                             float(autograd[key]) if is_number else autograd[key], want_dtype,
                             GRAD_TOLERANCES)
        names = [f"input {i}" for i in range(len(args))] + ["dout"] + [
            f"parameter {k}" for k in params]
        for name, value, old in zip(names, (*args, dout, *params.values()), before):
            if old is not None:
                np.testing.assert_array_equal(_host(value), old,
                                              err_msg=f"{_label(p)}: {name} was changed")


def _host(value: Any) -> Any:
    """A host copy of an array (``None`` for a Python number)."""
    if not array_api_compat.is_array_api_obj(value):
        return None
    with np.errstate(all="ignore"):
        return to_numpy(value)


def check_nan(spec: Contract, xb: Any, dtype: str) -> None:
    """A NaN in each float input (one at a time) shows up where the reference puts NaN."""
    for p in _samples(spec, dtype):
        for pos, value in enumerate(p.args):
            if not (isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.size):
                continue
            poisoned = value.copy()
            poisoned.flat[value.size // 2] = np.nan
            q = dataclasses.replace(p, args=[*p.args[:pos], poisoned, *p.args[pos + 1:]])
            layer, args = q.on(xb)
            with np.errstate(all="ignore"):
                out = _forward(layer, q, args)
            _check_value(xb, f"{_label(p)}: forward with a NaN in input {pos}", out,
                         q.reference(), _out_dtype(xb, q, out), OUT_TOLERANCES)
        return  # the first sample with float inputs is enough


def check_backward_before_forward(spec: Contract, xb: Any, dtype: str) -> None:
    """``backward`` on a fresh layer raises ``RuntimeError`` naming the layer."""
    for p in _samples(spec, dtype):
        layer, _ = p.on(xb)
        _expect(RuntimeError, f"{_label(p)}: backward before forward", layer.backward,
                p.dout_on(xb), words=(type(layer).__name__, "forward"))
        return


def check_eval_backward(spec: Contract, xb: Any, dtype: str) -> None:
    """After an eval-mode forward, ``backward`` raises instead of using an older batch."""
    if not spec.train_flg:
        return
    for p in _samples(spec, dtype):
        layer, args = p.on(xb)
        _forward(layer, p, args, train=True)
        _forward(layer, p, args, train=False)
        _expect(RuntimeError, f"{_label(p)}: backward after an eval-mode forward", layer.backward,
                p.dout_on(xb), words=(type(layer).__name__, "train_flg"))
        return


def check_failed_forward(spec: Contract, xb: Any, dtype: str) -> None:
    """A forward that raises leaves the layer as it was: the next backward answers for the
    last forward that succeeded."""
    good = next(_samples(spec, dtype), None)
    if good is None:
        return
    layer, args = good.on(xb)
    _forward(layer, good, args)
    snapshot = _snapshot(layer)
    bad_calls: list[tuple[str, list[Any], type[BaseException]]] = []
    for p in _samples(spec, dtype, refused=True):
        assert p.sample.raises is not None
        bad_calls.append((_label(p), [_move(xb, a, dtype) for a in p.args], p.sample.raises))
    bad_calls.append(("a str as input 0", ["not an array", *args[1:]], TypeError))
    other = _other_backend(xb)
    if other is not None and _mixable(good):
        pos = _first_array(good)
        moved = list(args)
        moved[pos] = other.asarray(good.args[pos], dtype=dtype if good.args[pos].dtype.kind == "f"
                                   else None)
        bad_calls.append((f"input {pos} on {other}", moved, BackendMismatchError))
    for what, bad, error in bad_calls:
        _expect(error, f"{spec.name}: forward with {what}", _forward, layer, good, bad)
        changed = _changes(snapshot, _snapshot(layer))
        if changed:
            raise AssertionError(f"{spec.name}: a forward with {what} raised but changed "
                                 f"{', '.join(changed)}")
    expected = _grads(*_fresh_backward(good, xb))
    got = _grads(layer, good, _backward(layer, good, good.dout_on(xb)))
    for key, grad in got.items():
        want = expected[key]
        _check_value(xb, f"{spec.name}: backward after failed forwards, gradient of {key}", grad,
                     to_numpy(want) if array_api_compat.is_array_api_obj(want) else want,
                     None if not array_api_compat.is_array_api_obj(grad) else grad.dtype,
                     OUT_TOLERANCES)


def check_mixed(spec: Contract, xb: Any, dtype: str) -> None:
    """An input or ``dout`` of another backend or device is a ``BackendMismatchError``."""
    other = _other_backend(xb)
    if other is None:
        return
    for p in _samples(spec, dtype):
        if p.all_numbers:
            continue
        if _mixable(p):
            pos = _first_array(p)
            layer, args = p.on(xb)
            args[pos] = other.asarray(p.args[pos], dtype=dtype if p.args[pos].dtype.kind == "f"
                                      else None)
            _expect(BackendMismatchError, f"{_label(p)}: input {pos} on {other}", _forward,
                    layer, p, args)
        if isinstance(p.dout, np.ndarray):
            layer, args = p.on(xb)
            _forward(layer, p, args)
            _expect(BackendMismatchError, f"{_label(p)}: dout on {other}", layer.backward,
                    other.asarray(p.dout, dtype=dtype))
        return


#: Every generic check by name: ``tests/test_conformance.py`` runs each on every contract.
CHECKS: dict[str, Callable[[Contract, Any, str], None]] = {
    "forward": check_forward,
    "backward": check_backward,
    "nan": check_nan,
    "backward_before_forward": check_backward_before_forward,
    "eval_backward": check_eval_backward,
    "failed_forward": check_failed_forward,
    "mixed": check_mixed,
}


def check_layer(layer: Any, xb: Any, dtype: str, checks: Any = None) -> None:
    """Hold ``layer`` (a class with a declared contract, or a :class:`Contract`) to every
    check of :data:`CHECKS` (or those named in ``checks``) on the matrix row ``xb`` at ``dtype``.

    Raises ``AssertionError`` naming the contract, the sample and what differed.
    """
    for spec in contracts(layer):
        for name in CHECKS if checks is None else checks:
            CHECKS[name](spec, xb, dtype)


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def _expect(error: type[BaseException], what: str, call: Callable[..., Any], *args: Any,
            words: tuple[str, ...] = ()) -> None:
    try:
        call(*args)
    except error as exc:
        message = str(exc)
        missing = [w for w in words if w not in message]
        if missing:
            raise AssertionError(f"{what}: the {type(exc).__name__} does not name "
                                 f"{', '.join(missing)}: {message}") from exc
        return
    except Exception as exc:  # noqa: BLE001 - reported as the failure it is
        raise AssertionError(f"{what}: expected {error.__name__}, got {type(exc).__name__}: "
                             f"{exc}") from exc
    raise AssertionError(f"{what}: expected {error.__name__}, nothing was raised")


def _snapshot(layer: Any) -> dict[str, Any]:
    """The layer's attributes by identity (dicts of arrays one level deep); a NumPy random
    generator by its state, which a forward that raised must not have advanced."""
    snap: dict[str, Any] = {}
    for key, value in vars(layer).items():
        if isinstance(value, np.random.Generator):
            snap[key] = repr(value.bit_generator.state)
        else:
            snap[key] = dict(value) if isinstance(value, dict) else value
    return snap


def _changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    changed = []
    for key in old.keys() | new.keys():
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            if a.keys() != b.keys() or any(a[k] is not b[k] for k in a):
                changed.append(key)
        elif isinstance(a, str) and isinstance(b, str):
            if a != b:
                changed.append(key)
        elif a is not b:
            changed.append(key)
    return sorted(changed)


def _fresh_backward(p: _Prepared, xb: Any) -> tuple[Any, _Prepared, Any]:
    layer, args = p.on(xb)
    _forward(layer, p, args)
    return layer, p, _backward(layer, p, p.dout_on(xb))


def _first_array(p: _Prepared) -> int:
    return next(i for i, a in enumerate(p.args) if isinstance(a, np.ndarray))


def _mixable(p: _Prepared) -> bool:
    """Whether an input of another backend meets another array in forward (a parameter or
    a second array input), so that forward itself must refuse it."""
    arrays = [a for a in p.args if isinstance(a, np.ndarray)]
    return bool(arrays) and (len(arrays) > 1 or bool(p.params))


_OTHERS: dict[tuple[str, str], Any] = {}


def _other_backend(xb: Any) -> Any:
    """Another device of the row's backend where it has one (a device mismatch), else another
    installed backend (a backend mismatch); ``None`` when there is neither. Found once per row."""
    key = (xb.backend.name, repr(xb.device))
    if key not in _OTHERS:
        _OTHERS[key] = _find_other(xb)
    return _OTHERS[key]


def _find_other(xb: Any) -> Any:
    spec = get_spec(xb.backend.name)
    if spec is not None:
        for device in spec.devices():
            if device != xb.device:
                try:
                    return resolve_backend(xb.backend.name, spec.format_device(device))
                except BackendUnavailableError:
                    continue
    for name in backend_names():
        if name != xb.backend.name:
            try:
                return resolve_backend(name)
            except BackendUnavailableError:
                continue
    return None
