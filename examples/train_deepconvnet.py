"""Train the book's DeepConvNet (ch. 8 ``train_deepnet.py``) on MNIST, on any backend.

Run:  python examples/train_deepconvnet.py                         # offline 5k digits, NumPy
      python examples/train_deepconvnet.py --backend torch --epochs 3
      python examples/train_deepconvnet.py --backend torch:cuda --dataset mnist --epochs 20 \\
          --eval-samples 1000 --history curves.json

The defaults are the book's settings (Adam at 0.001, batch 100) on the offline 5,000-digit
subset (4,000 to train, 1,000 to test), for 5 epochs; ``docs/convnet.md`` has the accuracy
and time they reach. The book trains 20 epochs of full MNIST (``--dataset mnist``, which
downloads it) and, per epoch, evaluates on the first 1,000 images of each set
(``--eval-samples 1000``, its ``evaluate_sample_num_per_epoch``). Every flag of
``bp-xp train`` works (``--device``, ``--dtype``, ``--save``, ``--plot``...). Three more:

* ``--eval-samples N``: evaluate each epoch on the first N images of each set (the book's
  1,000); the final test accuracy is then also taken on the *whole* test set;
* ``--time-limit SECONDS``: start no new epoch after this much wall time (a budget on a
  shared machine; the epochs run are reported);
* ``--history PATH``: write the per-epoch record (accuracies, wall and CPU seconds) as JSON.

Stripped of its flags it is::

    (x_train, t_train), (x_test, t_test) = bp_xp.data.load_dataset("mnist-5k", flatten=False)
    net = bp_xp.DeepConvNet(backend="numpy", seed=0)
    trainer = bp_xp.train.Trainer(net, x_train, t_train, x_test, t_test, epochs=5,
                                  mini_batch_size=100, optimizer="Adam",
                                  optimizer_param={"lr": 0.001}, seed=0)
    history = trainer.train()
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bp_xp.cli import add_train_arguments, run_command, run_train

#: The book's ``train_deepnet.py``: Adam at 0.001, batch 100, 20 epochs.
BOOK_EPOCHS = 20


def _positive_number(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = add_train_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.set_defaults(model="deepconvnet", optimizer="adam", lr=0.001)
    book = parser.add_argument_group("the book's evaluation and a time budget")
    book.add_argument("--eval-samples", type=_positive_int, default=None, metavar="N",
                      help="evaluate each epoch on the first N images of each set "
                           "(the book: 1000); the final test accuracy uses all of them")
    book.add_argument("--time-limit", type=_positive_number, default=None, metavar="SECONDS",
                      help="start no new epoch after this much wall time")
    book.add_argument("--history", default=None, metavar="PATH",
                      help="write the per-epoch record as JSON")
    return parser


def run_book_schedule(args: argparse.Namespace) -> int:
    """Train epoch by epoch with the book's evaluation, within a time budget."""
    import bp_xp
    from bp_xp.checkpoint import save
    from bp_xp.cli import check_train_arguments
    from bp_xp.data import load_dataset
    from bp_xp.train import Trainer, plot

    spec = check_train_arguments(args)
    if args.iters is not None:
        raise ValueError("--eval-samples/--time-limit/--history count epochs: use --epochs")
    backend = bp_xp.resolve_backend(args.backend, args.device)
    (x_train, t_train), (x_test, t_test) = load_dataset(args.dataset, data_dir=args.data_dir,
                                                        flatten=spec.flatten)
    net = spec.build(args, tuple(x_train.shape[1:]), backend)
    trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=1,
                      batch_size=args.batch_size, optimizer=args.optimizer,
                      optimizer_params={"lr": args.lr}, seed=args.seed,
                      evaluate_sample_num=args.eval_samples,
                      progress=False if args.no_progress else None, verbose=True,
                      compile="auto" if args.compile is None else args.compile)
    print(f"training {net} on {args.dataset} with {args.optimizer} (lr {args.lr}), batch "
          f"{args.batch_size}, {trainer.iters_per_epoch} steps per epoch, up to {args.epochs} "
          f"epochs; evaluated on {args.eval_samples or 'all'} images of each set", flush=True)
    start = time.perf_counter()
    for _ in range(args.epochs):
        trainer.train()  # one epoch; calling it again continues and extends the history
        if args.time_limit is not None and time.perf_counter() - start > args.time_limit:
            break
    wall, cpu = time.perf_counter() - start, sum(trainer.history["cpu_time"])
    full = _full_accuracy(trainer, net)
    done = len(trainer.history["epoch"])
    print(f"final: {done} epoch(s) of {args.epochs} in {wall:.0f} s wall ({cpu:.0f} s CPU); "
          f"test acc {full:.4f} on all {x_test.shape[0]:,} test images", flush=True)
    if args.history:
        record: dict[str, Any] = dict(trainer.history)
        record.pop("loss")
        record.update(final_test_acc=full, test_images=int(x_test.shape[0]), wall=wall, cpu=cpu,
                      epochs_asked=args.epochs, eval_samples=args.eval_samples,
                      backend=args.backend, dataset=args.dataset)
        with open(args.history, "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=1)
    if args.save:
        save(args.save, net, trainer.optimizer,
                              metadata={"dataset": args.dataset, "iteration": trainer.iteration,
                                        "seed": args.seed, "test_acc": full})
    if args.plot:
        plot(trainer.history, args.plot)
    return 0


def _full_accuracy(trainer: Any, net: Any) -> float:
    """Test accuracy on the whole test set, in evaluation-sized chunks."""
    n = trainer.x_test.shape[0]
    correct = 0.0
    for lo in range(0, n, 1000):
        hi = min(lo + 1000, n)
        acc = net.accuracy(trainer.x_test[lo:hi, ...], trainer.t_test[lo:hi, ...])
        correct += float(acc) * (hi - lo)
    return correct / n


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.epochs is None and args.iters is None:
        args.epochs = 5
    if args.eval_samples is None and args.time_limit is None and args.history is None:
        return run_command(run_train, args)
    return run_command(run_book_schedule, args)


if __name__ == "__main__":
    raise SystemExit(main())
