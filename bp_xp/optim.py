"""The book's chapter-6 optimizers, on any Array API backend.

Each optimizer keeps the book's interface, ``optimizer.update(params, grads)``, and the
book's update rules, with three changes that make it portable:

* each new value is computed first, as a new array, by a rule written without in-place
  operations (so the same rule runs on JAX and traces under ``jax.jit``); then the step is
  *committed*, all of it or nothing:

  - a network's :class:`~bp_xp.Params` gets each layer's entry replaced (the layer is
    the one owner of its array, so ``predict`` sees the new one);
  - a plain dict of *mutable* arrays (NumPy arrays that are writeable, torch tensors
    that do not require grad, CuPy arrays) gets the new values copied *into* its arrays,
    as the book's ``params[key] -= ...`` does, so a book-style network whose layers hold
    the same arrays as its ``params`` dict trains;
  - every other entry (JAX, Dask, array-api-strict arrays, read-only NumPy arrays,
    Python numbers) is replaced in the dict. A mapping that cannot be assigned to is
    refused before anything changes (the caller could not see the step), and so is an
    array of a plain dict that is also held elsewhere, e.g. by a book-style layer
    (:class:`HeldParameterError`, see :mod:`bp_xp._holders`);

* everything is validated *before* anything changes: a missing gradient, a wrong shape,
  dtype or device raises an error naming the key and leaves parameters and state as
  they were; an exception from the mapping while committing restores the entries
  already replaced, and a ``KeyboardInterrupt`` arriving during the commit (in the main
  thread) is held until the commit is done. After any exception, every parameter holds
  its value from before the step, or every parameter its value from after it;
* hyperparameters are Python floats (weak scalars), so a float32 parameter stays
  float32 and no extra array or host synchronisation appears in the step; Adam's bias
  correction is a Python float computed from the Python ``int`` step count.

Parameters may also be Python numbers (the book's ``ch06/optimizer_compare_naive.py``
keeps ``params = {"x": -7.0, "y": 2.0}``): their gradients must then be numbers too,
and they stay Python floats.

State (velocities, moments) is created lazily on the first update with
``xp.zeros_like(param)``, so it lives on each parameter's backend, device and dtype.
:meth:`Optimizer.state_dict` / :meth:`Optimizer.load_state_dict` save and restore it,
and :meth:`Optimizer.to` copies an optimizer onto another backend or device together
with a network moved by ``net.to(...)``.

Examples
--------
>>> import numpy as np
>>> from bp_xp.optim import get_optimizer
>>> params = {"W": np.array([1.0, 2.0])}
>>> optimizer = get_optimizer("momentum", lr=0.1)
>>> optimizer.update(params, {"W": np.array([1.0, -1.0])})
>>> params["W"]
array([0.9, 2.1])
"""

from __future__ import annotations

import math
import numbers
import signal
import threading
from collections.abc import Mapping, MutableMapping
from types import MappingProxyType
from typing import Any, ClassVar

from ._checks import check_like, same_kind
from ._holders import HeldParameterError, refuse_unseen_replacement
from ._inplace import copy_into, mutable
from .backends import BackendMismatchError, backend_of, namespace_of, resolve_backend, subtract_scaled
from .params import Params

__all__ = [
    "EPSILON",
    "OPTIMIZERS",
    "SGD",
    "AdaGrad",
    "Adam",
    "HeldParameterError",
    "Momentum",
    "Nesterov",
    "Optimizer",
    "RMSprop",
    "get_optimizer",
]

Array = Any

#: The book's guard against division by zero in AdaGrad, RMSprop and Adam, added *after*
#: the square root: ``lr * g / (sqrt(h) + EPSILON)``. This is also where torch.optim's
#: Adagrad and RMSprop put their ``eps``; its Adam adds ``eps`` to the bias-corrected
#: root instead (see :class:`Adam`).
EPSILON: float = 1e-7


class Optimizer:
    """Base class: validation, lazy state, state dicts and moving between backends.

    Subclasses set :attr:`name` and :attr:`slots` and implement :meth:`_rule`, the
    book's update of one parameter written without in-place operations.
    """

    #: The registry name (``"adam"``), also stored in state dicts and checkpoints.
    name: ClassVar[str] = ""
    #: Names of the per-parameter state arrays (``("m", "v")`` for Adam).
    slots: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **hyperparameters: float) -> None:
        self._hyperparameters = self._checked_hyperparameters(hyperparameters)
        self._hyperparameters_version = 0
        self._step = 0
        self._state: dict[str, dict[str, Array]] = {slot: {} for slot in self.slots}

    # -- hyperparameters -----------------------------------------------------------

    @property
    def hyperparameters(self) -> dict[str, float]:
        """The current hyperparameters, as Python floats (a copy)."""
        return dict(self._hyperparameters)

    @property
    def hyperparameters_version(self) -> int:
        """A counter that grows whenever a hyperparameter changes.

        Assigning one (``optimizer.lr = 0.01``, a learning-rate schedule) or
        :meth:`load_state_dict` bumps it; :func:`bp_xp.compile_step` compares it (one
        integer, per call) to know when the compiled step must be traced again.
        """
        return self._hyperparameters_version

    def __getattr__(self, attr: str) -> float:
        # The book reads `optimizer.lr`, `optimizer.momentum`...: keep that spelling.
        hyperparameters = self.__dict__.get("_hyperparameters", {})
        if attr in hyperparameters:
            return hyperparameters[attr]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    def __setattr__(self, attr: str, value: Any) -> None:
        # `optimizer.lr = 0.01` changes the hyperparameter itself: checked like the
        # constructor's, seen by `hyperparameters`, checkpoints and compiled steps. (A
        # plain attribute would shadow it: the rule would use the new value while
        # `state_dict()` saved the old one.)
        if not attr.startswith("_"):  # the private bookkeeping of every step skips this
            hyperparameters = self.__dict__.get("_hyperparameters")
            if hyperparameters is not None and attr in hyperparameters:
                checked = self._checked_hyperparameters({attr: value})
                self._set_hyperparameters({**hyperparameters, **checked})
                return
        object.__setattr__(self, attr, value)

    def _set_hyperparameters(self, hyperparameters: dict[str, float]) -> None:
        self.__dict__["_hyperparameters"] = hyperparameters
        self.__dict__["_hyperparameters_version"] += 1

    @property
    def step_count(self) -> int:
        """How many updates have been applied (Adam's bias correction uses it)."""
        return self._step

    def _checked_hyperparameters(self, given: Mapping[str, Any]) -> dict[str, float]:
        checked = {}
        for key, value in given.items():
            # numbers.Real takes NumPy scalars too (np.float32(0.1) as well as np.float64);
            # bool is refused although Python counts it as an int.
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(
                    f"{type(self).__name__}: {key} must be a real number, got {value!r}"
                )
            value = float(value)
            low, high, closed_high = self._ranges()[key]
            above_low = value > low if key == "lr" else value >= low
            below_high = value <= high if closed_high else value < high
            if not (math.isfinite(value) and above_low and below_high):
                interval = f"({low}, inf)" if key == "lr" else f"[{low}, {high}" + (
                    "]" if closed_high else ")")
                raise ValueError(
                    f"{type(self).__name__}: {key} must lie in {interval}, got {value!r}"
                )
            checked[key] = value
        return checked

    def _ranges(self) -> dict[str, tuple[float, float, bool]]:
        """``{name: (low, high, high_is_included)}``; ``lr`` excludes its low bound."""
        return {"lr": (0.0, math.inf, False)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._hyperparameters.items())
        return f"{type(self).__name__}({args}, step={self._step})"

    # -- the update ---------------------------------------------------------------------

    def update(self, params: MutableMapping[str, Array], grads: Mapping[str, Array]) -> None:
        """Apply one step of the rule to every parameter, all of it or nothing.

        Parameters
        ----------
        params : MutableMapping
            A network's ``params``, or a plain dict ``{name: array or number}``. Mutable
            arrays of a plain dict (writeable NumPy, torch without ``requires_grad``, CuPy)
            are updated in place, as in the book; other entries are replaced.
        grads : Mapping
            Gradients with exactly the keys of ``params``, each with the parameter's
            shape, dtype, backend and device (a number for a number). They are not
            modified.

        Raises
        ------
        ValueError
            When keys or shapes do not match (or the optimizer's state does not fit).
        TypeError
            When a gradient's dtype differs from its parameter's, or when ``params`` is a
            read-only mapping holding an entry that can only be replaced.
        BackendMismatchError
            When a gradient or a state array is on another backend or device; move the
            optimizer with :meth:`to` after moving the network.
        HeldParameterError
            When ``params`` is a plain dict whose array can only be replaced (JAX, Dask,
            array-api-strict) and something else holds that array (a book-style layer),
            which would never see the step (see :mod:`bp_xp._holders`).

        Nothing is changed when an error is raised.
        """
        current = {key: params[key] for key in params}  # one read per entry, checked below
        self._check(current, grads)
        refuse_unseen_replacement(self, params, current)
        numbers_ = [key for key, value in current.items() if _is_number(value)]
        if numbers_:  # Python-number parameters: the rule runs on Python floats
            current.update((key, float(current[key])) for key in numbers_)
            grads = {**grads, **{key: float(grads[key]) for key in numbers_}}
        new_params, new_state = self.functional_update(current, grads, self.initial_state(current),
                                                       self._step + 1)
        self._commit(params, current, new_params, new_state)

    def _commit(self, params: MutableMapping[str, Array], current: Mapping[str, Array],
                new_params: dict[str, Array], new_state: dict[str, dict[str, Array]]) -> None:
        """Store a computed step: parameters, state and step count, all or nothing."""
        if isinstance(params, Params):
            # `_check` has validated every gradient and state array against its parameter and
            # the rule keeps shape, dtype and device, so the layer's own entry is replaced
            # directly instead of through Params' per-array checks (a few us per parameter).
            targets = [(owner.params, name, new_params[key])
                       for key, (owner, name) in params.owners.items()]
            in_place: list[tuple[Array, Array]] = []
        else:
            in_place, replaced = [], []
            for key, new in new_params.items():
                old = current[key]
                (in_place.append((old, new)) if mutable(old) else replaced.append(key))
            if replaced and not hasattr(params, "__setitem__"):
                raise TypeError(
                    f"{type(self).__name__}.update: params is a read-only "
                    f"{type(params).__name__}, but {', '.join(map(repr, replaced))} can only "
                    "be updated by storing a new value (immutable arrays or numbers); the "
                    "caller would never see the step. Pass a dict or the network's params"
                )
            targets = [(params, key, new_params[key]) for key in replaced]
        with _HeldInterrupt():
            done: list[tuple[Any, str, Array]] = []
            try:
                for mapping, key, value in targets:
                    old = mapping[key]
                    mapping[key] = value
                    done.append((mapping, key, old))
            except BaseException:
                for mapping, key, old in reversed(done):  # undo: nothing has changed
                    mapping[key] = old
                raise
            # Copies into arrays bp_xp validated: no Python exception is left to raise.
            for old, new in in_place:
                copy_into(old, new)
            self._state = new_state
            self._step += 1

    def initial_state(self, params: Mapping[str, Array]) -> dict[str, dict[str, Array]]:
        """The state :meth:`functional_update` needs for ``params``: this optimizer's own
        arrays, with zeros (``xp.zeros_like``) for parameters it has not seen yet.

        Nothing is stored: ``update`` keeps the state only once the step succeeded.
        """
        state: dict[str, dict[str, Array]] = {slot: dict(self._state[slot]) for slot in self.slots}
        for key, param in params.items():
            for slot in self.slots:
                if key not in state[slot]:
                    state[slot][key] = 0.0 if _is_number(param) else (
                        namespace_of(param).zeros_like(param))
        return state

    def functional_update(self, params: Mapping[str, Array], grads: Mapping[str, Array],
                          state: Mapping[str, Mapping[str, Array]],
                          step: Any) -> tuple[dict[str, Array], dict[str, dict[str, Array]]]:
        """One step of the rule as a pure function: nothing is checked, nothing is changed.

        :meth:`update` is this plus validation and bookkeeping; :func:`bp_xp.compile_step`
        traces it under ``jax.jit``, where the arrays are tracers and ``step`` a traced
        integer.

        Parameters
        ----------
        params, grads : Mapping
            ``{key: array}`` with the same keys.
        state : Mapping
            ``{slot: {key: array}}`` for every slot and key (see :meth:`initial_state`).
        step : int or 0-d integer array
            The number of this update: 1 for the first.

        Returns
        -------
        (new_params, new_state)
            Dicts shaped like ``params`` and ``state``.

        Examples
        --------
        >>> import numpy as np
        >>> from bp_xp.optim import Momentum
        >>> opt = Momentum(lr=0.1, momentum=0.5)
        >>> params = {"W": np.array([1.0])}
        >>> opt.functional_update(params, {"W": np.array([1.0])}, opt.initial_state(params), 1)
        ({'W': array([0.9])}, {'v': {'W': array([-0.1])}})
        """
        slots = self.slots
        new_params: dict[str, Array] = {}
        new_state: dict[str, dict[str, Array]] = {slot: {} for slot in slots}
        for key, param in params.items():
            new_params[key], updated = self._rule(
                param, grads[key], {slot: state[slot][key] for slot in slots}, step)
            for slot in slots:
                new_state[slot][key] = updated[slot]
        return new_params, new_state

    def _rule(self, param: Array, grad: Array, state: dict[str, Array],
              step: int) -> tuple[Array, dict[str, Array]]:
        raise NotImplementedError

    def _check(self, params: Mapping[str, Array], grads: Mapping[str, Array]) -> None:
        missing = [k for k in params if k not in grads]
        extra = [k for k in grads if k not in params]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"no gradient for {', '.join(map(repr, missing))}")
            if extra:
                parts.append(f"gradients for unknown parameters {', '.join(map(repr, extra))}")
            raise ValueError(
                f"{type(self).__name__}.update: grads must have the keys of params "
                f"({', '.join(map(repr, params))}); {'; '.join(parts)}"
            )
        for slot in self.slots:
            stale = [k for k in self._state[slot] if k not in params]
            if stale:
                raise ValueError(
                    f"{type(self).__name__}.update: the optimizer holds {slot!r} state for "
                    f"{', '.join(map(repr, stale))}, which params do not have; was this "
                    "optimizer used or loaded for another network?"
                )
        for key in params:
            param, grad = params[key], grads[key]
            if _is_number(param):
                self._check_number(key, grad)
                continue
            self._check_like(param, grad, key, None)
            for slot in self.slots:
                if key in self._state[slot]:
                    self._check_like(param, self._state[slot][key], key, slot)

    def _check_number(self, key: str, grad: Any) -> None:
        """A Python-number parameter takes a number gradient, and number state."""
        where = f"{type(self).__name__}.update"
        if not _is_number(grad):
            raise TypeError(f"{where}: params[{key!r}] is a number, so grads[{key!r}] must be a "
                            f"real number too, got {type(grad).__name__}")
        for slot in self.slots:
            held = self._state[slot].get(key, 0.0)
            if not _is_number(held):
                raise TypeError(f"{where}: params[{key!r}] is a number but the optimizer's "
                                f"{slot!r} state of {key!r} is a {type(held).__name__}; was "
                                "this optimizer used for another network?")

    def _check_like(self, param: Array, other: Array, key: str, slot: str | None) -> None:
        """``other`` (the gradient, or state ``slot``) must fit ``params[key]``.

        The hot path of every update: an array of the parameter's own type, shape and dtype
        on its device passes without building any message (names are formatted only for an
        error: a few us per parameter otherwise).
        """
        if same_kind(param, other):
            try:
                namespace_of(param, other)  # the device check
                return
            except BackendMismatchError:
                pass  # check_like says it again, with the names
        param_name = f"params[{key!r}]"
        if slot is None:
            other_name, hint = f"grads[{key!r}]", ""
        else:
            other_name = f"the optimizer's {slot!r} state of {key!r}"
            hint = " (after net.to(...), move the optimizer too: optimizer = optimizer.to(...))"
        check_like(param, other, where=f"{type(self).__name__}.update", ref_name=param_name,
                   value_name=other_name, hint=hint)

    # -- public seams for steps run outside update() -----------------------------------
    # bp_xp.compile_step (a traced step) and bp_xp.distributed (a step undone on failure)
    # run functional_update themselves; these members are what they need, so neither
    # reads this class's private attributes.

    @property
    def state(self) -> Mapping[str, Mapping[str, Array]]:
        """The per-parameter state, ``{slot: {key: array}}``: read-only views, no copies.

        Empty mappings for parameters not yet seen (see :meth:`initial_state`).
        """
        return MappingProxyType({slot: MappingProxyType(arrays)
                                 for slot, arrays in self._state.items()})

    def validate_step(self, params: Mapping[str, Array], grads: Mapping[str, Array],
                      state: Mapping[str, Mapping[str, Array]] | None = None) -> None:
        """Raise what :meth:`update` would raise for this step, changing nothing.

        ``state`` (default: the optimizer's own) is checked in place of the optimizer's
        state, so a compiled step can validate the arrays it is about to trace.
        """
        if state is None:
            self._check(params, grads)
            return
        probe = type(self)(**self._hyperparameters)
        probe._state = {slot: dict(state[slot]) for slot in self.slots}
        probe._check(params, grads)

    def commit_step(self, state: Mapping[str, Mapping[str, Array]]) -> None:
        """Record a step computed outside :meth:`update`: keep ``state``, count the step.

        ``state`` is the new state :meth:`functional_update` returned for the step, whose
        new parameters the caller has installed.
        """
        self._state = {slot: dict(state[slot]) for slot in self.slots}
        self._step += 1

    # -- saving, restoring, moving ------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: type, hyperparameters, step and state arrays.

        The arrays are the optimizer's own (no copy): they are never modified in place,
        so holding on to them is safe. :mod:`bp_xp.checkpoint` writes this to a file.

        Examples
        --------
        >>> import numpy as np
        >>> from bp_xp.optim import Adam
        >>> optimizer = Adam(lr=0.01)
        >>> optimizer.update({"W": np.zeros(2)}, {"W": np.ones(2)})
        >>> d = optimizer.state_dict()
        >>> d["type"], d["step"], sorted(d["state"]), d["state"]["m"]["W"]
        ('adam', 1, ['m', 'v'], array([0.1, 0.1]))
        """
        return {
            "type": self.name,
            "hyperparameters": self.hyperparameters,
            "step": self._step,
            "state": {slot: dict(arrays) for slot, arrays in self._state.items()},
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (checked first; nothing changes on error).

        The state arrays are used as given: they must be on the backend, device and
        dtype of the parameters the next :meth:`update` receives (see :meth:`to`).
        """
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{who}: expected a mapping, got {type(state_dict).__name__}")
        missing = {"type", "hyperparameters", "step", "state"} - set(state_dict)
        if missing:
            raise ValueError(f"{who}: the state dict lacks {', '.join(sorted(missing))}")
        if state_dict["type"] != self.name:
            raise ValueError(
                f"{who}: the state dict is for a {state_dict['type']!r} optimizer, this is "
                f"{self.name!r}"
            )
        given = dict(state_dict["hyperparameters"])
        if set(given) != set(self._hyperparameters):
            raise ValueError(
                f"{who}: hyperparameters {sorted(given)} do not match {self.name!r}'s "
                f"{sorted(self._hyperparameters)}"
            )
        hyperparameters = self._checked_hyperparameters(given)
        step = state_dict["step"]
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"{who}: step must be an integer >= 0, got {step!r}")
        state = self._checked_state(state_dict["state"], who)
        self._set_hyperparameters(hyperparameters)
        self._step, self._state = step, state

    def _checked_state(self, state: Any, who: str) -> dict[str, dict[str, Array]]:
        if not isinstance(state, Mapping) or set(state) != set(self.slots):
            found = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(f"{who}: state must have the slots {list(self.slots)}, got {found}")
        checked = {slot: dict(state[slot]) for slot in self.slots}
        if self.slots:
            first = checked[self.slots[0]]
            for slot, arrays in checked.items():
                if set(arrays) != set(first):
                    raise ValueError(
                        f"{who}: slots {self.slots[0]!r} and {slot!r} hold different keys: "
                        f"{sorted(first)} and {sorted(arrays)}"
                    )
                for key, array in arrays.items():
                    if not hasattr(array, "shape") or not hasattr(array, "dtype"):
                        raise TypeError(
                            f"{who}: state {slot!r} of {key!r} is a {type(array).__name__}, "
                            "not an array"
                        )
                    if tuple(array.shape) != tuple(first[key].shape):
                        raise ValueError(
                            f"{who}: state {slot!r} of {key!r} has shape {tuple(array.shape)}"
                            f", but {self.slots[0]!r} has {tuple(first[key].shape)}"
                        )
        return checked

    def to(self, backend: Any = None, device: Any = None, dtype: Any = None) -> Optimizer:
        """A copy of this optimizer with its state on another backend, device and/or dtype.

        Use it next to ``net.to(...)``; the original is left untouched. With neither
        ``backend`` nor ``device``, each array stays where it is (``dtype`` alone casts).
        This copies through the host: call it between training steps, not inside one.

        Examples
        --------
        >>> import numpy as np
        >>> from bp_xp.optim import Momentum
        >>> optimizer = Momentum()
        >>> optimizer.update({"W": np.zeros(2)}, {"W": np.ones(2)})
        >>> moved = optimizer.to("array_api_strict", dtype="float32")
        >>> moved.state_dict()["state"]["v"]["W"].dtype, moved.step_count
        (array_api_strict.float32, 1)
        """
        target = None if backend is None and device is None else resolve_backend(backend, device)
        clone = type(self)(**self._hyperparameters)
        clone._step = self._step
        clone._state = {
            slot: {key: array if _is_number(array)  # the state of a Python-number parameter
                   else (target or backend_of(array)).asarray(array, dtype=dtype)
                   for key, array in arrays.items()}
            for slot, arrays in self._state.items()
        }
        return clone


# --------------------------------------------------------------------------------------
# Committing a step: numbers, mutable arrays, interrupts
# --------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    """A Python or NumPy real number (not ``bool``): a parameter the rule steps as a float."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class _PythonNumbers:
    """The two namespace functions the rules call, for Python-float parameters."""

    sqrt = staticmethod(math.sqrt)

    @staticmethod
    def zeros_like(value: Any) -> float:
        return 0.0


def _namespace(param: Any) -> Any:
    return _PythonNumbers if _is_number(param) else namespace_of(param)


# Every update holds SIGINT around its commit, so the hold must cost little. The `signal`
# module's functions wrap CPython's C ones (`_signal`) to convert numbers and handlers to
# enums, which costs about ten times the call itself (4.5 us against 0.4 us measured);
# the handlers are the same objects either way.
try:
    import _signal as _signals  # type: ignore[import-not-found]  # (no stub: it is private)
except ImportError:  # an interpreter without CPython's module: the public one
    _signals = signal
_SIGINT = int(signal.SIGINT)


class _HeldInterrupt:
    """Hold a ``KeyboardInterrupt`` (SIGINT) until the block ends, then raise it.

    A step's commit is a few dict stores and copies; an interrupt between two of them
    would leave half a step. Only the main thread receives signals, and only a Python
    handler (the default one raises ``KeyboardInterrupt``) can be put back and called,
    so elsewhere this does nothing.
    """

    __slots__ = ("_previous", "_received")

    def __enter__(self) -> _HeldInterrupt:
        self._previous: Any = None
        self._received: tuple[int, Any] | None = None
        if threading.current_thread() is threading.main_thread():
            previous = _signals.getsignal(_SIGINT)
            if callable(previous):
                self._previous = previous
                _signals.signal(_SIGINT, self._hold)
        return self

    def _hold(self, signum: int, frame: Any) -> None:
        self._received = (signum, frame)

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            _signals.signal(_SIGINT, self._previous)
            if self._received is not None:
                self._previous(*self._received)


# --------------------------------------------------------------------------------------
# The book's rules, one small class each
# --------------------------------------------------------------------------------------


class SGD(Optimizer):
    """Stochastic gradient descent: ``W <- W - lr * dW``.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.optim import SGD
    >>> params = {"W": np.array([1.0, 2.0])}
    >>> SGD(lr=0.5).update(params, {"W": np.array([2.0, 2.0])})
    >>> params["W"]
    array([0., 1.])
    """

    name = "sgd"

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr=lr)

    def _rule(self, param: Array, grad: Array, state: dict[str, Array],
              step: int) -> tuple[Array, dict[str, Array]]:
        return subtract_scaled(param, grad, self.lr), state


class Momentum(Optimizer):
    """Momentum SGD: ``v <- momentum * v - lr * dW``, then ``W <- W + v``.

    With a constant ``lr`` this is ``torch.optim.SGD(momentum=momentum)``, whose buffer
    is ``-v / lr``.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.optim import Momentum
    >>> params, optimizer = {"W": np.array([0.0])}, Momentum(lr=0.1, momentum=0.5)
    >>> for _ in range(2):
    ...     optimizer.update(params, {"W": np.array([1.0])})
    >>> params["W"]  # v = -0.1, then 0.5 * -0.1 - 0.1 = -0.15
    array([-0.25])
    """

    name = "momentum"
    slots = ("v",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(lr=lr, momentum=momentum)

    def _ranges(self) -> dict[str, tuple[float, float, bool]]:
        return {**super()._ranges(), "momentum": (0.0, 1.0, False)}

    def _rule(self, param: Array, grad: Array, state: dict[str, Array],
              step: int) -> tuple[Array, dict[str, Array]]:
        v = self.momentum * state["v"] - self.lr * grad
        return param + v, {"v": v}


class Nesterov(Momentum):
    """Nesterov's accelerated gradient, as the book's ``common/optimizer.py`` writes it today.

    ``W <- W + momentum**2 * v - (1 + momentum) * lr * dW``, with the velocity ``v``
    from *before* this step, then ``v <- momentum * v - lr * dW``.

    This is the rule of Bengio et al. (arXiv:1212.0901), the reference the book cites,
    and it equals ``torch.optim.SGD(momentum=momentum, nesterov=True)`` with a constant
    ``lr`` (torch's buffer is ``-v / lr``). The book's repository fixed its code to this
    rule in January 2021 (commit 89eadd0, "Fix Nesterov update function"); before that it
    used the *updated* ``v`` in the parameter step, which made every step longer (the
    first one ``(1 + m + m**2) * lr * dW``). bp_xp up to 0.1 reproduced that older code.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.optim import Nesterov
    >>> params, optimizer = {"W": np.array([0.0])}, Nesterov(lr=0.1, momentum=0.5)
    >>> optimizer.update(params, {"W": np.array([1.0])})
    >>> params["W"]  # -(1 + 0.5) * 0.1: no velocity yet
    array([-0.15])
    >>> optimizer.update(params, {"W": np.array([1.0])})
    >>> params["W"]  # -0.15 + 0.25 * (-0.1) - 0.15
    array([-0.325])
    """

    name = "nesterov"

    def _rule(self, param: Array, grad: Array, state: dict[str, Array],
              step: int) -> tuple[Array, dict[str, Array]]:
        m, lr = self.momentum, self.lr
        v = state["v"]
        return param + (m * m) * v - ((1.0 + m) * lr) * grad, {"v": m * v - lr * grad}


class AdaGrad(Optimizer):
    """AdaGrad: ``h <- h + dW * dW``, then ``W <- W - lr * dW / (sqrt(h) + 1e-7)``.

    Equal to ``torch.optim.Adagrad(lr=lr, eps=1e-7)``.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.optim import AdaGrad
    >>> params = {"W": np.array([1.0])}
    >>> AdaGrad(lr=0.5).update(params, {"W": np.array([4.0])})
    >>> params["W"].round(6)  # 1 - 0.5 * 4 / (4 + 1e-7)
    array([0.5])
    """

    name = "adagrad"
    slots = ("h",)

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr=lr)

    def _rule(self, param: Array, grad: Array, state: dict[str, Array],
              step: int) -> tuple[Array, dict[str, Array]]:
        xp = _namespace(param)
        h = state["h"] + grad * grad
        return param - self.lr * grad / (xp.sqrt(h) + EPSILON), {"h": h}


class RMSprop(Optimizer):
    """RMSprop: ``h <- decay_rate * h + (1 - decay_rate) * dW * dW``, then AdaGrad's step.

    Equal to ``torch.optim.RMSprop(lr=lr, alpha=decay_rate, eps=1e-7)``.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.optim import RMSprop
    >>> params = {"W": np.array([1.0])}
    >>> RMSprop(lr=0.1, decay_rate=0.75).update(params, {"W": np.array([2.0])})
    >>> params["W"].round(6)  # h = 0.25 * 4 = 1, so 1 - 0.1 * 2 / 1
    array([0.8])
    """

    name = "rmsprop"
    slots = ("h",)

    def __init__(self, lr: float = 0.01, decay_rate: float = 0.99) -> None:
        super().__init__(lr=lr, decay_rate=decay_rate)

    def _ranges(self) -> dict[str, tuple[float, float, bool]]:
        return {**super()._ranges(), "decay_rate": (0.0, 1.0, False)}

    def _rule(self, param: Array, grad: Array, state: dict[str, Array],
              step: int) -> tuple[Array, dict[str, Array]]:
        xp = _namespace(param)
        rho = self.decay_rate
        h = rho * state["h"] + (1.0 - rho) * (grad * grad)
        return param - self.lr * grad / (xp.sqrt(h) + EPSILON), {"h": h}


class Adam(Optimizer):
    """Adam as the book writes it, with the bias correction folded into the learning rate.

    With ``t`` the number of this update (1, 2, ...)::

        lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)
        m <- m + (1 - beta1) * (dW - m)
        v <- v + (1 - beta2) * (dW * dW - v)
        W <- W - lr_t * m / (sqrt(v) + 1e-7)

    ``lr_t`` is a Python float computed from the Python ``int`` step, so the step
    creates no float64 array and reads nothing back from the device.

    The epsilon sits where the book puts it, on the *uncorrected* ``sqrt(v)``.
    ``torch.optim.Adam`` (and the Adam paper) add ``eps`` to ``sqrt(v / (1 - beta2**t))``
    instead; the two agree exactly when torch's ``eps`` is ``1e-7 / sqrt(1 - beta2**t)``.

    Examples
    --------
    >>> import numpy as np
    >>> from bp_xp.optim import Adam
    >>> params = {"W": np.array([1.0, 1.0])}
    >>> Adam(lr=0.1).update(params, {"W": np.array([3.0, -0.5])})
    >>> params["W"].round(4)  # the first step moves each weight by about lr, against the sign
    array([0.9, 1.1])
    """

    name = "adam"
    slots = ("m", "v")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999) -> None:
        super().__init__(lr=lr, beta1=beta1, beta2=beta2)

    def _ranges(self) -> dict[str, tuple[float, float, bool]]:
        return {**super()._ranges(), "beta1": (0.0, 1.0, False), "beta2": (0.0, 1.0, False)}

    def _rule(self, param: Array, grad: Array, state: dict[str, Array],
              step: int) -> tuple[Array, dict[str, Array]]:
        xp = _namespace(param)
        beta1, beta2 = self.beta1, self.beta2
        if isinstance(step, int):
            lr_t = self.lr * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)
        else:  # a traced step under jax.jit (bp_xp.compile_step): the same formula, on the device
            lr_t = xp.astype(self.lr * xp.sqrt(1.0 - beta2**step) / (1.0 - beta1**step),
                             param.dtype)
        m = state["m"] + (1.0 - beta1) * (grad - state["m"])
        v = state["v"] + (1.0 - beta2) * (grad * grad - state["v"])
        return param - lr_t * m / (xp.sqrt(v) + EPSILON), {"m": m, "v": v}


#: Every optimizer by its registry name.
OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam)
}


def get_optimizer(name: str, **hyperparameters: float) -> Optimizer:
    """An optimizer by name (case-insensitive), e.g. ``get_optimizer("adam", lr=1e-3)``.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.

    Examples
    --------
    >>> from bp_xp.optim import get_optimizer
    >>> get_optimizer("AdaGrad", lr=0.1)
    AdaGrad(lr=0.1, step=0)
    """
    cls = OPTIMIZERS.get(str(name).lower())
    if cls is None:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    return cls(**hyperparameters)
