"""Train the book's two-layer network on MNIST (ch. 5 ``train_neuralnet.py``), on any backend.

Run:  python examples/train_mnist.py                      # offline 5k digits, NumPy, ~0.92
      python examples/train_mnist.py --backend torch:cuda --dataset mnist
      python examples/train_mnist.py --optimizer adam --lr 0.001 --plot curves.png

It prints the train and test accuracy once per epoch, then the final accuracy and the
time per epoch. This is ``bp-xp train``; both run :func:`bp_xp.cli.run_train`, which is,
stripped of its flags::

    (x_train, t_train), (x_test, t_test) = bp_xp.data.load_dataset("mnist-5k")
    net = bp_xp.TwoLayerNet(784, 50, 10, backend="numpy", seed=0)
    trainer = bp_xp.train.Trainer(net, x_train, t_train, x_test, t_test, epochs=50,
                                  batch_size=100, optimizer="sgd",
                                  optimizer_params={"lr": 0.1}, seed=0, verbose=True)
    history = trainer.train()
"""

import argparse

from bp_xp.cli import add_train_arguments, run_command, run_train


def main(argv: list[str] | None = None) -> int:
    parser = add_train_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    return run_command(run_train, parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
