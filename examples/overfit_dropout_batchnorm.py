"""The book's chapter-6 comparison: a deep net on 300 digits, with and without Dropout and BatchNorm.

Run:  python examples/overfit_dropout_batchnorm.py                  # NumPy, 150 epochs, ~1 min
      python examples/overfit_dropout_batchnorm.py --backend torch --epochs 300 --plot ch6.png

As in the book's ``overfit_dropout.py``, a 784-100x6-10 ``MultiLayerNet`` (the book's
``MultiLayerNetExtend``) is trained with SGD (lr 0.01) on only 300 training digits, so that
it overfits: the training accuracy reaches 1.0 while the test accuracy stalls. The four
runs differ only in ``use_dropout`` (ratio 0.2) and ``use_batchnorm``, and start from the
same weights and the same minibatch order (one seed). It prints the final accuracies and,
with ``--plot``, draws train and test accuracy per epoch for each run.
"""

from __future__ import annotations

import argparse

import bp_xp
from bp_xp.data import load_dataset
from bp_xp.train import Trainer

RUNS = {
    "plain": {},
    "dropout 0.2": {"use_dropout": True, "dropout_ration": 0.2},
    "batch norm": {"use_batchnorm": True},
    "dropout + batch norm": {"use_dropout": True, "dropout_ration": 0.2, "use_batchnorm": True},
}


def train_all(backend: str, epochs: int, samples: int, seed: int) -> dict[str, dict]:
    (x, t), (xt, tt) = load_dataset("mnist-5k", announce=False)
    histories = {}
    for name, options in RUNS.items():
        net = bp_xp.MultiLayerNet(784, [100] * 6, 10, backend=backend, seed=seed, **options)
        trainer = Trainer(net, x[:samples], t[:samples], xt, tt, epochs=epochs, batch_size=100,
                          optimizer="sgd", optimizer_params={"lr": 0.01}, seed=seed,
                          progress=False)
        histories[name] = trainer.train()
        h = histories[name]
        print(f"{name:22s} train acc {h['train_acc'][-1]:.3f}  test acc {h['test_acc'][-1]:.3f}  "
              f"({sum(h['time']):.1f} s)")
    return histories


def plot(histories: dict[str, dict], path: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 7))
    FigureCanvasAgg(fig)
    for i, (name, h) in enumerate(histories.items()):
        ax = fig.add_subplot(2, 2, i + 1)
        ax.plot(h["epoch"], h["train_acc"], label="train")
        ax.plot(h["epoch"], h["test_acc"], label="test", linestyle="--")
        ax.set_title(name)
        ax.set_ylim(0, 1.0)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--samples", type=int, default=300, help="training digits (the book: 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default=None, metavar="PATH")
    args = parser.parse_args(argv)
    histories = train_all(args.backend, args.epochs, args.samples, args.seed)
    if args.plot:
        plot(histories, args.plot)
        print(f"curves saved to {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
