"""The staged computation of the CS231n backpropagation lecture, node by node, twice.

    f(x, y) = (x + sigmoid(y)) / (sigmoid(x) + (x + y) ** 2)

``f_and_grads``: forward stage by stage, each stage a bp_xp node that caches what its
backward needs; backward stage by stage in reverse, written by hand, with ``+=`` where a
value fanned out (``x`` and ``y`` feed several stages).

``f_and_grads_automatic``: the same forward, recorded; ``g.backward(f)`` then does the
bookkeeping of the hand-written half (the reverse order, the ``+=``) for any graph.

At x = 3, y = -4 the lecture's answers are
f = 1.5456448841066441, df/dx = 2.059569795572165, df/dy = 1.5922327514838093.

``x`` and ``y`` may be Python numbers or 0-d arrays of any backend (``--backend``).

Run:  python examples/staged_computation.py [--backend torch] [--svg staged.svg]
"""

from __future__ import annotations

import argparse
from typing import Any

import bp_xp
from bp_xp.layers import AddLayer, MulLayer, PowLayer, ReciprocalLayer, Sigmoid


def f_and_grads(x: Any, y: Any) -> tuple[Any, Any, Any]:
    """``f(x, y)`` and its gradients ``(f, dx, dy)``, by the lecture's staged backprop."""
    sig_y, num_add = Sigmoid(), AddLayer()
    sig_x, xpy_add, square, den_add = Sigmoid(), AddLayer(), PowLayer(2), AddLayer()
    invert, mul = ReciprocalLayer(), MulLayer()
    # forward pass
    sigy = sig_y.forward(y)             # sigmoid in the numerator   #(1)
    num = num_add.forward(x, sigy)      # numerator                  #(2)
    sigx = sig_x.forward(x)             # sigmoid in the denominator #(3)
    xpy = xpy_add.forward(x, y)                                      #(4)
    xpysqr = square.forward(xpy)                                     #(5)
    den = den_add.forward(sigx, xpysqr)  # denominator               #(6)
    invden = invert.forward(den)                                     #(7)
    f = mul.forward(num, invden)         # done!                     #(8)
    # backward pass, in reverse; += where a value fed more than one stage
    dnum, dinvden = mul.backward(1)                                  #(8)
    dden = invert.backward(dinvden)                                  #(7)
    dsigx, dxpysqr = den_add.backward(dden)                          #(6)
    dxpy = square.backward(dxpysqr)                                  #(5)
    dx, dy = xpy_add.backward(dxpy)                                  #(4)
    dx += sig_x.backward(dsigx)                                      #(3)
    dx_num, dsigy = num_add.backward(dnum)                           #(2)
    dx += dx_num
    dy += sig_y.backward(dsigy)                                      #(1)
    return f, dx, dy


def f_and_grads_automatic(x: Any, y: Any) -> tuple[Any, Any, Any]:
    """The same ``(f, dx, dy)``: only the forward is written; ``g.backward`` goes back."""
    sig_y, num_add = Sigmoid(), AddLayer()
    sig_x, xpy_add, square, den_add = Sigmoid(), AddLayer(), PowLayer(2), AddLayer()
    invert, mul = ReciprocalLayer(), MulLayer()
    with bp_xp.graph.record(x=x, y=y) as g:
        num = num_add.forward(x, sig_y.forward(y))
        den = den_add.forward(sig_x.forward(x), square.forward(xpy_add.forward(x, y)))
        f = mul.forward(num, invert.forward(den))
    grads = g.backward(f)  # reverse topological order, gradients summed over fan-out
    return f, grads["x"], grads["y"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None,
                        help="compute on 0-d float64 arrays of this backend (default: Python numbers)")
    parser.add_argument("--svg", default=None,
                        help="also draw the recorded graph with g.backward's values (needs Graphviz)")
    args = parser.parse_args()
    x, y = 3.0, -4.0
    if args.backend:
        backend = bp_xp.resolve_backend(args.backend)
        x, y = backend.asarray(x, dtype="float64"), backend.asarray(y, dtype="float64")
    for how, compute in (("by hand", f_and_grads), ("g.backward", f_and_grads_automatic)):
        f, dx, dy = compute(x, y)
        print(f"{how:>10}: f = {float(f)!r}, df/dx = {float(dx)!r}, df/dy = {float(dy)!r}")
    if args.svg:
        with bp_xp.graph.record(x=x, y=y) as g:
            sig_y, num_add, sig_x, xpy_add = Sigmoid(), AddLayer(), Sigmoid(), AddLayer()
            square, den_add, invert, mul = PowLayer(2), AddLayer(), ReciprocalLayer(), MulLayer()
            num = num_add.forward(x, sig_y.forward(y))
            den = den_add.forward(sig_x.forward(x), square.forward(xpy_add.forward(x, y)))
            f = g.name(mul.forward(num, invert.forward(den)), "f")
        g.backward(f)
        print(f"wrote {g.save(args.svg)}")


if __name__ == "__main__":
    main()
