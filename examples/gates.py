"""The gate patterns of backpropagation (CS231n lecture), one line each.

* add distributes: both inputs get ``dout``;
* max routes: the larger input gets ``dout``, the other 0;
* mul swaps: each input gets ``dout`` times the *other* input;
* matrix product ``D = W @ X``: ``dW = dD @ X.T`` and ``dX = W.T @ dD``, each the shape
  of its matrix.

Run:  python examples/gates.py
"""

from __future__ import annotations

import numpy as np

from bp_xp.layers import AddLayer, MatMulLayer, MaxLayer, MulLayer


def main() -> None:
    x, y, dout = -4.0, 2.0, 2.0  # the lecture's example values: x = -4, y = 2, upstream 2
    for name, gate in (("add", AddLayer()), ("max", MaxLayer()), ("mul", MulLayer())):
        out = gate.forward(x, y)
        dx, dy = gate.backward(dout)
        print(f"{name}: out = {out:g}, dx = {dx:g}, dy = {dy:g}")

    rng = np.random.default_rng(0)
    W, X = rng.standard_normal((5, 10)), rng.standard_normal((10, 3))
    node = MatMulLayer()
    D = node.forward(W, X)
    dD = rng.standard_normal(D.shape)
    dW, dX = node.backward(dD)
    print(f"matmul: D {D.shape}, dW {dW.shape} == W {W.shape}, dX {dX.shape} == X {X.shape}")
    print("dW == dD @ X.T:", np.allclose(dW, dD @ X.T), " dX == W.T @ dD:", np.allclose(dX, W.T @ dD))


if __name__ == "__main__":
    main()
