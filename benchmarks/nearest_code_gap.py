"""Where a fused search's time goes: the Gluon (Hopper) kernel's parts, timed apart.

    python benchmarks/nearest_code_gap.py [--shapes 65536,1024,128 ...] [--rounds 2]

For each shape (fast mode, bf16 inputs), replayed from CUDA graphs so that no host time counts:
the full call (the codes' half-norms, then the search), the half-norm kernel alone, and the
search kernel alone in four builds: as shipped, without the keyed reduction (one float minimum
per score instead: the least work that keeps the products alive), without the half-norms
(products from zero: neither the additions before each product nor, with
``TileConfig.norms_in_product``, the extra k step), and without both, which leaves the product
pipeline: TMA loads, ``wgmma`` and the waits. Each is timed at N rows and at 8·N rows; the
difference gives the time per N rows once the GPU is full, the rest is the fixed part of a
launch. Also timed: an empty kernel replayed the same way. Floors use the bf16 matrix-product
rate measured as in ``nearest_code.py``. The leaner builds give wrong indices; they only time.
"""

from __future__ import annotations

import argparse

import torch
import triton
from nearest_code import graph_time, matmul_rate  # this folder's script (sys.path[0])

from vqcodec.kernels import gluon_nearest_code as gluon_search

SHAPES = ["65536,1024,128", "65536,65536,64", "65536,16384,256"]
PARTS = {  # name: (keyed reduction, half-norm start)
    "search as shipped": (True, True),
    "without keyed reduction": (False, True),
    "without half-norms": (True, False),
    "products only": (False, False),
}
SCALE = 8


@triton.jit
def _empty_kernel(pointer):
    pass


def run_shape(n: int, k: int, d: int, rate: float, rounds: int) -> None:
    x = torch.randn(SCALE * n, d, device="cuda").bfloat16()
    c = torch.randn(k, d, device="cuda").bfloat16()
    small = gluon_search.PreparedSearch.build(x[:n], c)
    large = gluon_search.PreparedSearch.build(x, c)
    small.compute_half_norms()
    large.compute_half_norms()
    shipped = small.run().clone()
    assert torch.equal(shipped, gluon_search.nearest_code_gluon(x[:n], c))
    floor_us = 2 * n * k * d / rate * 1e6
    print(f"\n{n:,} x {k:,} x {d}, {small.config}: floor {floor_us:.1f} us", flush=True)
    empty = torch.empty(1, device="cuda")
    for round_ in range(rounds):
        print(f"  round {round_ + 1}:")
        full = graph_time(lambda: gluon_search.nearest_code_gluon(x[:n], c)) * 1e3
        norms = graph_time(small.compute_half_norms) * 1e3
        nothing = graph_time(lambda: _empty_kernel[(1,)](empty)) * 1e3
        print(
            f"    full call {full:.1f} us ({full / floor_us:.2f} x floor); half-norm kernel "
            f"{norms:.1f} us; empty kernel {nothing:.1f} us"
        )
        for name, (keyed, add_norms) in PARTS.items():
            at_n = graph_time(lambda: small.run(keyed, add_norms)) * 1e3
            at_scale = graph_time(lambda: large.run(keyed, add_norms)) * 1e3
            per_n = (at_scale - at_n) / (SCALE - 1)
            print(
                f"    {name:24s}: {at_n:8.1f} us at N, {at_scale:8.1f} at {SCALE}N; per N rows "
                f"{per_n:8.1f} ({per_n / floor_us:.2f} x floor), fixed {at_n - per_n:5.1f}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="*", default=SHAPES, help="N,K,D (D a multiple of 8)")
    parser.add_argument("--rounds", type=int, default=2, help="times through every timing")
    args = parser.parse_args()
    torch.manual_seed(0)
    rate = matmul_rate()
    print(
        f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, triton "
        f"{triton.__version__}, bf16 matmul {rate / 1e12:.0f} TFLOP/s"
    )
    for shape in args.shapes:
        run_shape(*(int(v) for v in shape.split(",")), rate=rate, rounds=args.rounds)
    print(f"\nbf16 matmul rate at the end: {matmul_rate(warm_seconds=0.0) / 1e12:.0f} TFLOP/s")


if __name__ == "__main__":
    main()
