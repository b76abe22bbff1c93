"""The sigmoid node taken apart (book figure 5-19): ``x * -1``, ``exp``, ``+ 1``, ``1 / x``.

Backward through the four nodes multiplies their local derivatives, and the product
collapses to ``dout * y * (1 - y)``: exactly what the one ``Sigmoid`` layer computes.

Run:  python examples/sigmoid_graph.py [--svg sigmoid.svg]
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import bp_xp
from bp_xp.layers import AddLayer, ExpLayer, MulLayer, ReciprocalLayer, Sigmoid


def decomposed_sigmoid(x: Any, dout: Any) -> tuple[Any, Any]:
    """``y = 1 / (1 + exp(-x))`` and ``dx``, through four nodes."""
    neg, exp, add, inv = MulLayer(), ExpLayer(), AddLayer(), ReciprocalLayer()
    y = inv.forward(add.forward(exp.forward(neg.forward(x, -1)), 1))
    dsum, _ = add.backward(inv.backward(dout))
    dx, _ = neg.backward(exp.backward(dsum))
    return y, dx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--svg", default=None, help="draw the recorded graph (needs Graphviz)")
    args = parser.parse_args()
    x = np.array([-2.0, 0.0, 2.0])
    with bp_xp.graph.record(x=x) as g:
        y, dx = decomposed_sigmoid(x, np.ones(3))
        g.name(y, "y")
    layer = Sigmoid()
    print("four nodes:", y, dx)
    print("Sigmoid:   ", layer.forward(x), layer.backward(np.ones(3)))
    print("y * (1 - y):", y * (1 - y))
    if args.svg:
        print(f"wrote {g.save(args.svg)}")


if __name__ == "__main__":
    main()
