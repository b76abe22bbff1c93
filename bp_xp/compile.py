"""Compiled training steps: forward, backward and the optimizer's update in one call.

:func:`compile_step` turns a network and an optimizer into ``step(x, t) -> loss``. What
"compiled" means depends on the backend the network lives on:

* **JAX** (any backend whose spec has ``compile_function``): the layers' own
  ``forward``/``backward`` and the optimizer's rule are traced once under ``jax.jit``;
  parameters, optimizer state and layer state go in, new ones come out (their old
  buffers donated, so XLA updates them in place). There is no second
  implementation of any layer: the tracer flows through the same Array API code that runs
  eagerly. A new trace happens only when the batch's shape or dtype changes (the last batch
  of an epoch, a new dataset), never per step.
* **Everywhere else** (NumPy, PyTorch, CuPy, Dask, array-api-strict): the eager step,
  ``network.loss_and_gradient`` then ``optimizer.update``. ``torch.compile`` was measured
  on the CPU and did not win (1.39x the eager step's time; see "Compiled step and PyTorch
  parity" in ``docs/performance.md``), so it is not used.

After every call the network's ``params`` and the optimizer's ``state_dict()`` hold the
new arrays, so checkpoints, evaluation and the book's ``params['W1']`` keep working
between steps.
"""

from __future__ import annotations

import functools
import operator
from typing import Any

from .backends import BackendMismatchError, namespace_of

__all__ = ["CompiledStep", "UntraceableError", "compile_step", "train_step", "untraceable_layers"]

Array = Any

_STATE = operator.attrgetter("state")


def train_step(network: Any, optimizer: Any, x: Array, t: Array) -> Array:
    """One minibatch step: gradients, then the optimizer's update. Returns the loss (0-d).

    The eager step, written once: the Trainer (through :class:`CompiledStep`), compiled
    steps on backends without a compiler, and :func:`bp_xp.distributed.train_step` all run
    it. Nothing is read back from the device. Also importable as ``bp_xp.train.train_step``.

    Examples
    --------
    >>> import numpy as np, bp_xp
    >>> from bp_xp.optim import SGD
    >>> from bp_xp.train import train_step
    >>> net = bp_xp.TwoLayerNet(4, 5, 3, seed=0)
    >>> loss = train_step(net, SGD(lr=0.1), np.ones((2, 4), np.float32), np.array([0, 2]))
    >>> loss.shape, loss.dtype
    ((), dtype('float32'))
    """
    loss, grads = network.loss_and_gradient(x, t)
    optimizer.update(network.params, grads)
    return loss


class CompiledStep:
    """``step(x, t) -> loss``: one training step of a network and its optimizer.

    Made by :func:`compile_step`; see there.

    Attributes
    ----------
    kind : str
        ``"jax.jit"`` or ``"eager"``: how the step runs.
    trace_count : int
        How many times the step was traced (JAX: once per distinct batch shape and dtype;
        0 for the eager step).
    """

    kind: str = "eager"

    def __init__(self, network: Any, optimizer: Any) -> None:
        self.network = network
        self.optimizer = optimizer
        self.trace_count = 0

    def __call__(self, x: Array, t: Array) -> Array:
        return train_step(self.network, self.optimizer, x, t)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(kind={self.kind!r}, network={self.network!r}, "
                f"optimizer={self.optimizer!r})")


class _TracedStep(CompiledStep):
    """The step traced once by the backend's compiler, parameters and state carried through.

    The backend's spec says how to compile (``BackendSpec.compile_function``: ``jax.jit``
    for JAX); this class makes the step a pure function of flat tuples of arrays and keeps
    the network and the optimizer up to date around it. Per call, the Python around the
    compiled computation is what separates it from a hand-written ``jax.jit`` step on a
    small network, so the structure is worked out once and cached: parameters, optimizer
    state and layer state go in as flat tuples in a fixed order (tuples flatten faster than
    dicts, which JAX sorts by key), and the step count lives on the network's device,
    incremented inside the computation (no host-to-device copy of a Python int per call).
    The cache is rebuilt when the structure changes (a parameter or a state array added or
    removed, ``load_state_dict`` of the optimizer, a hyperparameter changed).
    """

    def __init__(self, network: Any, optimizer: Any, spec: Any, donate: bool) -> None:
        super().__init__(network, optimizer)
        self.kind = spec.compiled_kind
        self._spec = spec
        self._trace_errors = spec.trace_errors()
        self._owners = network.params.owners
        self._layers = [*network.layers.values(), network.last_layer]
        self._names = {id(layer): name for name, layer in
                       {**network.layers, "loss": network.last_layer}.items()}
        # Layers that draw random numbers (Dropout): one seed each per call (see _seeds).
        self._random = tuple(layer for layer in self._layers
                             if getattr(layer, "draws_random", False))
        self._structure: tuple[Any, ...] | None = None
        self._hyperparameters_version = -1
        # Types of x and t already checked to be the backend's arrays (the check itself
        # costs a few us per call).
        self._array_types: set[type] = set()
        self._step_array: Array | None = None
        self._step_value = -1
        # Parameters, optimizer state, layer state and the step count are replaced by the
        # step's outputs, so the compiler may write the new values into their buffers. x and
        # t stay the caller's.
        self._donate = (0, 1, 2, 3) if donate else ()
        self._compiled: Any = None

    def _build_structure(self) -> tuple[Any, ...]:
        """``(param keys, their (layer, name), state slots, ((layer, name) of layer state))``."""
        keys = tuple(self._owners)
        owners = tuple(self._owners[key] for key in keys)
        state_owners = tuple((layer, name) for layer in self._layers for name in layer.state)
        return keys, owners, tuple(self.optimizer.slots), state_owners

    def _traced(self, structure: tuple[Any, ...], params: tuple[Array, ...],
                opt_state: tuple[tuple[Array, ...], ...], layer_state: tuple[Array, ...],
                step: Array, x: Array, t: Array, *seeds: Array) -> tuple[Array, tuple[Array, ...],
                                                          tuple[tuple[Array, ...], ...],
                                                          tuple[Array, ...], Array]:
        # Runs only while the compiler traces: once per distinct input signature and structure.
        self.trace_count += 1
        keys, owners, slots, state_owners = structure
        saved = [_snapshot(layer) for layer in self._layers]
        try:
            for (layer, name), value in zip(owners, params):
                layer.params[name] = value
            for (layer, name), value in zip(state_owners, layer_state):
                layer.state[name] = value
            _hand_seeds(self._random, seeds)
            loss, grads = self.network.loss_and_gradient(x, t)
            new_layer_state = tuple(layer.state[name] for layer, name in state_owners)
        finally:
            # The layers' caches (x, masks, grads) now hold tracers: put back what they held,
            # so nothing traced leaks out of the trace.
            for layer, snapshot in zip(self._layers, saved):
                _restore(layer, snapshot)
        named = dict(zip(keys, params))
        state = {slot: dict(zip(keys, arrays)) for slot, arrays in zip(slots, opt_state)}
        self.optimizer.validate_step(named, grads, state)
        step = step + 1
        new_params, new_state = self.optimizer.functional_update(named, grads, state, step)
        return (loss, tuple(new_params[key] for key in keys),
                tuple(tuple(new_state[slot][key] for key in keys) for slot in slots),
                new_layer_state, step)

    def _current_structure(self) -> tuple[Any, ...]:
        structure = self._structure
        version = self.optimizer.hyperparameters_version
        if structure is not None and version == self._hyperparameters_version:
            keys, _, slots, state_owners = structure
            # Cheap checks that the cached structure still describes the network: the same
            # parameters and the same number of layer state arrays.
            if (len(self._owners) == len(keys)
                    and sum(map(len, map(_STATE, self._layers))) == len(state_owners)
                    and all(name in layer.state for layer, name in state_owners)):
                return structure
        new = self._build_structure()
        if new != structure or version != self._hyperparameters_version:
            # One compiled function per structure and hyperparameters (the rule reads them as
            # Python floats, so they are constants of the trace), closed over the structure (a
            # static argument would be hashed on every call).
            self._compiled = self._spec.compile_function(functools.partial(self._traced, new),
                                                         self._donate)
        self._structure, self._hyperparameters_version = new, version
        return new

    def _check_arrays(self, x: Array, t: Array) -> None:
        spec = self._spec
        if not (spec.is_array(x) and spec.is_array(t)):
            raise BackendMismatchError(
                f"compile_step: the network lives on {self.network.backend}, so x and t must be "
                f"{spec.name} arrays, got {type(x).__module__}.{type(x).__qualname__} and "
                f"{type(t).__module__}.{type(t).__qualname__}; move them with "
                f"bp_xp.to_device(array, {str(self.network.backend)!r})"
            )
        self._array_types.update((type(x), type(t)))

    def __call__(self, x: Array, t: Array) -> Array:
        known = self._array_types
        if not (type(x) in known and type(t) in known):
            self._check_arrays(x, t)
        optimizer = self.optimizer
        structure = self._current_structure()
        keys, owners, slots, state_owners = structure
        params = tuple(layer.params[name] for layer, name in owners)
        held = optimizer.state
        try:
            if any(len(held[slot]) != len(keys) for slot in slots):
                raise KeyError(keys)
            opt_state = tuple(tuple(held[slot][key] for key in keys) for slot in slots)
        except KeyError:  # the first step, or state for other parameters: the slow path
            named = dict(zip(keys, params))
            fresh = optimizer.initial_state(named)  # zeros for parameters it has not seen
            optimizer.validate_step(named, named, fresh)  # refuses stale state
            opt_state = tuple(tuple(fresh[slot][key] for key in keys) for slot in slots)
        layer_state = tuple(layer.state[name] for layer, name in state_owners)
        if self._step_value != optimizer.step_count:  # first call, or the optimizer was reloaded
            # On the network's own device, not the library's default one.
            self._step_array = self.network.backend.asarray(optimizer.step_count, dtype="int32")
        result = None
        try:
            result = self._compiled(params, opt_state, layer_state, self._step_array, x, t,
                                    *_seeds(self._random, self.network.backend))
        except self._trace_errors as exc:
            raise UntraceableError(_untraceable_message(exc, self._names)) from exc
        except ValueError:
            # The compiler's own words for an input on another device: say it as bp_xp does.
            if params:
                namespace_of(params[0], x, t, names=(f"params[{keys[0]!r}]", "x", "t"))
            raise
        finally:
            if result is not None:
                # The old parameter buffers were donated: the new arrays must be installed even
                # when an exception (KeyboardInterrupt) arrives in the middle of installing.
                try:
                    self._install(result, structure)
                except BaseException:
                    self._install(result, structure)
                    raise
        return result[0]

    def _install(self, result: tuple[Any, ...], structure: tuple[Any, ...]) -> None:
        """Put a step's outputs into the network and the optimizer (idempotent)."""
        _, new_params, new_opt_state, new_layer_state, step_array = result
        keys, owners, slots, state_owners = structure
        for (layer, name), value in zip(owners, new_params):
            layer.params[name] = value
        for (layer, name), value in zip(state_owners, new_layer_state):
            layer.state[name] = value
        if self._step_array is not step_array:  # the optimizer's bookkeeping, as update() does
            self.optimizer.commit_step({slot: dict(zip(keys, arrays))
                                        for slot, arrays in zip(slots, new_opt_state)})
            self._step_array = step_array
            self._step_value = self.optimizer.step_count


# --------------------------------------------------------------------------------------
# Random numbers in a compiled step (layers with ``draws_random``: Dropout)
# --------------------------------------------------------------------------------------


def _seeds(layers: tuple[Any, ...], backend: Any) -> tuple[Array, ...]:
    """This call's seeds, ``(uint32 array (k,),)`` for ``k`` random layers, or ``()``.

    Each layer draws its seed from its own host generator (``next_seed``), so a compiled
    run is reproducible from the layers' seeds; the seeds go to the device by one explicit
    copy (allowed under ``jax.transfer_guard("disallow")``) and are not donated.
    """
    if not layers:
        return ()
    return (backend.asarray([layer.next_seed() for layer in layers], dtype="uint32"),)


def _hand_seeds(layers: tuple[Any, ...], seeds: tuple[Array, ...]) -> None:
    """While tracing: give each random layer its (traced) seed as ``step_seed``.

    The layers' attributes are restored after the trace (``_restore``), so ``step_seed``
    is ``None`` again for eager calls.
    """
    for index, layer in enumerate(layers):
        layer.step_seed = seeds[0][index]


class UntraceableError(TypeError):
    """A layer read an array's value while a compiled step was being traced.

    ``float(x)``, ``bool(x)``, ``if x > 0:`` or a host copy inside ``forward``/``backward``
    cannot run under a tracer (``jax.jit``): the value is not known until the compiled step
    runs. Make the layer traceable (array operations only), or declare
    ``traceable = False`` on its class so that ``Trainer(compile="auto")`` uses the eager
    step for networks that contain it.
    """

    __module__ = "bp_xp"


def _untraceable_message(exc: BaseException, names: dict[int, str]) -> str:
    """Name the layer whose code was running when tracing failed (the innermost one)."""
    culprit = None
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if id(owner) in names:
            culprit = owner
        tb = tb.tb_next
    who = ("a layer" if culprit is None else
           f"layer {names[id(culprit)]!r} ({type(culprit).__module__}.{type(culprit).__qualname__})")
    return (f"compile_step: {who} reads an array's value while the step is traced "
            f"({type(exc).__name__}), which a compiled step cannot do (no float(), bool(), "
            "Python if or host copies on arrays inside forward/backward). Write it with array "
            "operations only, or set `traceable = False` on the layer class so "
            "Trainer(compile='auto') uses the eager step; compile=False does so for any network")


def compile_step(network: Any, optimizer: Any, *, donate: bool = True) -> CompiledStep:
    """One training step, ``step(x, t) -> loss``, compiled where the backend can.

    The step runs the network's forward and backward (``network.loss_and_gradient``) and
    the optimizer's update, and returns the loss as a 0-d array on the device (no host
    synchronisation). Its results equal those of the eager step::

        loss, grads = network.loss_and_gradient(x, t)
        optimizer.update(network.params, grads)

    On JAX the whole step is one ``jax.jit`` computation, traced once per distinct batch
    shape and dtype (so a smaller last batch costs one more trace, not one per step). On
    every other backend it is exactly the eager step above.

    Parameters
    ----------
    network : Sequential
        A bp_xp network (``TwoLayerNet``, ``MultiLayerNet``, ``Sequential``...).
    optimizer : bp_xp.optim.Optimizer
    donate : bool, keyword-only
        JAX only: let the step reuse the buffers of the old parameters and optimizer state
        for the new ones (default). Arrays read from ``net.params`` or
        ``optimizer.state_dict()`` *before* a step are then deleted by it; read them again
        after the step (or copy them) instead. ``False`` keeps them, at the cost of a new
        buffer per parameter and state array each step.

    Returns
    -------
    CompiledStep
        Callable as ``step(x, t)``; ``step.kind`` says how it runs (``"jax.jit"`` or
        ``"eager"``), ``step.trace_count`` how often it was traced.

    Notes
    -----
    While JAX traces, the layers run with tracers in place of their parameters; their
    caches (``x``, masks, ``grads``) are restored afterwards, so after a compiled step they
    still hold what the last eager call left (call ``network.gradient`` for fresh ``dW``).
    A layer that draws random numbers (``Layer.draws_random``: Dropout) gets a new seed
    per call: drawn from the layer's own host generator (``next_seed``), copied to the
    device with the call, and used there by the backend's generator
    (``BackendSpec.random_uniform``: ``jax.random``). A compiled run is thus reproducible
    from the layers' seeds, but its masks differ from the eager step's (NumPy's generator).
    A layer whose calls do other host work a trace would freeze says so
    (``Layer.traceable = False``) and ``compile_step`` refuses it on JAX with a
    ``ValueError`` (``Trainer(compile="auto")`` then uses the eager step), as it refuses
    random layers on a compiling backend without ``random_uniform``. A layer that reads an
    array's value (``float(x)``, ``if x > 0``) cannot be traced either: the first call
    raises :class:`UntraceableError` naming it.

    A change of the optimizer's hyperparameters (``load_state_dict`` restoring another
    ``lr``) reaches the next call: the step is traced again for the new values. The new
    parameters are installed even when an exception (``KeyboardInterrupt``) arrives while
    they are being installed, so the network never holds donated (deleted) buffers.

    Examples
    --------
    >>> import numpy as np, bp_xp
    >>> from bp_xp.optim import SGD
    >>> net = bp_xp.TwoLayerNet(4, 5, 3, seed=0)
    >>> step = bp_xp.compile_step(net, SGD(lr=0.1))
    >>> step.kind
    'eager'
    >>> loss = step(np.ones((2, 4), dtype=np.float32), np.array([0, 2]))
    >>> loss.shape, loss.dtype
    ((), dtype('float32'))
    """
    backend = getattr(network, "backend", None)
    if backend is None or not callable(getattr(network, "loss_and_gradient", None)):
        raise TypeError(f"compile_step needs a bp_xp network (with loss_and_gradient and "
                        f"backend), got {type(network).__name__}")
    if not all(callable(getattr(optimizer, member, None))
               for member in ("functional_update", "validate_step", "commit_step")):
        raise TypeError(f"compile_step needs a bp_xp.optim optimizer, got "
                        f"{type(optimizer).__name__}")
    spec = backend.spec
    if spec.compile_function is not None:
        frozen = untraceable_layers(network)
        if frozen:
            raise ValueError(
                f"compile_step: layer(s) {', '.join(frozen)} do host work in every call (e.g. a "
                f"new random mask) that a {spec.compiled_kind} trace would freeze into one "
                "replayed value; train this network with the eager step (Trainer(compile=False))"
            )
        return _TracedStep(network, optimizer, spec, donate=bool(donate))
    return CompiledStep(network, optimizer)


def untraceable_layers(network: Any) -> list[str]:
    """Names of the network's layers that must not be traced on its backend.

    Those with ``Layer.traceable`` false, and those that draw random numbers
    (``Layer.draws_random``) where the backend compiles steps but has no device generator
    (``BackendSpec.random_uniform``) to draw them from a traced seed.

    Examples
    --------
    >>> import bp_xp
    >>> class HostWork(bp_xp.Layer):
    ...     traceable = False
    >>> net = bp_xp.Sequential({"Host": HostWork()}, backend="numpy")
    >>> bp_xp.compile.untraceable_layers(net)
    ['Host']
    """
    layers = {**network.layers, "loss": network.last_layer}
    spec: Any = getattr(getattr(network, "backend", None), "spec", None)
    random_ok = (getattr(spec, "compile_function", None) is None  # the eager step: no trace
                 or spec.random_uniform is not None)
    return [name for name, layer in layers.items()
            if not getattr(layer, "traceable", True)
            or (getattr(layer, "draws_random", False) and not random_ok)]


def _snapshot(layer: Any) -> tuple[dict[str, Any], dict[str, Array], dict[str, Array],
                                   dict[str, Array]]:
    return dict(vars(layer)), dict(layer.params), dict(layer.grads), dict(layer.state)


def _restore(layer: Any, snapshot: tuple[dict[str, Any], dict[str, Array], dict[str, Array],
                                         dict[str, Array]]) -> None:
    attributes, params, grads, state = snapshot
    vars(layer).clear()
    vars(layer).update(attributes)
    for held, saved in ((layer.params, params), (layer.grads, grads), (layer.state, state)):
        held.clear()
        held.update(saved)
