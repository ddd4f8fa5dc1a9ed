"""Host time of eager ``nearest_code`` calls: repeated launches with and without the launch
cache (``vqcodec.kernels.launch``), and the Triton against the Gluon path on Hopper.

    python benchmarks/nearest_code_host.py [--calls 2000] [--rounds 3]

Eager calls (no CUDA graph) issue their kernels from Python; when the host takes longer to
issue a call than the GPU to run it, the host sets the pace. For each shape and path (float32
inputs unless marked bf16) this prints microseconds a call: ``host`` is the time to issue
``--calls`` calls back to back (no synchronisation inside), ``per call`` the time until the GPU
has finished them all. Each is the best of ``--rounds`` rounds; the variants alternate within
each round, so a slower or busier host moment hits them alike.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from vqcodec.kernels import nearest_code
from vqcodec.kernels import triton_nearest_code as fused
from vqcodec.kernels.launch import LaunchCache

SHAPES = [(1024, 1024, 128), (8192, 1024, 128), (65536, 1024, 128), (262144, 1024, 8)]


def timed(fn: Callable[[], object], calls: int) -> tuple[float, float]:
    """(host, per call) microseconds over ``calls`` calls issued back to back."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    host = time.perf_counter() - start
    torch.cuda.synchronize()
    total = time.perf_counter() - start
    return host / calls * 1e6, total / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    hopper = None
    if torch.cuda.get_device_capability() == (9, 0):
        from vqcodec.kernels import gluon_nearest_code as hopper
    print(torch.cuda.get_device_name(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    for n, k, d in SHAPES:
        x = torch.randn(n, d, device="cuda")
        codebook = torch.randn(k, d, device="cuda")
        paths: dict[str, Callable[[], object]] = {
            "nearest_code fast": lambda: nearest_code(x, codebook, fast=True),
            "nearest_code exact": lambda: nearest_code(x, codebook),
            "Triton kernel, fast": lambda: fused.nearest_code_triton(x, codebook, True),
        }
        if hopper is not None and hopper.supports(x, codebook):
            xb, cb = x.bfloat16(), codebook.bfloat16()
            paths["Gluon kernel"] = lambda: hopper.nearest_code_gluon(x, codebook)
            paths["Gluon, bf16 inputs"] = lambda: hopper.nearest_code_gluon(xb, cb)
            paths["Triton, bf16 inputs"] = lambda: fused.nearest_code_triton(xb, cb, True)
        best: dict[tuple[str, bool], tuple[float, float]] = {}
        for fn in paths.values():  # compile and autotune outside the timing
            fn()
        for _ in range(args.rounds):
            for name, fn in paths.items():
                for cached in (True, False):
                    LaunchCache.enabled = cached
                    fn()
                    host, per_call = timed(fn, args.calls)
                    old = best.get((name, cached), (float("inf"), float("inf")))
                    best[(name, cached)] = (min(old[0], host), min(old[1], per_call))
        LaunchCache.enabled = True
        print(f"({n}, {k}, {d}); us a call, best of {args.rounds} rounds:")
        print(f"  {'path':22s} {'cached: host':>13s} {'per call':>9s}   {'JIT: host':>10s} "
              f"{'per call':>9s}   {'per call, JIT/cached':>20s}")  # fmt: skip
        for name in paths:
            (ch, cc), (jh, jc) = best[(name, True)], best[(name, False)]
            print(f"  {name:22s} {ch:13.1f} {cc:9.1f}   {jh:10.1f} {jc:9.1f}   {jc / cc:20.2f}x")


if __name__ == "__main__":
    main()
