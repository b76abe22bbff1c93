"""A training step reads nothing back to the host: no hidden device synchronisation.

A GPU step that calls ``float()``, ``bool()``, ``.item()``, prints, or branches in Python
on an array value waits for the device every time. Without a GPU, two backends make
such a read visible:

- Dask is lazy: any read of a value runs a compute, which a ``dask.callbacks.Callback``
  counts. A step must run none, and its loss must stay a lazy Dask array.
- array_api_strict arrays on ``device1`` already refuse ``__array__``; here every other
  way to reach a value on the host (``__bool__``, ``__float__``, ``__int__``,
  ``__index__``, ``__complex__``, ``__dlpack__``, ``__iter__``, ``__repr__``...) is made to
  raise for the duration of the step.

On a CUDA machine, the same step also runs under ``torch.cuda.set_sync_debug_mode("error")``,
which makes PyTorch raise on any synchronising call.

These tests are backend-specific on purpose: each proves the property with what only
that backend can observe, so they do not run on the ``xb`` matrix.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import pytest

import bp_xp
from bp_xp import MultiLayerNet, TwoLayerNet

LR = 0.1

NETS: dict[str, Callable[..., object]] = {
    "two_layer": lambda **kw: TwoLayerNet(8, 5, 3, weight_init_std=0.5, **kw),
    "multi_relu_decay": lambda **kw: MultiLayerNet(8, [6, 5], 3, weight_decay_lambda=0.1, **kw),
    "multi_sigmoid": lambda **kw: MultiLayerNet(8, [6], 3, activation="sigmoid", **kw),
}


def _reassign(params, grads) -> None:
    for key in params:
        params[key] = params[key] - LR * grads[key]


def _updates() -> dict[str, Callable]:
    """Update rules to test: plain reassignment, and every bp_xp.optim optimizer."""
    rules: dict[str, Callable] = {"reassign": lambda: _reassign}
    try:
        from bp_xp import optim
    except ImportError:  # before bp_xp.optim existed, only reassignment was there to test
        return rules
    for name in optim.OPTIMIZERS:
        rules[name] = lambda name=name: optim.get_optimizer(name, lr=LR).update
    return rules


UPDATES = _updates()
# Every net with the two plain updates; the stateful optimizers on the book's net.
CASES = [(net, update) for net in NETS for update in ("reassign", "sgd") if update in UPDATES] + [
    ("two_layer", update) for update in UPDATES if update not in ("reassign", "sgd")]


def _batch(rng: np.random.Generator, n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    return rng.standard_normal((n, 8)), rng.integers(0, 3, size=n)


def _reference_step(net_name: str, update_name: str, hx, ht, steps: int = 2):
    """Loss and parameters after ``steps`` steps on NumPy float64: what the lazy step must give."""
    net = NETS[net_name](backend="numpy", dtype="float64", seed=0)
    update = UPDATES[update_name]()
    for _ in range(steps):
        grads = net.gradient(hx, ht)
        loss = float(net.last_layer.loss)
        update(net.params, grads)
    return loss, {k: np.array(v) for k, v in net.params.items()}


# --------------------------------------------------------------------------------------
# Dask: count computes
# --------------------------------------------------------------------------------------


@pytest.fixture
def compute_counter():
    """A Dask callback counting scheduler starts, on the local synchronous scheduler.

    The scheduler is pinned so that a distributed Client left as default elsewhere
    cannot bypass local callbacks.
    """
    dask = pytest.importorskip("dask")
    from dask.callbacks import Callback

    class ComputeCounter(Callback):
        def __init__(self) -> None:
            super().__init__()
            self.starts = 0

        def _start(self, dsk) -> None:
            self.starts += 1

    with dask.config.set(scheduler="sync"):
        yield ComputeCounter()


def _lane(net_name: str, update_name: str):
    """Every net's plain updates run in the fast lane; the stateful optimizers only in the slow
    one (each builds and runs Dask graphs for about half a second)."""
    slow = update_name not in ("reassign", "sgd")
    return pytest.param(net_name, update_name, id=f"{net_name}-{update_name}",
                        marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize(("net_name", "update_name"), [_lane(*case) for case in CASES])
def test_dask_step_runs_no_compute_and_keeps_the_loss_lazy(compute_counter, rng, net_name,
                                                           update_name):
    dask = pytest.importorskip("dask")
    da = pytest.importorskip("dask.array")
    hx, ht = _batch(rng)
    net = NETS[net_name](backend="dask", dtype="float64", seed=0)
    x = da.from_array(hx, chunks=(3, 8))  # two chunks: the batch axis is really split
    t = da.from_array(ht, chunks=3)
    update = UPDATES[update_name]()
    with compute_counter:
        for _ in range(2):
            grads = net.gradient(x, t)
            loss = net.last_layer.loss
            update(net.params, grads)
    assert compute_counter.starts == 0, f"the step ran {compute_counter.starts} Dask computes"
    assert isinstance(loss, da.Array) and loss.ndim == 0
    assert all(isinstance(v, da.Array) for v in net.params.values())

    expected_loss, expected_params = _reference_step(net_name, update_name, hx, ht)
    with compute_counter:  # asking for values is what computes, and the counter sees it
        value, *params = dask.compute(loss, *net.params.values())
    assert compute_counter.starts == 1
    assert float(value) == pytest.approx(expected_loss, rel=1e-10)
    for got, (key, expected) in zip(params, expected_params.items()):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, err_msg=key)


def test_the_compute_counter_catches_a_hidden_read(compute_counter, rng):
    """The Dask check can fail: a step that reads its loss (as a logger would) is caught."""
    pytest.importorskip("dask.array")
    hx, ht = _batch(rng)
    net = TwoLayerNet(8, 5, 3, backend="dask", dtype="float64", seed=0)
    x, t = bp_xp.to_device(hx, "dask"), bp_xp.to_device(ht, "dask")
    with compute_counter:
        net.gradient(x, t)
        if net.last_layer.loss > 0:  # a Python `if` on an array value
            pass
    assert compute_counter.starts == 1


# --------------------------------------------------------------------------------------
# array_api_strict: every host conversion raises during the step
# --------------------------------------------------------------------------------------

_CONVERSIONS = ("__bool__", "__int__", "__float__", "__complex__", "__index__", "__array__",
                "__dlpack__", "__iter__", "__repr__", "__str__", "__buffer__", "tolist", "item")


class HostReadError(AssertionError):
    """Raised by a patched array_api_strict conversion: the step read a value on the host."""


@contextlib.contextmanager
def _no_host_reads() -> Iterator[list[str]]:
    """array_api_strict arrays whose host conversions raise (and are recorded) inside."""
    strict = pytest.importorskip("array_api_strict")
    array_type = type(strict.asarray([0.0]))
    attempts: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        for name in _CONVERSIONS:
            if hasattr(array_type, name):
                patch.setattr(array_type, name, _refusing(name, attempts))
        yield attempts


def _refusing(name: str, attempts: list[str]) -> Callable:
    def refuse(self, *args, **kwargs):
        attempts.append(name)
        raise HostReadError(f"{name} was called on an array inside the training step")

    return refuse


@pytest.mark.parametrize(("net_name", "update_name"), CASES)
def test_strict_step_never_converts_an_array_to_a_host_value(rng, net_name, update_name):
    hx, ht = _batch(rng)
    backend = bp_xp.resolve_backend("array_api_strict:device1")
    net = NETS[net_name](backend=backend, dtype="float64", seed=0)
    x, t = backend.asarray(hx, dtype="float64"), backend.asarray(ht, dtype="int64")
    update = UPDATES[update_name]()
    with _no_host_reads() as attempts:
        for _ in range(2):
            grads = net.gradient(x, t)
            loss = net.last_layer.loss
            update(net.params, grads)
    assert attempts == []
    expected_loss, expected_params = _reference_step(net_name, update_name, hx, ht)
    assert float(bp_xp.to_numpy(loss)) == pytest.approx(expected_loss, rel=1e-10)
    for key, expected in expected_params.items():
        np.testing.assert_allclose(bp_xp.to_numpy(net.params[key]), expected, rtol=1e-10, atol=1e-12)


def test_the_strict_patch_catches_a_hidden_read(rng):
    """The strict check can fail: ``float(loss)`` inside the step raises and is recorded."""
    hx, ht = _batch(rng)
    backend = bp_xp.resolve_backend("array_api_strict:device1")
    net = TwoLayerNet(8, 5, 3, backend=backend, dtype="float64", seed=0)
    x, t = backend.asarray(hx, dtype="float64"), backend.asarray(ht, dtype="int64")
    with _no_host_reads() as attempts, pytest.raises(HostReadError, match="__float__"):
        net.gradient(x, t)
        float(net.last_layer.loss)
    assert attempts == ["__float__"]


# --------------------------------------------------------------------------------------
# CUDA: PyTorch's own synchronisation detector
# --------------------------------------------------------------------------------------


def test_torch_cuda_step_passes_sync_debug_mode_error(rng):
    """On a CUDA machine: the step under ``torch.cuda.set_sync_debug_mode("error")``.

    Data and parameters are moved to the GPU before the mode is set (copying host data
    to the device is the one synchronisation a step's inputs need, done once).
    """
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: torch.cuda.set_sync_debug_mode needs one")
    hx, ht = _batch(rng, n=64)
    backend = bp_xp.resolve_backend("torch:cuda")
    net = TwoLayerNet(8, 5, 3, weight_init_std=0.5, backend=backend, dtype="float32", seed=0)
    x, t = backend.asarray(hx, dtype="float32"), backend.asarray(ht, dtype="int64")
    updates = [UPDATES[name]() for name in UPDATES]
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for update in updates:
            grads = net.gradient(x, t)
            update(net.params, grads)
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    assert torch.isfinite(net.last_layer.loss).item()
