"""Training loop: the book's ``train_neuralnet.py`` as a :class:`Trainer` that runs on any backend.

The dataset is checked once on the host (:func:`bp_xp.data.validate_dataset`) and copied
once onto the network's backend and device. Minibatches are then gathered *on the device*
(``xp.take(x_train, idx, axis=0)``) from index arrays drawn on the host by a seeded NumPy
generator, so the same seed visits the same samples in the same order on every backend.

A training step (:meth:`Trainer.train_step`) is a gradient and an optimizer update and
reads nothing back from the device: its loss stays a 0-d device array. Numbers reach the
host once per evaluation, where the step losses since the last evaluation and the two
accuracies are stacked and copied in one transfer.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np  # host-side only: dataset checks and the seeded minibatch order

from ._checks import check_integer
from .backends import Backend, BackendUnavailableError, backend_of, dtype_name, to_numpy
from .compile import CompiledStep, compile_step, train_step, untraceable_layers
from .data import validate_dataset
from .optim import get_optimizer
from .sequential import Sequential

__all__ = ["BookNetwork", "NonFiniteLossError", "Trainer", "plot", "seconds_per_epoch", "train_step"]

Array = Any
History = dict[str, list[Any]]

#: Rows per forward pass when accuracies are evaluated, to bound device memory.
_EVAL_CHUNK = 10_000


class BookNetwork:
    """A network written the book's way, as the :class:`Trainer` uses networks.

    The book's ``common/trainer.py`` trains any object with ``params`` (a dict of arrays the
    layers share), ``gradient(x, t)``, ``loss(x, t)``, ``predict(x)`` and
    ``accuracy(x, t)``: its ``ch07/simple_convnet.py`` and ``ch08/deep_convnet.py`` are such
    classes, built from bp_xp's layers by a ``common/`` shim. This adapter gives the
    Trainer the few things it reads besides (``backend``, ``dtype``, ``loss_and_gradient``)
    and makes accuracies 0-d arrays. The update reaches the book's layers because
    bp_xp's optimizers write a plain dict's mutable arrays in place (NumPy, torch, CuPy);
    on other backends such a network cannot learn (see ``docs/porting.md``).

    Each step runs the network's ``gradient`` and then ``loss`` (one extra forward pass,
    as in the book's Trainer, which also asks for the loss separately), and reads
    nothing back from the device.
    """

    def __init__(self, network: Any) -> None:
        missing = [name for name in ("params", "gradient", "loss", "predict", "accuracy")
                   if not hasattr(network, name)]
        if missing:
            raise TypeError(f"Trainer needs a bp_xp network (a bp_xp.Sequential such as "
                            f"TwoLayerNet) or one written the book's way (params, gradient, "
                            f"loss, predict, accuracy); {type(network).__name__} has no "
                            f"{', '.join(missing)}")
        params = network.params
        if not isinstance(params, Mapping) or not params:
            raise TypeError(f"Trainer: {type(network).__name__}.params must be a non-empty dict "
                            f"of arrays, got {type(params).__name__}")
        first = next(iter(params.values()))
        self.network = network
        # The backend and device of the parameters; on Dask, not the first parameter's own
        # chunks (they are its shape's, and would not fit the data the Trainer places).
        self.backend: Backend = dataclasses.replace(backend_of(first), chunks="auto")
        self.dtype = first.dtype

    @property
    def params(self) -> Any:
        return self.network.params

    def predict(self, x: Array, train_flg: bool = False) -> Array:
        return self.network.predict(x)

    def loss_and_gradient(self, x: Array, t: Array) -> tuple[Array, dict[str, Array]]:
        grads = self.network.gradient(x, t)
        return self.network.loss(x, t), grads

    def accuracy(self, x: Array, t: Array) -> Array:
        return self.backend.xp.asarray(self.network.accuracy(x, t), dtype=self.dtype,
                                       device=self.backend.device)

    def __repr__(self) -> str:
        return f"{type(self.network).__name__} (written the book's way)"


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss: the step is named, the run stops.

    Raised by :meth:`Trainer.evaluate`, the one place where step losses reach the host,
    so detecting it costs no extra device-to-host read.
    """


class Trainer:
    """Train a network with minibatch gradient descent, evaluating once per epoch.

    Parameters
    ----------
    network : Sequential or a network written the book's way
        A bp_xp network (:class:`bp_xp.Sequential`, :class:`bp_xp.TwoLayerNet`,
        :class:`bp_xp.MultiLayerNet`, ...); the Trainer uses only its public API
        (``backend``, ``dtype``, ``params``, ``predict``, ``loss_and_gradient``,
        ``accuracy``). A network written the book's way (``params``, ``gradient``,
        ``loss``, ``predict``, ``accuracy``, such as the book's own ``SimpleConvNet``)
        is trained through :class:`BookNetwork`, eagerly.
    x_train, t_train, x_test, t_test : array-like
        Host NumPy arrays, or arrays of any backend and device. Inputs have shape
        ``(N, features...)``; targets are integer labels ``(N,)`` or one-hot rows
        ``(N, classes)``. They are validated on the host and copied once onto the
        network's backend, device and dtype: data on another backend or device is
        *moved* (through the host), never refused. Your arrays are not modified.
    epochs : int, optional
        Number of epochs (default 20). An epoch is ``N // batch_size`` steps.
    iters : int, optional
        Number of steps instead of epochs (give one or the other).
    batch_size : int
        Samples per step, ``1 <= batch_size <= N`` (100 by default).
    optimizer : str or optimizer
        A name from :data:`bp_xp.optim.OPTIMIZERS` (``"sgd"``, ``"momentum"``,
        ``"adam"``...) or an object with the book's ``update(params, grads)``.
    optimizer_params : mapping, optional
        Keyword arguments of the named optimizer. Default: ``{"lr": 0.1}`` for SGD (the
        book's ``train_neuralnet.py``), the optimizer's own defaults otherwise.
    seed : int, optional
        Seed of the host generator that draws the minibatch order.
    evaluate_every : int, optional
        Steps between evaluations; default one epoch (the book's ``iter_per_epoch``).
        The last step of a run is always evaluated.
    evaluate_sample_num : int, optional
        Evaluate accuracies on the first this-many samples of each set (all by default).
    progress : bool, optional
        Show a tqdm progress bar on stderr. ``None`` (default): only when stderr is a
        terminal.
    verbose : bool
        Print one line per evaluation to stdout.
    compile : bool or "auto"
        Run each step through :func:`bp_xp.compile_step`. ``"auto"`` (default) does so
        where it measurably wins, which is where compile_step compiles at all: on JAX
        (one ``jax.jit`` per batch shape); elsewhere it is the eager step either way.
        ``False`` always runs the eager step; ``True`` requires a bp_xp.optim optimizer.

    mini_batch_size, optimizer_param, evaluate_sample_num_per_epoch
        The book's ``common/trainer.py`` names of ``batch_size``, ``optimizer_params`` and
        ``evaluate_sample_num``, accepted as they are (give one spelling, not both), so
        ``Trainer(network, x_train, t_train, x_test, t_test, epochs=20,
        mini_batch_size=100, optimizer="Adam", optimizer_param={"lr": 0.001},
        evaluate_sample_num_per_epoch=1000)`` runs unchanged. After training, the book's
        ``train_loss_list``, ``train_acc_list`` and ``test_acc_list`` read the history.
        Two defaults differ from the book's on purpose: ``verbose`` is False (a progress
        bar shows on a terminal instead), and SGD by name defaults to ``lr=0.1`` (the
        book's Trainer: 0.01; pass ``optimizer_param`` to choose).

    Notes
    -----
    Each epoch visits a fresh permutation of the training set in ``N // batch_size``
    batches (the remainder is left out, a different one each epoch). The book samples
    with replacement (``np.random.choice``); a permutation makes an epoch mean what it
    says, and is equally cheap.

    The recorded loss of a step is the loss of the forward pass its gradient came from
    (before the update, weight decay included), so it costs no extra forward pass.

    A NaN or infinite loss stops training at the next evaluation with
    :class:`NonFiniteLossError`, naming the first bad step: continuing would only train
    NaNs (and save them). A step interrupted by ``KeyboardInterrupt`` either happened or
    did not: the minibatch pointer moves only after the optimizer's update, which is all
    or nothing, so resuming after Ctrl-C skips no batch.

    Examples
    --------
    >>> import numpy as np, bp_xp
    >>> from bp_xp.train import Trainer
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((200, 4)).astype(np.float32)
    >>> t = (x[:, 0] > 0).astype(np.int64)
    >>> net = bp_xp.TwoLayerNet(4, 8, 2, weight_init_std=0.5, seed=0)
    >>> trainer = Trainer(net, x, t, x, t, epochs=5, batch_size=20, seed=0, progress=False)
    >>> history = trainer.train()
    >>> len(history["loss"]), history["epoch"]
    (50, [1.0, 2.0, 3.0, 4.0, 5.0])
    >>> history["test_acc"][-1] > 0.9
    True
    """

    def __init__(
        self,
        network: Any,
        x_train: Any,
        t_train: Any,
        x_test: Any,
        t_test: Any,
        *,
        epochs: int | None = None,
        iters: int | None = None,
        batch_size: int | None = None,
        optimizer: Any = "sgd",
        optimizer_params: Mapping[str, Any] | None = None,
        seed: int | None = None,
        evaluate_every: int | None = None,
        evaluate_sample_num: int | None = None,
        progress: bool | None = None,
        verbose: bool = False,
        compile: bool | str = "auto",
        mini_batch_size: int | None = None,
        optimizer_param: Mapping[str, Any] | None = None,
        evaluate_sample_num_per_epoch: int | None = None,
    ) -> None:
        # The book's common/trainer.py names, as aliases (one spelling per argument).
        batch_size = _alias("batch_size", batch_size, 100, "mini_batch_size", mini_batch_size)
        optimizer_params = _alias("optimizer_params", optimizer_params, None, "optimizer_param",
                                  optimizer_param)
        evaluate_sample_num = _alias("evaluate_sample_num", evaluate_sample_num, None,
                                     "evaluate_sample_num_per_epoch",
                                     evaluate_sample_num_per_epoch)
        if epochs is not None and iters is not None:
            raise ValueError(f"give epochs or iters, not both (got epochs={epochs}, iters={iters})")
        epochs = 20 if epochs is None and iters is None else epochs
        for name, value in (("epochs", epochs), ("iters", iters), ("batch_size", batch_size),
                            ("evaluate_every", evaluate_every),
                            ("evaluate_sample_num", evaluate_sample_num)):
            if value is not None or name == "batch_size":
                check_integer(value, name)
        if progress not in (None, True, False):
            raise TypeError(f"progress must be None, True or False, got {progress!r}")
        if compile not in ("auto", True, False):
            raise TypeError(f"compile must be True, False or 'auto', got {compile!r}")
        optimizer = _make_optimizer(optimizer, optimizer_params)

        if not isinstance(network, Sequential):
            # A network written the book's way (params dict, gradient, accuracy, predict):
            # trained through an adapter, eagerly.
            network = BookNetwork(network)
            if compile is True:
                raise ValueError("compile=True needs a bp_xp network; a network written the "
                                 "book's way trains eagerly")
            compile = False
        backend: Backend = network.backend
        x_tr, t_tr = _checked_host_data("train", network, x_train, t_train)
        x_te, t_te = _checked_host_data("test", network, x_test, t_test)
        n_train = x_tr.shape[0]
        if batch_size > n_train:
            raise ValueError(
                f"batch_size must be between 1 and the number of training samples ({n_train}), "
                f"got {batch_size}"
            )
        self.iters_per_epoch: int = n_train // batch_size
        self.max_iter: int = iters if iters is not None else epochs * self.iters_per_epoch
        if evaluate_every is None:
            evaluate_every = self.iters_per_epoch

        self.network = network
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.evaluate_every = evaluate_every
        self.evaluate_sample_num = evaluate_sample_num
        self.progress = progress
        self.verbose = verbose
        self.seed = seed
        self.compile = compile
        self._step_fn: Any = None

        index_dtype = _index_dtype(backend)
        self._xp = backend.xp
        self._index_dtype = index_dtype
        self.x_train = backend.asarray(x_tr, dtype=network.dtype)
        self.t_train = _targets_on(backend, t_tr, network.dtype, index_dtype)
        self.x_test = backend.asarray(x_te, dtype=network.dtype)
        self.t_test = _targets_on(backend, t_te, network.dtype, index_dtype)

        self._rng = np.random.default_rng(seed)
        self._epoch_batches: Array | None = None  # (iters_per_epoch, batch_size) on the device
        self._batch_in_epoch = 0
        self._pending_losses: list[Array] = []
        self._last_eval_time = time.perf_counter()
        self._last_eval_cpu = time.process_time()
        self._last_eval_iter = 0
        self.iteration = 0
        self.history: History = {
            "loss": [], "iteration": [], "epoch": [], "train_loss": [],
            "train_acc": [], "test_acc": [], "time": [], "cpu_time": [],
        }

    # The book's common/trainer.py lists, read from the history.

    @property
    def train_loss_list(self) -> list[float]:
        """The loss of every step (the book's ``train_loss_list``; ``history["loss"]``)."""
        return self.history["loss"]

    @property
    def train_acc_list(self) -> list[float]:
        """Training accuracy at each evaluation (the book's ``train_acc_list``)."""
        return self.history["train_acc"]

    @property
    def test_acc_list(self) -> list[float]:
        """Test accuracy at each evaluation (the book's ``test_acc_list``)."""
        return self.history["test_acc"]

    @property
    def epoch(self) -> float:
        """Epochs done so far (fractional between epoch boundaries)."""
        return self.iteration / self.iters_per_epoch

    # -- one step ------------------------------------------------------------------------

    def train_step(self) -> Array:
        """One minibatch: gradient and optimizer update, with no device-to-host read.

        Returns
        -------
        array
            The batch's loss before the update, a 0-d array on the network's device.
        """
        idx = self._next_batch()
        x = self._xp.take(self.x_train, idx, axis=0)
        t = self._xp.take(self.t_train, idx, axis=0)
        loss = self._step()(x, t)
        # Only now is the step done: an interrupt before this line leaves the pointer on
        # the same batch, so resuming repeats nothing and skips nothing.
        self._batch_in_epoch += 1
        self._pending_losses.append(loss)
        self.iteration += 1
        return loss

    def _step(self) -> Any:
        """The step function for the current network and optimizer (compiled once)."""
        step = self._step_fn
        if step is None or step.network is not self.network or step.optimizer is not self.optimizer:
            wanted = self.compile is True or (
                self.compile == "auto"
                and callable(getattr(self.optimizer, "functional_update", None))
                and not untraceable_layers(self.network))
            # CompiledStep itself is the eager step (loss_and_gradient, then update)
            make = compile_step if wanted else CompiledStep
            step = self._step_fn = make(self.network, self.optimizer)
        return step

    def _next_batch(self) -> Array:
        if self._epoch_batches is None or self._batch_in_epoch == self.iters_per_epoch:
            self._epoch_batches = self._draw_epoch()
            self._batch_in_epoch = 0
        return self._epoch_batches[self._batch_in_epoch, ...]

    def _draw_epoch(self) -> Array:
        # One host-to-device copy per epoch: all of its batches as rows of one array.
        n_train = self.x_train.shape[0]
        used = self.iters_per_epoch * self.batch_size
        order = self._rng.permutation(n_train)[:used]
        batches = order.reshape(self.iters_per_epoch, self.batch_size)
        return self.network.backend.asarray(batches, dtype=self._index_dtype)

    # -- evaluation ----------------------------------------------------------------------

    def evaluate(self) -> dict[str, Any]:
        """Accuracies and mean step loss since the last evaluation, as Python numbers.

        This is the one place that reads from the device: the pending step losses and both
        accuracies travel to the host in one transfer. The record is appended to
        :attr:`history` and returned.
        """
        xp = self._xp
        n = self.evaluate_sample_num
        train_acc = self._accuracy(self.x_train, self.t_train, n)
        test_acc = self._accuracy(self.x_test, self.t_test, n)
        values = xp.stack([*self._pending_losses, train_acc, test_acc])
        host = to_numpy(values).astype(np.float64)
        losses = [float(v) for v in host[:-2]]
        first_step = self.iteration - len(losses) + 1
        self._pending_losses = []
        bad = [i for i, value in enumerate(losses) if not math.isfinite(value)]
        if bad:
            raise NonFiniteLossError(
                f"the loss became {losses[bad[0]]} at step {first_step + bad[0]} (of "
                f"{self.iteration} so far); the parameters are no longer finite. Lower the "
                f"learning rate (optimizer {self.optimizer!r}), check the input scale (pixels "
                "in [0, 1]?) and start again from a checkpoint or a new network"
            )
        self._settle_lazy_state()
        now, cpu_now = time.perf_counter(), time.process_time()
        record = {
            "iteration": self.iteration,
            "epoch": self.epoch,
            "train_loss": statistics.fmean(losses) if losses else math.nan,
            "train_acc": float(host[-2]),
            "test_acc": float(host[-1]),
            "time": now - self._last_eval_time,
            "cpu_time": cpu_now - self._last_eval_cpu,
        }
        self._last_eval_time, self._last_eval_cpu = now, cpu_now
        self._last_eval_iter = self.iteration
        self.history["loss"].extend(losses)
        for key, value in record.items():
            self.history[key].append(value)
        return record

    def _accuracy(self, x: Array, t: Array, sample_num: int | None) -> Array:
        n = x.shape[0] if sample_num is None else min(sample_num, x.shape[0])
        total = None
        for start in range(0, n, _EVAL_CHUNK):
            stop = min(start + _EVAL_CHUNK, n)
            part = self.network.accuracy(x[start:stop, ...], t[start:stop, ...]) * (stop - start)
            total = part if total is None else total + part
        return total / n

    def _settle_lazy_state(self) -> None:
        # A lazy backend (Dask) builds one graph across steps; materialise it at each
        # evaluation so that it stays one epoch long instead of growing (and being
        # recomputed) for the whole run. Backends that compute eagerly have nothing to settle.
        if self.network.backend.spec.settle is None:
            return
        from .distributed import materialize

        materialize(self.network, self.optimizer)

    # -- the loop ------------------------------------------------------------------------

    def train(self) -> History:
        """Run the configured epochs (or iters), evaluating every ``evaluate_every`` steps.

        Calling it again trains for as many steps again and extends the history.

        Returns
        -------
        dict of lists
            ``loss`` (one float per step), and per evaluation ``iteration``, ``epoch``,
            ``train_loss`` (mean step loss since the previous evaluation), ``train_acc``,
            ``test_acc``, ``time`` (wall seconds since the previous evaluation, including
            it) and ``cpu_time`` (this process's CPU seconds over the same span, all threads:
            on a shared machine the honest measure of work). All plain Python numbers.
        """
        show = _isatty(sys.stderr) if self.progress is None else self.progress
        self._last_eval_time, self._last_eval_cpu = time.perf_counter(), time.process_time()
        end = self.iteration + self.max_iter
        with _progress_bar(show, self.max_iter) as bar:
            while self.iteration < end:
                self.train_step()
                bar.update(1)
                if (self.iteration - self._last_eval_iter >= self.evaluate_every
                        or self.iteration == end):
                    record = self.evaluate()
                    bar.set_postfix_str(f"train acc {record['train_acc']:.4f}, "
                                        f"test acc {record['test_acc']:.4f}", refresh=False)
                    if self.verbose:
                        bar.write(_format_record(record), file=sys.stdout)
        return self.history


class _NoBar:
    """What ``train`` needs of a tqdm bar, doing nothing: ``progress=False`` needs no tqdm."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        return None

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        return None

    def write(self, text: str, file: Any = None) -> None:
        print(text, file=file)


def _progress_bar(show: bool, total: int) -> Any:
    """A tqdm bar on stderr where one is shown; tqdm is imported only then."""
    if not show:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, file=sys.stderr, unit="step", dynamic_ncols=True)


def seconds_per_epoch(history: Mapping[str, list[Any]], iters_per_epoch: int) -> float:
    """Median wall time per epoch over a history's evaluation intervals.

    The median keeps one slow interval (a first-call compilation, a warm-up) from
    dominating.

    Examples
    --------
    >>> from bp_xp.train import seconds_per_epoch
    >>> seconds_per_epoch({"iteration": [10, 20, 25], "time": [2.0, 1.0, 0.5]}, 10)
    1.0
    """
    per_epoch = []
    previous = 0
    for iteration, seconds in zip(history["iteration"], history["time"]):
        steps = iteration - previous
        previous = iteration
        if steps > 0:
            per_epoch.append(seconds * iters_per_epoch / steps)
    if not per_epoch:
        raise ValueError("the history has no evaluation interval to time")
    return statistics.median(per_epoch)


def plot(history: Mapping[str, list[Any]], path: str | os.PathLike[str]) -> Any:
    """Save the loss and accuracy curves of a :meth:`Trainer.train` history as an image.

    Uses matplotlib's Agg canvas directly (no display, no pyplot state); the format
    follows the file's suffix, PNG when it has none.

    Parameters
    ----------
    history : mapping
        As returned by :meth:`Trainer.train`.
    path : str or os.PathLike

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from bp_xp.train import plot
    >>> history = {"loss": [2.3, 1.0, 0.5, 0.4], "epoch": [1.0, 2.0],
    ...            "train_acc": [0.7, 0.9], "test_acc": [0.6, 0.8]}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     fig = plot(history, pathlib.Path(tmp) / "curves.png")
    ...     (pathlib.Path(tmp) / "curves.png").read_bytes()[:4]
    b'\\x89PNG'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    for key in ("loss", "epoch", "train_acc", "test_acc"):
        if key not in history:
            raise KeyError(f"history has no {key!r}; pass the dict Trainer.train() returns")
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(np.arange(1, len(history["loss"]) + 1), history["loss"], linewidth=0.8)
    loss_ax.set(xlabel="iteration", ylabel="loss", title="training loss")
    acc_ax.plot(history["epoch"], history["train_acc"], marker="o", label="train")
    acc_ax.plot(history["epoch"], history["test_acc"], marker="s", linestyle="--", label="test")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", ylim=(0.0, 1.0), title="accuracy")
    acc_ax.legend(loc="lower right")
    fig.savefig(os.fspath(path), format=None if os.path.splitext(path)[1] else "png", dpi=100)
    return fig


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _format_record(record: Mapping[str, Any]) -> str:
    epoch = record["epoch"]
    shown = f"{epoch:6.0f}" if float(epoch).is_integer() else f"{epoch:6.2f}"
    return (f"epoch {shown} | train acc {record['train_acc']:.4f} | "
            f"test acc {record['test_acc']:.4f} | loss {record['train_loss']:.4f} | "
            f"{record['time']:.2f} s ({record['cpu_time']:.2f} s CPU)")


def _checked_host_data(part: str, network: Sequential, x: Any,
                       t: Any) -> tuple[np.ndarray, np.ndarray]:
    """Host copies of ``x`` (in the network's dtype) and ``t``, checked against the network.

    Values are validated *after* the cast to the network's dtype (1e300 is finite in
    float64 and infinite in float32), and the network's own layers say whether a sample
    fits: one sample is run through ``predict`` (inference mode) to learn the number of
    classes, which reads only shapes.
    """
    from .data import DatasetError

    x_host, t_host = to_numpy(x), to_numpy(t)
    if x_host.ndim < 2:
        raise DatasetError(f"{part} data: x must have at least 2 dimensions (N, features...), "
                           f"got shape {x_host.shape}")
    if x_host.shape[0] == 0:
        raise DatasetError(f"{part} data: x holds no samples (shape {x_host.shape})")
    if x_host.dtype.kind not in "biuf":
        raise DatasetError(f"{part} data: x must hold numbers, got dtype {x_host.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        x_host = x_host.astype(dtype_name(network.dtype), copy=False)
    try:
        scores = network.predict(network.backend.asarray(x_host[:1], dtype=network.dtype))
    except ValueError as exc:
        raise DatasetError(f"{part} data: x has shape {x_host.shape}, which does not fit the network: "
                           f"{exc}") from exc
    num_classes = int(scores.shape[-1])
    try:
        validate_dataset(x_host, t_host, num_classes)
    except DatasetError as exc:
        raise DatasetError(f"{part} data: {exc}") from exc
    return x_host, t_host



def _index_dtype(backend: Backend) -> Any:
    try:
        return backend.dtype("int64")
    except BackendUnavailableError:  # JAX without x64
        return backend.dtype("int32")


def _targets_on(backend: Backend, t: np.ndarray, dtype: Any, index_dtype: Any) -> Array:
    if t.ndim == 1:
        return backend.asarray(t, dtype=index_dtype)
    return backend.asarray(t, dtype=dtype)  # one-hot rows compute in the network's dtype


def _make_optimizer(optimizer: Any, params: Mapping[str, Any] | None) -> Any:
    if isinstance(optimizer, str):
        if params is None:
            params = {"lr": 0.1} if optimizer.lower() == "sgd" else {}
        return get_optimizer(optimizer, **dict(params))
    if not callable(getattr(optimizer, "update", None)):
        raise TypeError(
            f"optimizer must be a name or an object with update(params, grads), "
            f"got {type(optimizer).__name__}"
        )
    if params:
        raise ValueError("optimizer_params apply to an optimizer given by name, not to an instance")
    return optimizer


def _alias(name: str, value: Any, default: Any, book_name: str, book_value: Any) -> Any:
    """``value`` or the book's spelling of it (``mini_batch_size`` for ``batch_size``)."""
    if book_value is None:
        return default if value is None else value
    if value is not None:
        raise TypeError(f"give {name} or the book's {book_name}, not both (got {name}={value!r}, "
                        f"{book_name}={book_value!r})")
    return book_value


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced or closed streams
        return False
