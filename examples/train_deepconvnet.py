"""Train the book's DeepConvNet (ch. 8 ``train_deepnet.py``) on MNIST, on any backend.

Run:  python examples/train_deepconvnet.py                         # offline 5k digits, NumPy
      python examples/train_deepconvnet.py --backend torch --epochs 3
      python examples/train_deepconvnet.py --backend torch:cuda --dataset mnist --epochs 20

The defaults are the book's settings (Adam at 0.001, batch 100) on the offline 5,000-digit
subset (4,000 to train, 1,000 to test), for 5 epochs; ``docs/convnet.md`` has the accuracy
and time they reach. The book trains 20 epochs of full MNIST (``--dataset mnist``, which
downloads it). Every flag of ``bp-xp train`` works (``--device``, ``--dtype``, ``--save``,
``--plot``...). Stripped of its flags it is::

    (x_train, t_train), (x_test, t_test) = bp_xp.data.load_dataset("mnist-5k", flatten=False)
    net = bp_xp.DeepConvNet(backend="numpy", seed=0)
    trainer = bp_xp.train.Trainer(net, x_train, t_train, x_test, t_test, epochs=5,
                                  mini_batch_size=100, optimizer="Adam",
                                  optimizer_param={"lr": 0.001}, seed=0)
    history = trainer.train()
"""

import argparse

from bp_xp.cli import add_train_arguments, run_command, run_train


def main(argv: list[str] | None = None) -> int:
    parser = add_train_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.set_defaults(model="deepconvnet", optimizer="adam", lr=0.001, epochs=5)
    return run_command(run_train, parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
