"""Gradient check (book ch. 5.7.3): backprop against numerical gradients, on any backend.

Run:  python examples/gradient_check.py --backend torch
The check runs in float64 on the chosen backend and device; errors below 1e-6 mean the
backpropagation gradients are right. It is the same check as ``bp-xp gradcheck``
(:func:`bp_xp.cli.run_gradcheck`).
"""

import argparse

from bp_xp.cli import add_gradcheck_arguments, run_command, run_gradcheck


def main(argv: list[str] | None = None) -> int:
    parser = add_gradcheck_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    return run_command(run_gradcheck, parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
