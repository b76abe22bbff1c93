"""What the checkpoint tests share: the format-2 writer, a small trained net, a memory limit.

The writer of checkpoint format 2 (bp_xp 0.2-0.3) is kept to make format-2 files in tests.

bp_xp itself writes format 3 (one ``.safetensors`` file) since issue 19 and only *reads*
formats 1 and 2; the tests need format-2 files to hold the reader to them, crafted ones
included, so the old writer lives on here, as it was in ``bp_xp/checkpoint.py``.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

import bp_xp
from bp_xp.backends import dtype_name, to_numpy


def save_v2(path, net, optimizer=None, *, metadata=None):
    """Write ``net`` (and ``optimizer``) as a format-2 ``.npz`` checkpoint to a path or file."""
    arrays = {}
    prefixes = [*((f"layer/{i}", layer) for i, layer in enumerate(net.layers.values())),
                ("loss", net.last_layer)]
    for prefix, layer in prefixes:
        for what in ("params", "state"):
            for name, array in getattr(layer, what).items():
                arrays[f"{prefix}/{what}/{name}"] = to_numpy(array)
    meta = {
        "format": "bp_xp.checkpoint", "format_version": 2, "bp_xp_version": bp_xp.__version__,
        "network": net.config(), "dtype": dtype_name(net.dtype), "backend": str(net.backend),
        "params": list(net.params), "optimizer": None,
        "user": None if metadata is None else dict(metadata),
    }
    if optimizer is not None:
        state = optimizer.state_dict()
        for slot, by_key in state["state"].items():
            for key, array in by_key.items():
                arrays[f"optimizer/{slot}/{key}"] = to_numpy(array)
        meta["optimizer"] = {"type": state["type"], "hyperparameters": state["hyperparameters"],
                             "step": state["step"], "slots": list(state["state"])}
    arrays["metadata.json"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    if hasattr(path, "write"):  # an open file (benchmarks/bench_checkpoint.py)
        np.savez(path, **arrays)
        return path
    with open(os.fspath(path), "wb") as file:
        np.savez(file, **arrays)
    return path


def small_trained_net():
    """The small network (and Adam after one step) the checkpoint tests tamper with."""
    from bp_xp import TwoLayerNet
    from bp_xp.optim import Adam

    net = TwoLayerNet(4, 3, 2, seed=0)
    optimizer = Adam()
    optimizer.update(net.params, {k: np.ones_like(v) for k, v in net.params.items()})
    return net, optimizer


ROOT = str(Path(bp_xp.__file__).resolve().parent.parent)


def run_limited(code, limit_bytes=1 << 30):
    """Run ``code`` in a fresh interpreter under an address-space limit; return the result."""
    prelude = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, ({limit_bytes}, {limit_bytes}))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
