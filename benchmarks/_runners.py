"""The implementations that are timed, each set up on a :class:`~_problems.Problem` as a runner.

A runner (:class:`Runner`) does one training step or one forward pass, finished on the
device, and can report its loss, gradients and parameters for the correctness checks.
:func:`implementations` lists the rows of a table, baseline first.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

import bp_xp
from _book import BookNet
from _problems import Problem
from bp_xp import to_numpy

__all__ = ["EXCLUDED", "BookRunner", "BpXpRunner", "Implementation", "JaxJitRunner", "Runner",
           "TorchEagerRunner", "implementations"]


class Runner(Protocol):
    """What the timing loop needs from an implementation set up on a :class:`Problem`."""

    def step(self) -> None:
        """One training step (forward, backward, SGD update), finished on the device."""

    def predict(self) -> None:
        """Logits of the batch, finished on the device."""

    def reset(self) -> None:
        """Back to the problem's initial parameters (untimed)."""

    def loss_and_grads(self) -> tuple[float, dict[str, np.ndarray]]:
        """Loss and gradients at the current parameters, on the host."""

    def params(self) -> dict[str, np.ndarray]:
        """The current parameters on the host, ``W`` of shape ``(in, out)``."""


class BookRunner:
    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.x, self.t = problem.x.copy(), problem.t.copy()
        self.reset()

    def reset(self) -> None:
        self.net = BookNet({k: v.copy() for k, v in self.problem.params.items()})

    def step(self) -> None:
        grads = self.net.gradient(self.x, self.t)
        for key in self.net.params:
            self.net.params[key] -= self.problem.lr * grads[key]

    def predict(self) -> None:
        self.net.predict(self.x)

    def loss_and_grads(self) -> tuple[float, dict[str, np.ndarray]]:
        grads = self.net.gradient(self.x, self.t)
        return float(self.net.last_layer.forward(self.net.predict(self.x), self.t)), grads

    def params(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.net.params.items()}


def _sync_for(backend: Any) -> Callable[[Sequence[Any]], None]:
    """A function that waits until the given arrays are computed (asynchronous backends)."""
    if backend.name == "jax":
        import jax

        return jax.block_until_ready
    if backend.name == "cupy":
        device = backend.device
        return lambda arrays: device.synchronize()
    if backend.name == "torch" and backend.device.type == "cuda":
        import torch

        device = backend.device
        return lambda arrays: torch.cuda.synchronize(device)
    return lambda arrays: None


class BpXpRunner:
    def __init__(self, problem: Problem, backend: str) -> None:
        self.problem = problem
        self.backend = bp_xp.resolve_backend(backend)
        sizes = problem.net.sizes
        if len(sizes) == 3:
            self.net = bp_xp.TwoLayerNet(*sizes, backend=self.backend, dtype=problem.dtype)
        else:
            self.net = bp_xp.MultiLayerNet(sizes[0], sizes[1:-1], sizes[-1], backend=self.backend,
                                          dtype=problem.dtype)
        self.x = self.backend.asarray(problem.x)
        self.t = self.backend.asarray(problem.t)
        self._sync = _sync_for(self.backend)
        self.reset()

    def reset(self) -> None:
        # The problem's weights, laid out as bp_xp lays out the weights it creates
        # (column-major on PyTorch, as torch.nn.Linear; unchanged elsewhere).
        for key, value in self.problem.params.items():
            self.net.params[key] = bp_xp.backends.matmul_layout(self.backend.asarray(value))
        self._sync(list(self.net.params.values()))

    def step(self) -> None:
        params, lr = self.net.params, self.problem.lr
        grads = self.net.gradient(self.x, self.t)
        for key in grads:
            params[key] = params[key] - lr * grads[key]
        self._sync(list(params.values()))

    def predict(self) -> None:
        self._sync(self.net.predict(self.x))

    def loss_and_grads(self) -> tuple[float, dict[str, np.ndarray]]:
        grads = self.net.gradient(self.x, self.t)
        return float(to_numpy(self.net.loss(self.x, self.t))), {k: to_numpy(g) for k, g in grads.items()}

    def params(self) -> dict[str, np.ndarray]:
        return {k: np.array(to_numpy(v)) for k, v in self.net.params.items()}


class TorchEagerRunner:
    def __init__(self, problem: Problem, device: str, optimizer: bool) -> None:
        import torch

        self.problem, self.optimizer = problem, optimizer
        self.device = torch.device(device)
        self.dtype = getattr(torch, problem.dtype)
        blocks: list[Any] = []
        count = len(problem.net.sizes) - 1
        for i, (fan_in, fan_out) in enumerate(zip(problem.net.sizes[:-1], problem.net.sizes[1:]), 1):
            blocks.append(torch.nn.Linear(fan_in, fan_out, device=self.device, dtype=self.dtype))
            if i < count:
                blocks.append(torch.nn.ReLU())
        self.model = torch.nn.Sequential(*blocks)
        self.linears = [m for m in self.model if isinstance(m, torch.nn.Linear)]
        self.x = torch.tensor(problem.x, device=self.device)
        self.t = torch.tensor(problem.t, device=self.device)
        self.reset()

    def reset(self) -> None:
        import torch

        with torch.no_grad():
            for i, linear in enumerate(self.linears, start=1):
                linear.weight.copy_(torch.from_numpy(self.problem.params[f"W{i}"].T.copy()))
                linear.bias.copy_(torch.from_numpy(self.problem.params[f"b{i}"]))
        self.sgd = torch.optim.SGD(self.model.parameters(), lr=self.problem.lr)
        self._sync()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)

    def _loss(self) -> Any:
        import torch.nn.functional as F

        return F.cross_entropy(self.model(self.x), self.t)

    def step(self) -> None:
        import torch

        if self.optimizer:
            self.sgd.zero_grad(set_to_none=True)
            self._loss().backward()
            self.sgd.step()
        else:
            for p in self.model.parameters():
                p.grad = None
            self._loss().backward()
            with torch.no_grad():
                for p in self.model.parameters():
                    p.add_(p.grad, alpha=-self.problem.lr)
        self._sync()

    def predict(self) -> None:
        import torch

        with torch.no_grad():
            self.model(self.x)
        self._sync()

    def loss_and_grads(self) -> tuple[float, dict[str, np.ndarray]]:
        self.model.zero_grad(set_to_none=True)
        loss = self._loss()
        loss.backward()
        grads = {}
        for i, linear in enumerate(self.linears, start=1):
            grads[f"W{i}"] = linear.weight.grad.detach().cpu().numpy().T.copy()
            grads[f"b{i}"] = linear.bias.grad.detach().cpu().numpy().copy()
        self.model.zero_grad(set_to_none=True)
        return float(loss.detach().cpu()), grads

    def params(self) -> dict[str, np.ndarray]:
        out = {}
        for i, linear in enumerate(self.linears, start=1):
            out[f"W{i}"] = linear.weight.detach().cpu().numpy().T.copy()
            out[f"b{i}"] = linear.bias.detach().cpu().numpy().copy()
        return out


class JaxJitRunner:
    def __init__(self, problem: Problem, platform_name: str) -> None:
        import jax
        import jax.numpy as jnp

        self.problem = problem
        self.device = jax.devices(platform_name)[0]
        self.jax = jax
        count = len(problem.net.sizes) - 1
        lr = problem.lr

        def forward(params: dict[str, Any], x: Any) -> Any:
            for i in range(1, count):
                x = jax.nn.relu(x @ params[f"W{i}"] + params[f"b{i}"])
            return x @ params[f"W{count}"] + params[f"b{count}"]

        def loss(params: dict[str, Any], x: Any, t: Any) -> Any:
            logp = jax.nn.log_softmax(forward(params, x))
            return -jnp.mean(jnp.take_along_axis(logp, t[:, None], axis=1))

        def step(params: dict[str, Any], x: Any, t: Any) -> tuple[dict[str, Any], Any]:
            value, grads = jax.value_and_grad(loss)(params, x, t)
            return jax.tree.map(lambda p, g: p - lr * g, params, grads), value

        self._value_and_grad = jax.jit(jax.value_and_grad(loss))
        self._step = jax.jit(step, donate_argnums=0)
        self._forward = jax.jit(forward)
        self.x = jax.device_put(problem.x, self.device)
        self.t = jax.device_put(problem.t, self.device)
        self.reset()

    def reset(self) -> None:
        self.state = {k: self.jax.device_put(v, self.device) for k, v in self.problem.params.items()}
        self.jax.block_until_ready(self.state)

    def step(self) -> None:
        self.state, _ = self._step(self.state, self.x, self.t)
        self.jax.block_until_ready(self.state)

    def predict(self) -> None:
        self._forward(self.state, self.x).block_until_ready()

    def loss_and_grads(self) -> tuple[float, dict[str, np.ndarray]]:
        value, grads = self._value_and_grad(self.state, self.x, self.t)
        return float(value), {k: np.asarray(g) for k, g in grads.items()}

    def params(self) -> dict[str, np.ndarray]:
        return {k: np.array(v) for k, v in self.state.items()}


# --------------------------------------------------------------------------------------
# The implementations, and which of them work here
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Implementation:
    """A row of the tables: how to build a :class:`Runner` for a problem.

    Attributes
    ----------
    key : str
        Stable identifier (``"bp_xp:numpy"``).
    label : str
        Row label for tables and the chart.
    make : callable
        ``make(problem) -> Runner``.
    predict : bool
        Whether its inference is timed too (one row per distinct forward pass).
    """

    key: str
    label: str
    make: Callable[[Problem], Runner]
    library: str = "numpy"
    gpu: bool = False
    predict: bool = True

    def unavailable(self, dtype: str) -> str | None:
        """Why this implementation cannot run ``dtype`` here, or ``None`` when it can."""
        try:
            module = importlib.import_module(self.library)
        except ImportError as exc:
            return f"{self.library} is not installed ({exc})"
        if self.library == "jax" and dtype == "float64" and not module.config.jax_enable_x64:
            return "JAX runs without jax_enable_x64"
        if self.gpu:
            return _gpu_unavailable(self.library)
        return None


def _gpu_unavailable(library: str) -> str | None:
    try:
        if library == "cupy":
            bp_xp.resolve_backend("cupy")
        elif library == "torch":
            import torch

            if not torch.cuda.is_available():
                return "torch.cuda is not available"
        else:
            import jax

            jax.devices("gpu")
    except Exception as exc:  # each library reports a missing GPU its own way
        return f"no GPU ({str(exc).split('. ')[0]})"
    return None


def implementations(gpu: bool = False) -> list[Implementation]:
    """The rows of a table, baseline first: CPU ones, or (``gpu=True``) GPU ones.

    On the GPU the baseline is PyTorch eager with ``torch.optim.SGD`` (the book's NumPy
    code would take seconds per step at the GPU sizes).

    Examples
    --------
    >>> from _runners import implementations
    >>> [impl.key for impl in implementations()][:2]
    ['book', 'bp_xp:numpy']
    """
    if not gpu:
        return [
            Implementation("book", "hand-written NumPy (the book's code)", BookRunner),
            Implementation("bp_xp:numpy", "bp_xp on NumPy", lambda p: BpXpRunner(p, "numpy")),
            Implementation("bp_xp:torch", "bp_xp on PyTorch (CPU tensors)",
                           lambda p: BpXpRunner(p, "torch:cpu"), library="torch"),
            Implementation("bp_xp:jax", "bp_xp on JAX (eager, no jit)",
                           lambda p: BpXpRunner(p, "jax:cpu"), library="jax"),
            Implementation("torch:optim", "PyTorch eager, autograd + torch.optim.SGD",
                           lambda p: TorchEagerRunner(p, "cpu", optimizer=True), library="torch"),
            Implementation("torch:manual", "PyTorch eager, autograd + manual SGD",
                           lambda p: TorchEagerRunner(p, "cpu", optimizer=False), library="torch",
                           predict=False),
            Implementation("jax:jit", "JAX, jit of the whole step",
                           lambda p: JaxJitRunner(p, "cpu"), library="jax"),
        ]
    return [
        Implementation("torch:optim:cuda", "PyTorch eager, autograd + torch.optim.SGD",
                       lambda p: TorchEagerRunner(p, "cuda", optimizer=True), "torch", gpu=True),
        Implementation("torch:manual:cuda", "PyTorch eager, autograd + manual SGD",
                       lambda p: TorchEagerRunner(p, "cuda", optimizer=False), "torch", gpu=True,
                       predict=False),
        Implementation("bp_xp:cupy", "bp_xp on CuPy", lambda p: BpXpRunner(p, "cupy"), "cupy", gpu=True),
        Implementation("bp_xp:torch:cuda", "bp_xp on PyTorch (CUDA tensors)",
                       lambda p: BpXpRunner(p, "torch:cuda"), "torch", gpu=True),
        Implementation("bp_xp:jax:gpu", "bp_xp on JAX (eager, GPU)",
                       lambda p: BpXpRunner(p, "jax:gpu"), "jax", gpu=True),
        Implementation("jax:jit:gpu", "JAX, jit of the whole step (GPU)",
                       lambda p: JaxJitRunner(p, "gpu"), "jax", gpu=True),
    ]


#: Backends that bp_xp supports but that are left out of the speed tables, and why.
EXCLUDED: dict[str, str] = {
    "array_api_strict": (
        "a reference implementation of the standard that checks every call (it wraps NumPy "
        "and adds validation); it exists to prove portability, not to be fast"
    ),
    "dask": (
        "lazy: a step builds a task graph (milliseconds of scheduling per step) and only "
        "pays off for data larger than memory or spread over workers; its data-parallel step "
        "is timed against NumPy by `benchmarks/bench_dask.py`"
    ),
}
