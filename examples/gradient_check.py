"""Gradient check (book ch. 5.7.3): backprop against numerical gradients, on any backend.

Run:  python examples/gradient_check.py --backend torch
The check runs in float64 on the chosen backend and device; errors below 1e-6 mean the
backpropagation gradients are right.
"""

import argparse

import numpy as np

import bp_xp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy", help="e.g. numpy, torch, torch:cuda, jax, cupy")
    parser.add_argument("--device", default=None, help="overrides the backend's device")
    parser.add_argument("--batch", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if args.backend.startswith("jax"):
        import jax

        jax.config.update("jax_enable_x64", True)  # float64 for the check
    backend = bp_xp.resolve_backend(args.backend, args.device)
    rng = np.random.default_rng(args.seed)
    # A small net keeps the numerical gradient (two losses per parameter) quick.
    net = bp_xp.TwoLayerNet(784, 10, 10, weight_init_std=0.1, backend=backend, seed=args.seed)
    x = backend.asarray(rng.random((args.batch, 784)), dtype="float32")
    t = backend.asarray(rng.integers(0, 10, size=args.batch), dtype="int64")
    errors = bp_xp.gradient_check(net, x, t)
    print(f"gradient check on {backend} (float64), batch {args.batch}")
    for key, err in errors.items():
        print(f"{key}: {err:.3e}")
    worst = max(errors.values())
    print(f"max relative error {worst:.3e}: {'OK' if worst < 1e-6 else 'TOO LARGE'}")
    return 0 if worst < 1e-6 else 1


if __name__ == "__main__":
    raise SystemExit(main())
