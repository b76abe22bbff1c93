"""The book's shopping graphs (figures 5-16/5-17 kind), drawn by bp_xp from a recorded run.

Records the apple and the apple-and-orange examples with :func:`bp_xp.graph.record` and
writes each as two pictures, the forward pass and the backward pass. The tutorial shows
the SVGs this writes into ``docs/img``; ``tests/test_graph.py`` checks they are current.

Run:  python examples/apple_graph.py [--out docs/img] [--format svg|png|dot]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bp_xp import AddLayer, MulLayer
from bp_xp.graph import Graph, record


def apple_graph() -> Graph:
    """2 apples at 100 with 10% tax: forward 200, 220; backward 1.1, 2.2, 110, 200."""
    apple, apple_num, tax = 100, 2, 1.1
    mul_apple_layer, mul_tax_layer = MulLayer(), MulLayer()
    with record(apple=apple, apple_num=apple_num, tax=tax) as g:
        apple_price = mul_apple_layer.forward(apple, apple_num)
        price = g.name(mul_tax_layer.forward(apple_price, tax), "price")
        dapple_price, dtax = mul_tax_layer.backward(1)
        dapple, dapple_num = mul_apple_layer.backward(dapple_price)
    return g


def apple_orange_graph() -> Graph:
    """Plus 3 oranges at 150: forward 715; backward 110, 2.2, 3.3, 165, 650."""
    apple, apple_num, orange, orange_num, tax = 100, 2, 150, 3, 1.1
    mul_apple_layer, mul_orange_layer = MulLayer(), MulLayer()
    add_apple_orange_layer, mul_tax_layer = AddLayer(), MulLayer()
    with record(apple=apple, apple_num=apple_num, orange=orange, orange_num=orange_num,
                tax=tax) as g:
        apple_price = mul_apple_layer.forward(apple, apple_num)
        orange_price = mul_orange_layer.forward(orange, orange_num)
        all_price = add_apple_orange_layer.forward(apple_price, orange_price)
        price = g.name(mul_tax_layer.forward(all_price, tax), "price")
        dall_price, dtax = mul_tax_layer.backward(1)
        dapple_price, dorange_price = add_apple_orange_layer.backward(dall_price)
        dorange, dorange_num = mul_orange_layer.backward(dorange_price)
        dapple, dapple_num = mul_apple_layer.backward(dapple_price)
    return g


#: file stem -> (graph builder, which values to show)
FIGURES = {
    "apple-forward": (apple_graph, "forward"),
    "apple-backward": (apple_graph, "both"),
    "apple-orange-forward": (apple_orange_graph, "forward"),
    "apple-orange-backward": (apple_orange_graph, "both"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/img", help="directory to write into")
    parser.add_argument("--format", default="svg", help="svg, png (need Graphviz) or dot")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for stem, (build, show) in FIGURES.items():
        path = build().save(out / f"{stem}.{args.format}", show=show)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
