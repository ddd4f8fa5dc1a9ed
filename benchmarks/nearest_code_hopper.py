"""The Gluon (Hopper) search kernel against the shipped Triton kernel, config by config.

    python benchmarks/nearest_code_hopper.py [--shapes all|small] [--quick]

For each anchor shape (fast mode, bf16 inputs): every tile config of the Gluon kernel that fits
is checked (chosen codes no farther than the Triton kernel's beyond bf16-product rounding, and
exact indices with lowest-index ties on integer inputs), then timed against the Triton kernel
in the same run (median ms, CUDA events; small shapes also replayed from a CUDA graph).
The kernel's default tiles (``gluon_nearest_code.default_config``) come from this script's runs.
Commit b37ec8e of this script also compared the kernel's reduction with a value-and-index
arg-max (``benchmarks/results/nearest_code_hopper_h100_2026-11-22.txt``).
"""

from __future__ import annotations

import argparse
import itertools

import torch
import triton
import triton.testing
from nearest_code import ANCHOR_SHAPES, graph_time  # this folder's script (sys.path[0])

from vqcodec.kernels import gluon_nearest_code as gluon_search
from vqcodec.kernels import nearest_code_reference
from vqcodec.kernels import triton_nearest_code as triton_search

OTHER_SHAPES = [(65536, 16384, 128)]  # D = 128 with a large codebook: picks the default tiles
SHARED_BYTES = 227 * 1024


def bench(fn) -> float:
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


def configs(d: int, quick: bool, persistent: bool = False) -> list[gluon_search.TileConfig]:
    """Every tile config that fits: shared memory for the row tile(s) and the codebook ring
    (times the programs sharing a multiprocessor, for persistent ones), and two fp32
    accumulators (``block_k`` registers a thread) plus ~64 more in the registers a thread gets
    (65,536 over the block's threads, at most 255)."""
    d_pad = gluon_search.padded_dim(d)
    found = []
    for block_n, block_k, stages in itertools.product([64, 128, 256], [64, 128, 256], [2, 3, 4]):
        launches = [(0, 1)]
        if persistent:
            launches += [(1, 1), (1, 2), (2, 1), (2, 2)]
        for programs_per_sm, x_buffers in launches:
            config = gluon_search.TileConfig(block_n, block_k, stages, programs_per_sm, x_buffers)
            smem = 2 * d_pad * (x_buffers * block_n + stages * block_k)
            registers = min(255, 65536 // (32 * config.num_warps))
            if (
                max(1, programs_per_sm) * smem > SHARED_BYTES - 1024
                or block_k + 64 > registers
                # Two programs a multiprocessor need their registers twice (~200 a thread).
                or (programs_per_sm == 2 and 2 * config.num_warps * 32 * 200 > 65536)
                or (quick and stages == 4)
            ):
                continue
            found.append(config)
    return found


def distance(x: torch.Tensor, c: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return (x.float() - c.float()[idx]).pow(2).sum(1)


def run_shape(n: int, k: int, d: int, quick: bool, persistent: bool) -> None:
    x = torch.randn(n, d, device="cuda").bfloat16()
    c = torch.randn(k, d, device="cuda").bfloat16()
    ref = triton_search.nearest_code_triton(x, c, fast=True)
    ref_d = distance(x, c, ref)
    tol = 1e-2 * (x.float().pow(2).sum(1) + c.float().pow(2).sum(1).max()) ** 0.5  # bf16-ish
    t_triton = bench(lambda: triton_search.nearest_code_triton(x, c, fast=True))
    small = n * k * d <= 2**34
    g_triton = (
        graph_time(lambda: triton_search.nearest_code_triton(x, c, fast=True)) if small else None
    )
    print(
        f"\n{n:,} x {k:,} x {d}: triton {t_triton:.3f} ms"
        + (f" (graph {g_triton:.3f})" if small else ""),
        flush=True,
    )
    results = []
    for cfg in configs(d, quick, persistent):
        try:
            idx = gluon_search.nearest_code_gluon(x, c, cfg)
            torch.cuda.synchronize()
        except Exception as error:  # noqa: BLE001 — report and go on to the next config
            print(f"  {cfg}: failed: {type(error).__name__}: {str(error).splitlines()[0][:120]}")
            continue
        worse = int((distance(x, c, idx) - ref_d > tol).sum())
        same = float((idx == ref).float().mean())
        t = bench(lambda: gluon_search.nearest_code_gluon(x, c, cfg))
        g = graph_time(lambda: gluon_search.nearest_code_gluon(x, c, cfg)) if small else None
        results.append((t, cfg))
        print(
            f"  {cfg}: {t:.3f} ms ({t_triton / t:.2f}x triton)"
            + (f", graph {g:.3f} ({g_triton / g:.2f}x)" if small else "")
            + f", same index {same:.4f}, worse rows {worse}",
            flush=True,
        )
    if results:
        t, cfg = min(results, key=lambda r: r[0])
        print(f"  best: {cfg} {t:.3f} ms = {t_triton / t:.2f}x triton")
        print(f"  default: {gluon_search.default_config(d, k, n)}")


def tie_check() -> None:
    for n, k, d in [(1000, 77, 8), (4099, 2000, 40), (257, 300, 256), (40000, 1000, 128)]:
        x = torch.randint(-3, 4, (n, d), device="cuda").bfloat16()
        c = torch.randint(-3, 4, (k, d), device="cuda").bfloat16()
        c[k // 2 : 2 * (k // 2)] = c[: k // 2]
        expected = nearest_code_reference(x.float().cpu(), c.float().cpu()).cuda()
        for cfg in configs(d, quick=True, persistent=True)[:12]:
            got = gluon_search.nearest_code_gluon(x, c, cfg)
            print(f"ties {n}x{k}x{d} {cfg}: {'ok' if torch.equal(got, expected) else 'MISMATCH'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", choices=["all", "small"], default="all")
    parser.add_argument("--quick", action="store_true", help="skip four-stage rings")
    parser.add_argument(
        "--only", type=int, nargs="*", help="indices into the anchor shapes, then OTHER_SHAPES"
    )
    parser.add_argument("--no-ties", action="store_true", help="skip the integer-input check")
    parser.add_argument(
        "--persistent", action="store_true", help="also persistent launches (TileConfig)"
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    print(
        f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}"
    )
    if not args.no_ties:
        tie_check()
    shapes = ANCHOR_SHAPES if args.shapes == "all" else ANCHOR_SHAPES[:3]
    if args.only:
        shapes = [(ANCHOR_SHAPES + OTHER_SHAPES)[i] for i in args.only]
    for shape in shapes:
        run_shape(*shape, quick=args.quick, persistent=args.persistent)


if __name__ == "__main__":
    main()
