"""Dense nets on the GPU: bp_xp on CuPy, torch:cuda and jax:gpu against PyTorch eager on CUDA.

Run by ``benchmarks/gpu_check.py`` (or alone: ``python benchmarks/_gpu_dense.py [--quick]``).
The book's net (784-50-10, batch 100), the wide net (784-1024-1024-10, batch 512) and the
large net (784-4096-4096-10, batch 4096), float32, timed side by side in one process with
the interleaved ratio method of ``bench_step.py`` (``_timing.time_net``); the baseline is
PyTorch eager with ``torch.optim.SGD`` on the same GPU, and PyTorch eager with a manual SGD
update is a row of its own. For the large net it also gives the fraction of the GPU's
peak: the float32 peak of the device's data sheet (:data:`FP32_PEAK_TFLOPS`, looked up by
the name CUDA reports) and the practical peak measured here by one large PyTorch matrix
product.

Without a GPU it says so and times the book's net on the CPU rows instead (the rehearsal).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _checks import CHECK_TOLERANCE  # noqa: E402
from _problems import NETS, step_flops  # noqa: E402
from _report import markdown_tables  # noqa: E402
from _runners import implementations  # noqa: E402
from _timing import time_net  # noqa: E402

__all__ = ["FP32_PEAK_TFLOPS", "TF32_PEAK_TFLOPS", "datasheet_peak", "main"]

#: Dense float32 peak (CUDA cores, no tensor cores) in TFLOP/s from NVIDIA's data sheets, by a
#: part of the name ``torch.cuda.get_device_name()`` reports; the first match wins, so the
#: more specific names come first. PyTorch and CuPy run float32 products on CUDA cores by
#: default (``torch.backends.cuda.matmul.allow_tf32`` is False, ``CUPY_TF32`` is unset).
FP32_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 67.0), ("H100 PCIe", 51.2), ("H100 NVL", 60.0), ("H100", 67.0),
    ("GH200", 67.0), ("B200", 80.0), ("A100", 19.5), ("A10G", 31.2), ("A10", 31.2),
    ("L40S", 91.6), ("L40", 90.5), ("L4", 30.3), ("T4", 8.1), ("V100", 15.7),
    ("RTX 4090", 82.6), ("RTX 3090", 35.6),
)
#: Dense TF32 tensor-core peak in TFLOP/s (no sparsity), for JAX, whose default float32
#: matrix precision on these GPUs may use TF32.
TF32_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 494.7), ("H100 PCIe", 378.0), ("H100 NVL", 417.0), ("H100", 494.7),
    ("GH200", 494.7), ("A100", 156.0), ("L40S", 183.0), ("L4", 60.0), ("A10", 62.5),
)


def datasheet_peak(name: str, table: tuple[tuple[str, float], ...]) -> tuple[str, float] | None:
    """``(matched key, TFLOP/s)`` for a CUDA device name, or ``None`` when it is not in ``table``.

    Examples
    --------
    >>> datasheet_peak("NVIDIA H200", FP32_PEAK_TFLOPS)
    ('H200', 67.0)
    >>> datasheet_peak("NVIDIA H100 PCIe", FP32_PEAK_TFLOPS)
    ('H100 PCIe', 51.2)
    >>> datasheet_peak("Some GPU", FP32_PEAK_TFLOPS) is None
    True
    """
    for key, tflops in table:
        if key in name:
            return key, tflops
    return None


def measured_peak_tflops(n: int = 8192, repeats: int = 10) -> float:
    """TFLOP/s of an ``n x n`` float32 product in PyTorch on the GPU (TF32 off): the practical peak."""
    import torch

    a = torch.randn(n, n, device="cuda")
    b = torch.randn(n, n, device="cuda")
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e12


def _gpu_name() -> str | None:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few, short rounds")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        import jax

        jax.config.update("jax_enable_x64", True)  # int64 labels, as bench_step.py
    except ImportError:
        pass
    name = _gpu_name()
    rounds = args.rounds or (2 if args.quick else 5)
    block = 0.05 if args.quick else 0.2
    if name is None:
        print("No CUDA GPU here: the GPU rows are skipped; the book's net on the CPU rows instead.\n")
        nets = [NETS[0]]
        keep = {"book", "bp_xp:numpy", "bp_xp:torch", "torch:manual"}
        impls = [i for i in implementations() if i.key in keep]
        peaks = {"float32": float("nan")}
    else:
        nets = list(NETS)
        impls = implementations(gpu=True)
        sheet = datasheet_peak(name, FP32_PEAK_TFLOPS)
        tf32 = datasheet_peak(name, TF32_PEAK_TFLOPS)
        measured = measured_peak_tflops()
        known = f"{sheet[1]:.1f} TFLOP/s (table row '{sheet[0]}')" if sheet else None
        print(f"Device: {name}. Float32 peak: data sheet "
              + (known or "unknown (not in the table)")
              + (f", TF32 tensor cores {tf32[1]:.1f} TFLOP/s" if tf32 else "")
              + f"; measured here {measured:.1f} TFLOP/s (8192^3 float32 product in PyTorch, TF32 off).\n")
        # "of peak" in the tables is against the data sheet's float32 peak when known
        peaks = {"float32": 1e3 * (sheet[1] if sheet else measured)}
    failed = False
    for net in nets:
        usable = [i for i in impls if not i.unavailable("float32")]
        for i in impls:
            if i not in usable:
                print(f"Not timed: {i.label}: {i.unavailable('float32')}.")
        if args.quick and net.name == "large":
            net = dataclasses.replace(net, batch=1024)
        result = time_net(net, usable, ["float32"], rounds, warm_seconds=0.05 if args.quick else 0.15,
                          block_seconds=block)
        bad = [c for c in result.checks if c.worst() > CHECK_TOLERANCE[c.dtype]]
        for c in bad:
            failed = True
            print(f"**error**: {c.key} disagrees with bp_xp on NumPy in float64: {c}")
        print(markdown_tables([result], peaks))
        if name is not None and net.name == "large":
            flops = step_flops(net.sizes, net.batch)
            for s in result.series:
                if s.op == "step":
                    tflops = flops / s.median_time() / 1e12
                    print(f"- large net, {s.label}: {tflops:.1f} TFLOP/s = "
                          f"{100 * tflops * 1e3 / peaks['float32']:.0f} % of the float32 peak")
            print()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
