"""The ``bp-xp`` command: ``backends``, ``train``, ``gradcheck`` and ``bench``.

``python -m bp_xp`` runs the same command (``bp_xp/__main__.py``). ``bp-xp train`` checks
every flag and output path before it loads or trains anything: a model is one entry of
:data:`MODELS`, which says which model flags it takes (any other is refused, naming it).

``bp-xp train`` and ``examples/train_mnist.py`` share :func:`add_train_arguments` and
:func:`run_train`; ``bp-xp gradcheck`` and ``examples/gradient_check.py`` share
:func:`add_gradcheck_arguments` and :func:`run_gradcheck`. User errors (an unknown or
unavailable backend, a missing dataset, a bad flag value) end with a one-line message and
exit status 2, never a traceback.

Examples
--------
>>> from bp_xp.cli import build_parser
>>> args = build_parser().parse_args(["train", "--backend", "torch:cuda", "--iters", "500"])
>>> args.backend, args.iters, args.hidden, args.optimizer  # --hidden: the model's default
('torch:cuda', 500, None, 'sgd')
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "MODELS",
    "TRAIN_DEFAULTS",
    "ModelSpec",
    "check_train_arguments",
    "add_gradcheck_arguments",
    "add_train_arguments",
    "build_parser",
    "main",
    "run_backends",
    "run_bench",
    "run_command",
    "run_gradcheck",
    "run_train",
]

_PROG = "bp-xp"
#: Optional dependencies of the command itself whose absence is a user error, not a bug
#: (the array libraries come from the backend registry, see :func:`_missing_module_hint`).
_OPTIONAL_MODULES = frozenset({"tqdm", "matplotlib"})


def _missing_module_hint(name: str | None) -> str | None:
    """How to install a missing optional module, or ``None`` when it is not optional.

    A backend's library names its extra in the backend's spec, so a new backend needs no
    entry here.
    """
    from .backends import backend_names, get_spec

    root = (name or "").partition(".")[0]
    if root in _OPTIONAL_MODULES:
        return 'pip install "bp_xp[train]"'
    for backend in backend_names():
        spec = get_spec(backend)
        if spec is not None and spec.module.partition(".")[0] == root:
            return f'pip install "bp_xp[{spec.extra}]"'
    return None


# --------------------------------------------------------------------------------------
# bp-xp backends
# --------------------------------------------------------------------------------------


def run_backends(args: argparse.Namespace | None = None) -> int:
    """Print which backends work here: name, available, version, and devices (or why not).

    One row per backend; a long devices list or reason wraps under its column so the
    table stays within 100 columns.
    """
    import textwrap

    from .backends import backend_info

    rows = [("backend", "available", "version", "devices (or why not)")]
    for info in backend_info():
        rows.append((info["name"], "yes" if info["available"] else "no", info["version"] or "-",
                     ", ".join(info["devices"]) if info["available"] else info["reason"]))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    indent = sum(widths) + 2 * len(widths)
    for row in rows:
        head = "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  "
        lines = textwrap.wrap(row[3], width=max(100 - indent, 30), break_long_words=False,
                              break_on_hyphens=False) or ["-"]
        print(head + lines[0])
        for line in lines[1:]:
            print(" " * indent + line)
    return 0


# --------------------------------------------------------------------------------------
# bp-xp train (and examples/train_mnist.py)
# --------------------------------------------------------------------------------------

#: Defaults of ``bp-xp train``: the book's 784-50-10 net, SGD with lr 0.1 and batches of
#: 100, for 50 epochs (2,000 steps) of the 4,000 offline digits: about 0.92 test accuracy
#: in a few seconds on a CPU.
TRAIN_DEFAULTS: dict[str, Any] = {"hidden": 50, "epochs": 50, "batch_size": 100}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One ``--model`` of ``bp-xp train``: what it builds and which model flags it takes.

    A new model is one entry of :data:`MODELS`. ``flags`` names the model flags (argparse
    destinations, e.g. ``"hidden"``) it uses; any other model flag given on the command
    line is refused before anything is loaded, naming the flag. ``hidden_layers`` is how
    many sizes ``--hidden`` may give (``None``: any number). ``defaults`` fill the model's
    flags that were not given. ``build(args, input_shape, backend)`` returns the network;
    ``parameters(args, input_shape)`` counts its parameters, so that a size too large for
    the machine is refused before any array is allocated. ``flatten`` says whether the
    model reads flat vectors (``True``) or ``(1, 28, 28)`` images.
    """

    help: str
    build: Callable[[argparse.Namespace, tuple[int, ...], Any], Any]
    parameters: Callable[[argparse.Namespace, tuple[int, ...]], int]
    flatten: bool = True
    flags: frozenset[str] = frozenset()
    hidden_layers: int | None = None
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)


#: The model flags of ``bp-xp train``: each must be accepted by the chosen model.
MODEL_FLAGS = {"hidden": "--hidden"}


def _build_mlp(args: argparse.Namespace, input_shape: tuple[int, ...], backend: Any) -> Any:
    from . import MultiLayerNet, TwoLayerNet

    if len(args.hidden) == 1:
        return TwoLayerNet(input_shape[0], args.hidden[0], 10, backend=backend, dtype=args.dtype,
                           seed=args.seed)
    return MultiLayerNet(input_shape[0], list(args.hidden), 10, backend=backend, dtype=args.dtype,
                         seed=args.seed)


def _mlp_parameters(args: argparse.Namespace, input_shape: tuple[int, ...]) -> int:
    sizes = (math.prod(input_shape), *args.hidden, 10)
    return sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))


def _build_convnet(args: argparse.Namespace, input_shape: tuple[int, ...], backend: Any) -> Any:
    from .convnet import SimpleConvNet

    return SimpleConvNet(input_dim=input_shape, hidden_size=args.hidden[0], backend=backend,
                         dtype=args.dtype, seed=args.seed)


def _convnet_parameters(args: argparse.Namespace, input_shape: tuple[int, ...]) -> int:
    # the book's conv_param: 30 filters 5x5, stride 1, no padding, then 2x2 pooling
    _, h, w = input_shape
    pooled = 30 * ((h - 5 + 1) // 2) * ((w - 5 + 1) // 2)
    return 30 * (input_shape[0] * 25 + 1) + (pooled + 1) * args.hidden[0] + (args.hidden[0] + 1) * 10


def _build_deepconvnet(args: argparse.Namespace, input_shape: tuple[int, ...], backend: Any) -> Any:
    from .convnet import DeepConvNet

    return DeepConvNet(input_dim=input_shape, hidden_size=args.hidden[0], backend=backend,
                       dtype=args.dtype, seed=args.seed)


def _deepconvnet_parameters(args: argparse.Namespace, input_shape: tuple[int, ...]) -> int:
    from .convnet import deep_convnet_parameter_shapes

    shapes = deep_convnet_parameter_shapes(input_shape, args.hidden[0], 10)
    return sum(math.prod(shape) for shape in shapes.values())


#: ``--model`` choices of ``bp-xp train``, by name.
MODELS: dict[str, ModelSpec] = {
    "mlp": ModelSpec(
        help="TwoLayerNet/MultiLayerNet (default)", build=_build_mlp,
        parameters=_mlp_parameters, flags=frozenset({"hidden"}),
        defaults={"hidden": [TRAIN_DEFAULTS["hidden"]]}),
    "convnet": ModelSpec(
        help="the book's SimpleConvNet (ch. 7) on 1x28x28 images, one hidden layer of 100 "
             "unless --hidden gives another size (try --optimizer adam --lr 0.003 --epochs 5)",
        build=_build_convnet, parameters=_convnet_parameters, flatten=False,
        flags=frozenset({"hidden"}), hidden_layers=1, defaults={"hidden": [100]}),
    "deepconvnet": ModelSpec(
        help="the book's DeepConvNet (ch. 8) on 1x28x28 images, hidden layer of 50 unless "
             "--hidden gives another size (the book: --optimizer adam --lr 0.001)",
        build=_build_deepconvnet, parameters=_deepconvnet_parameters, flatten=False,
        flags=frozenset({"hidden"}), hidden_layers=1, defaults={"hidden": [50]}),
}


def check_train_arguments(args: argparse.Namespace) -> ModelSpec:
    """Check the flags of ``bp-xp train`` against each other and the model; fill the model's
    defaults. Runs before anything is loaded or trained; raises a one-line usage error."""
    spec = MODELS[getattr(args, "model", "mlp")]
    for dest, flag in MODEL_FLAGS.items():
        given = getattr(args, dest, None) is not None
        if given and dest not in spec.flags:
            raise _UsageError(f"{flag} does not apply to --model {args.model}")
        if not given:
            setattr(args, dest, spec.defaults.get(dest))
    if spec.hidden_layers is not None and args.hidden is not None \
            and len(args.hidden) != spec.hidden_layers:
        raise _UsageError(f"--model {args.model} has {spec.hidden_layers} hidden layer(s): "
                          f"--hidden takes {spec.hidden_layers} size(s), got {len(args.hidden)} "
                          f"({' '.join(map(str, args.hidden))})")
    for flag, path in (("--plot", args.plot), ("--save", args.save)):
        _require_writable_file(flag, path)
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        raise _UsageError("--plot needs matplotlib, which is not installed: "
                          "pip install \"bp_xp[train]\"")
    return spec


def _check_model_size(spec: ModelSpec, args: argparse.Namespace, input_shape: tuple[int, ...]) -> None:
    """Refuse a network whose initial weights alone (drawn in float64 on the host) would
    not fit this machine's memory, before allocating any of them."""
    count = spec.parameters(args, input_shape)
    needed = 8 * count
    available = _physical_memory()
    if available is not None and needed > available:
        raise _UsageError(f"--model {args.model} with these sizes has {count:,} parameters, "
                          f"{_gib(needed)} to initialise on the host; this machine has "
                          f"{_gib(available)} of memory: choose smaller sizes (--hidden)")


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on this platform
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the flags of ``bp-xp train`` to ``parser`` and return it."""
    from .data import DATASETS
    from .optim import OPTIMIZERS

    where = parser.add_argument_group("where to run")
    where.add_argument("--backend", default="numpy",
                       help="numpy, torch, torch:cuda, cupy, jax, jax:gpu, dask, array_api_strict")
    where.add_argument("--device", default=None, help="overrides the backend's device, e.g. cuda:1")
    where.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    where.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                       help="run each step through bp_xp.compile_step (default: where it wins, "
                            "i.e. jax.jit on JAX; the eager step elsewhere)")

    model = parser.add_argument_group("model and optimizer")
    model.add_argument("--model", default="mlp", choices=tuple(MODELS),
                       help="; ".join(f"{name}: {spec.help}" for name, spec in MODELS.items()))
    model.add_argument("--hidden", type=_positive_int, nargs="+", metavar="SIZE", default=None,
                       help="hidden layer size(s), for the models that have them (mlp: one size "
                            "gives the book's TwoLayerNet, more a MultiLayerNet; default "
                            f"{TRAIN_DEFAULTS['hidden']}; convnet: one size, default 100)")
    model.add_argument("--optimizer", default="sgd", choices=sorted(OPTIMIZERS))
    model.add_argument("--lr", type=_positive_float, default=None,
                       help="learning rate (default: 0.1 for sgd, the optimizer's own otherwise)")
    length = model.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=_positive_int, default=None,
                        help=f"epochs to train (default {TRAIN_DEFAULTS['epochs']})")
    length.add_argument("--iters", type=_positive_int, default=None, help="steps to train instead")
    model.add_argument("--batch-size", type=_positive_int, default=TRAIN_DEFAULTS["batch_size"])
    model.add_argument("--seed", type=_seed, default=0,
                       help="seed of the initial weights and the minibatch order (default 0)")

    data = parser.add_argument_group("data and output")
    data.add_argument("--dataset", default=DATASETS[0], choices=DATASETS,
                      help="mnist-5k: 4,000/1,000 offline digits (default); "
                           "mnist: full, downloaded")
    data.add_argument("--data-dir", default=None, help="cache directory of downloaded datasets")
    data.add_argument("--plot", metavar="PATH", default=None, help="save the curves as a PNG")
    data.add_argument("--save", metavar="PATH", default=None,
                      help="save network and optimizer to a checkpoint (a safetensors file)")
    data.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    return parser


def run_train(args: argparse.Namespace) -> int:
    """Train on MNIST as ``args`` (from :func:`add_train_arguments`) say; print the results."""
    from . import resolve_backend
    from .data import load_dataset
    from .train import NonFiniteLossError, Trainer, plot, seconds_per_epoch

    spec = check_train_arguments(args)  # every flag and path, before loading or training
    if args.dtype == "float64":
        _enable_jax_float64(args.backend)
    backend = resolve_backend(args.backend, args.device)
    input_shape = (784,) if spec.flatten else (1, 28, 28)
    _check_model_size(spec, args, input_shape)
    (x_train, t_train), (x_test, t_test) = load_dataset(args.dataset, data_dir=args.data_dir,
                                                        flatten=spec.flatten)
    net = spec.build(args, tuple(x_train.shape[1:]), backend)
    epochs = TRAIN_DEFAULTS["epochs"] if args.epochs is None and args.iters is None else args.epochs
    trainer = Trainer(
        net, x_train, t_train, x_test, t_test, epochs=epochs, iters=args.iters,
        batch_size=args.batch_size, optimizer=args.optimizer,
        optimizer_params=None if args.lr is None else {"lr": args.lr}, seed=args.seed,
        progress=False if args.no_progress else None, verbose=True,
        compile="auto" if args.compile is None else args.compile,
    )
    print(f"training {net} on {args.dataset} with {args.optimizer}, batch {args.batch_size}, "
          f"{trainer.max_iter} steps ({trainer.iters_per_epoch} per epoch)")
    try:
        history = trainer.train()
    except KeyboardInterrupt:
        # Each step is all or nothing, so the state reached so far is consistent: keep it.
        if args.save:
            _save_checkpoint(args, net, trainer, interrupted=True)
            print(f"interrupted at step {trainer.iteration}; the state reached so far is saved "
                  f"to {args.save} (bp_xp.checkpoint.load resumes it)", file=sys.stderr)
        raise
    except NonFiniteLossError as exc:
        raise _UsageError(f"training stopped: {exc}; nothing was saved") from exc
    per_epoch = seconds_per_epoch(history, trainer.iters_per_epoch)
    print(f"final: train acc {history['train_acc'][-1]:.4f}, "
          f"test acc {history['test_acc'][-1]:.4f}; "
          f"{_seconds(per_epoch)} per epoch, {_seconds(sum(history['time']))} in all")
    if args.save:  # before the plot: a plot that fails must not cost the trained network
        _save_checkpoint(args, net, trainer, interrupted=False)
        print(f"checkpoint saved to {args.save}")
    if args.plot:
        plot(history, args.plot)
        print(f"curves saved to {args.plot}")
    return 0


def _save_checkpoint(args: argparse.Namespace, net: Any, trainer: Any, *, interrupted: bool) -> None:
    from .checkpoint import save

    history = trainer.history
    save(args.save, net, trainer.optimizer, metadata={
        "dataset": args.dataset, "iteration": trainer.iteration, "seed": args.seed,
        "interrupted": interrupted,
        "train_acc": history["train_acc"][-1] if history["train_acc"] else None,
        "test_acc": history["test_acc"][-1] if history["test_acc"] else None,
    })


def _seconds(seconds: float) -> str:
    """A duration with the precision it deserves: "0.012 s", "2.4 s", "95 s"."""
    if seconds < 1:
        return f"{seconds:.3f} s"
    return f"{seconds:.1f} s" if seconds < 60 else f"{seconds:.0f} s"


# --------------------------------------------------------------------------------------
# bp-xp gradcheck (and examples/gradient_check.py)
# --------------------------------------------------------------------------------------

#: Largest relative error a float64 gradient check accepts.
GRADCHECK_LIMIT = 1e-6


def add_gradcheck_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the flags of ``bp-xp gradcheck`` to ``parser`` and return it."""
    parser.add_argument("--backend", default="numpy",
                        help="e.g. numpy, torch, torch:cuda, jax, cupy")
    parser.add_argument("--device", default=None, help="overrides the backend's device")
    parser.add_argument("--batch", type=_positive_int, default=3)
    parser.add_argument("--seed", type=_seed, default=0)
    return parser


def run_gradcheck(args: argparse.Namespace) -> int:
    """Backprop against numerical gradients in float64; 0 when every error is below 1e-6."""
    import numpy as np  # host-side only: the seeded random batch

    from . import TwoLayerNet, gradient_check, resolve_backend

    _enable_jax_float64(args.backend)
    backend = resolve_backend(args.backend, args.device)
    rng = np.random.default_rng(args.seed)
    # A small net keeps the numerical gradient (two losses per parameter) quick.
    net = TwoLayerNet(784, 10, 10, weight_init_std=0.1, backend=backend, seed=args.seed)
    x = backend.asarray(rng.random((args.batch, 784)), dtype="float32")
    t = backend.asarray(rng.integers(0, 10, size=args.batch), dtype="int64")
    errors = gradient_check(net, x, t)
    print(f"gradient check on {backend} (float64), batch {args.batch}")
    for key, err in errors.items():
        print(f"{key}: {err:.3e}")
    worst = max(errors.values())
    print(f"max relative error {worst:.3e}: {'OK' if worst < GRADCHECK_LIMIT else 'TOO LARGE'}")
    return 0 if worst < GRADCHECK_LIMIT else 1


# --------------------------------------------------------------------------------------
# bp-xp bench
# --------------------------------------------------------------------------------------


#: The benchmark script, relative to the root of a source checkout (not in the wheel).
_BENCH_SCRIPT = os.path.join("benchmarks", "bench_step.py")


def _find_bench_script() -> str | None:
    """The benchmark script of the checkout bp_xp is imported from, else of the current directory.

    The first covers ``pip install -e .`` and running from the source tree wherever the
    shell is; the second a checkout whose bp_xp is installed elsewhere.
    """
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for root in dict.fromkeys((package_root, os.getcwd())):
        script = os.path.join(root, _BENCH_SCRIPT)
        if os.path.isfile(script):
            return script
    return None


def run_bench(argv: Sequence[str]) -> int:
    """Run ``benchmarks/bench_step.py`` of a source checkout with ``argv``, as ``bp-xp bench``.

    The benchmarks are not part of the installed package; without a checkout this is a
    usage error that says where to get them.
    """
    script = _find_bench_script()
    if script is None:
        raise _UsageError(f"bp-xp bench runs {_BENCH_SCRIPT}, which ships with the source code, "
                          "not with the installed package: run it from a clone of the bp_xp "
                          "repository (pip install -e . there, then bp-xp bench)")
    directory = os.path.dirname(script)
    sys.path.insert(0, directory)  # the script imports its sibling modules (_timing, ...)
    try:
        spec = importlib.util.spec_from_file_location("bench_step", script)
        if spec is None or spec.loader is None:  # not for a .py file; keeps type checkers honest
            raise _UsageError(f"cannot load {script} as a Python module")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return int(module.main(list(argv), prog=f"{_PROG} bench") or 0)
    finally:
        sys.path.remove(directory)


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------


class _UsageError(Exception):
    """A problem the user can fix from the command line: shown as one line, exit 2."""


def build_parser() -> argparse.ArgumentParser:
    """The ``bp-xp`` argument parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Backpropagation layers of 'Deep Learning from Scratch' on any array backend.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"{_PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser("backends", help="list the backends and devices that work here")
    add_train_arguments(commands.add_parser(
        "train", help="train the book's network on MNIST",
        description="Train the book's network on MNIST (offline 5k subset by default)."))
    add_gradcheck_arguments(commands.add_parser(
        "gradcheck", help="check backprop against numerical gradients (float64)"))
    commands.add_parser("bench", add_help=False,
                        help="time training steps against the book's code, PyTorch and JAX "
                             "(runs benchmarks/bench_step.py of a source checkout; try bench --help)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``bp-xp`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # its flags belong to benchmarks/bench_step.py, not to this parser
        return run_command(run_bench, argv[1:])
    args = build_parser().parse_args(argv)
    command = {"backends": run_backends, "train": run_train, "gradcheck": run_gradcheck}
    return run_command(command[args.command], args)


def run_command(command: Callable[[Any], int], args: Any) -> int:
    """``command(args)``, with user errors shown as one line on stderr and exit status 2.

    User errors are an unknown or unavailable backend or device (with the backends that
    work here), a dataset problem, a bad value, an unwritable path, a missing optional
    dependency. Anything else is a bug and keeps its traceback.
    """
    try:
        return command(args)
    except _UsageError as exc:
        return _fail(str(exc))
    except ImportError as exc:
        hint = _missing_module_hint(exc.name)
        if hint is None:
            raise
        return _fail(f"{exc}; install it with: {hint}")
    except ValueError as exc:  # BackendError, DatasetError and bad values all derive from it
        return _fail(_with_available_backends(exc))
    except OSError as exc:  # a --plot or --save path that cannot be written
        return _fail(str(exc))
    except MemoryError:
        return _fail("out of memory: the network or data does not fit this machine; choose "
                     "smaller sizes (--hidden, --batch-size)")
    except KeyboardInterrupt:
        return _fail("interrupted", status=130)


def _fail(message: str, status: int = 2) -> int:
    print(f"{_PROG}: error: {message}", file=sys.stderr)
    return status


def _with_available_backends(exc: ValueError) -> str:
    from .backends import BackendUnavailableError, available_backends

    message = str(exc)
    if isinstance(exc, BackendUnavailableError):
        message += f" Available backends: {', '.join(available_backends())}."
    return message


def _enable_jax_float64(backend: str) -> None:
    """Switch float64 on where the backend needs a switch (JAX), before it makes arrays."""
    from .backends import enable_float64

    enable_float64(backend)


def _require_writable_file(flag: str, path: str | None) -> None:
    """``path`` names a file that can be written: not empty, not a directory, in a directory
    that exists and is writable. Checked before training, not after it."""
    if path is None:
        return
    if not path.strip():
        raise _UsageError(f"{flag} needs a file name, got an empty one")
    if os.path.isdir(path) or path.endswith(("/", os.sep)):
        raise _UsageError(f"{flag} {path}: is a directory; give a file name in it "
                          f"(e.g. {os.path.join(path, 'out.npz' if flag == '--save' else 'out.png')})")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise _UsageError(f"{flag} {path}: the directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise _UsageError(f"{flag} {path}: the directory {directory} is not writable")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0 (a seed of NumPy's "
                                         f"generator), got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


if __name__ == "__main__":
    raise SystemExit(main())
