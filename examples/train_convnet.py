"""Train the book's SimpleConvNet (ch. 7 ``train_convnet.py``) on MNIST, on any backend.

Run:  python examples/train_convnet.py                         # offline 5k digits, NumPy
      python examples/train_convnet.py --backend torch:cuda --dataset mnist --epochs 20 --lr 0.001
      python examples/train_convnet.py --backend jax --plot convnet.png

The defaults differ from ``bp-xp train`` only where the network needs it: the
convolutional model, Adam at 0.003 and 5 epochs (about 0.96 test accuracy on the 1,000
offline test digits; the book uses Adam at 0.001 for 20 epochs of full MNIST). Every flag
of ``bp-xp train`` works (``--device``, ``--dtype``, ``--save``...). Stripped of its
flags it is::

    (x_train, t_train), (x_test, t_test) = bp_xp.data.load_dataset("mnist-5k", flatten=False)
    net = bp_xp.SimpleConvNet(backend="numpy", seed=0)
    trainer = bp_xp.train.Trainer(net, x_train, t_train, x_test, t_test, epochs=5,
                                  optimizer="adam", optimizer_params={"lr": 0.003}, seed=0)
    history = trainer.train()
"""

import argparse

from bp_xp.cli import add_train_arguments, run_command, run_train


def main(argv: list[str] | None = None) -> int:
    parser = add_train_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.set_defaults(model="convnet", optimizer="adam", lr=0.003, epochs=5)
    return run_command(run_train, parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
