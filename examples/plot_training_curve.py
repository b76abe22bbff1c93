"""Draw the tutorial's training curve: the book's TwoLayerNet trained by the Trainer, per epoch.

Run:  python examples/plot_training_curve.py                    # writes docs/img/training-curve.png
      python examples/plot_training_curve.py --epochs 30 --out curve.png

The run is the one at the end of the tutorial's section 8 (docs/tutorial.md): a 784-50-10
``TwoLayerNet`` (seed 0) on the offline ``mnist-5k`` subset that ships with bp_xp (4,000
training and 1,000 test digits), plain SGD with learning rate 0.1, batches of 100, 12 epochs,
NumPy, float32. It needs matplotlib (``pip install -e ".[train]"``), no network, and takes a
few seconds. The figure is :func:`bp_xp.train.plot` (the loss of every step, train and test
accuracy per epoch) with the mean loss of each epoch drawn over the per-step loss, as in the
book's figure of its ``train_neuralnet.py`` run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import bp_xp
from bp_xp.data import load_dataset
from bp_xp.train import Trainer, plot

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "img" / "training-curve.png"


def train(epochs: int, seed: int) -> dict[str, list]:
    """The tutorial's Trainer run; returns its history."""
    (x_train, t_train), (x_test, t_test) = load_dataset("mnist-5k", announce=False)
    net = bp_xp.TwoLayerNet(784, 50, 10, seed=seed)
    trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=epochs, batch_size=100,
                      optimizer="sgd", optimizer_params={"lr": 0.1}, seed=seed, progress=False)
    return trainer.train()


def draw(history: dict[str, list], out: Path) -> None:
    """Save bp_xp.train.plot's figure with each epoch's mean loss added to the loss panel."""
    fig = plot(history, out)
    loss_ax = fig.axes[0]
    ends = history["iteration"]
    middles = [(start + end) / 2 for start, end in zip([0, *ends[:-1]], ends)]
    loss_ax.plot(middles, history["train_loss"], marker="o", color="C1", label="mean of the epoch")
    loss_ax.lines[0].set_label("each step")
    loss_ax.legend(loc="upper right")
    fig.suptitle("TwoLayerNet 784-50-10 on the offline 5k digits (SGD, lr 0.1, batch 100)")
    fig.savefig(out, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12, help="epochs to train (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="weights and batch order (default 0)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="image to write (default docs/img/training-curve.png)")
    args = parser.parse_args(argv)
    history = train(args.epochs, args.seed)
    draw(history, args.out)
    print(f"{args.epochs} epochs: train acc {history['train_acc'][-1]:.3f}, "
          f"test acc {history['test_acc'][-1]:.3f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
