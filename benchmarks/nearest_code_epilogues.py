"""Two designs for the fused fast kernel's arg-max, timed side by side with the shipped one.

    python benchmarks/nearest_code_epilogues.py

An experiment kept so its result can be reproduced (docs/BENCHMARKS.md, issue 3); nothing here
is used by the package. Each variant runs with the row tile on chip (D <= 256) and the same
autotuning configs (plus a few with two stages, which may fit two programs per SM):

* ``ELEMENTWISE``: a running maximum per score-tile element (``[BLOCK_N, BLOCK_K]`` values and
  the tile they came from), reduced across columns once at the end, instead of a row reduction
  of every tile;
* ``PIPELINED``: the product of the next codebook tile is issued before the arg-max of the
  current one, hoping the compiler keeps the tensor-core product in flight meanwhile.

Prints, per shape, each variant's milliseconds, its ratio to the shipped kernel (>1: faster),
the rows (of 4,096) whose chosen code is farther than the shipped kernel's, and its config.
"""

import torch
import triton
import triton.language as tl
import triton.testing
from nearest_code import ANCHOR_SHAPES  # benchmarks/nearest_code.py, beside this file

from vqcodec.kernels import triton_nearest_code as shipped


@triton.jit
def _variant_kernel(
    x_ptr,
    codebook_ptr,
    half_norm_ptr,
    out_ptr,
    N,
    K,
    D,
    N_BUCKET,
    K_BUCKET,
    D_PAD: tl.constexpr,
    ELEMENTWISE: tl.constexpr,
    PIPELINED: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid_n = tl.program_id(0)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    cols = tl.arange(0, D_PAD)
    ks = tl.arange(0, BLOCK_K)
    x = tl.load(
        x_ptr + rows[:, None].to(tl.int64) * D + cols[None, :],
        mask=row_ok[:, None] & (cols[None, :] < D),
        other=0.0,
    )
    if ELEMENTWISE:
        best = tl.full((BLOCK_N, BLOCK_K), float("-inf"), tl.float32)
        best_tile = tl.zeros((BLOCK_N, BLOCK_K), tl.int32)
    else:
        best_row = tl.full((BLOCK_N,), float("-inf"), tl.float32)
        best_index = tl.zeros((BLOCK_N,), tl.int32)
    if PIPELINED:
        c = tl.load(
            codebook_ptr + ks[:, None].to(tl.int64) * D + cols[None, :],
            mask=(ks[:, None] < K) & (cols[None, :] < D),
            other=0.0,
        )
        score = tl.dot(x, tl.trans(c))
    for k0 in range(0, K, BLOCK_K):
        if PIPELINED:
            nk = k0 + BLOCK_K + ks
            c = tl.load(
                codebook_ptr + nk[:, None].to(tl.int64) * D + cols[None, :],
                mask=(nk[:, None] < K) & (cols[None, :] < D),
                other=0.0,
            )
            nxt = tl.dot(x, tl.trans(c))
        else:
            codes = k0 + ks
            c = tl.load(
                codebook_ptr + codes[:, None].to(tl.int64) * D + cols[None, :],
                mask=(codes[:, None] < K) & (cols[None, :] < D),
                other=0.0,
            )
            score = tl.dot(x, tl.trans(c))
        codes = k0 + ks
        half_norm = tl.load(half_norm_ptr + codes, mask=codes < K, other=float("inf"))
        s = score - half_norm[None, :]
        if ELEMENTWISE:
            better = s > best
            best = tl.where(better, s, best)
            best_tile = tl.where(better, k0, best_tile)
        else:
            tile_best, tile_index = tl.max(
                s, axis=1, return_indices=True, return_indices_tie_break_left=True
            )
            better = tile_best > best_row
            best_row = tl.where(better, tile_best, best_row)
            best_index = tl.where(better, tile_index + k0, best_index)
        if PIPELINED:
            score = nxt
    if ELEMENTWISE:
        index = best_tile + ks[None, :]
        row_max = tl.max(best, axis=1)
        candidate = tl.where(best == row_max[:, None], index, 2147483647)
        best_index = tl.min(candidate, axis=1)
        best_index = tl.where(best_index == 2147483647, 0, best_index)
    tl.store(out_ptr + rows, best_index.to(tl.int64), mask=row_ok)


# The shipped kernel's configs, plus a few (mostly two-stage) that may fit two programs per SM.
MORE_SHAPES = [(128, 128, 8, 2), (128, 64, 4, 2), (64, 64, 4, 2), (128, 128, 4, 2), (64, 128, 4, 2),
               (128, 32, 4, 3), (256, 32, 8, 3)]  # fmt: skip
CONFIGS = shipped.tile_configs(shipped.FAST_TILES + MORE_SHAPES)
kernels = {
    (e, p): triton.autotune(configs=CONFIGS, key=["N_BUCKET", "K_BUCKET", "D_PAD"])(_variant_kernel)
    for e in (0, 1)
    for p in (0, 1)
}


def variant(x, c, elementwise, pipelined):
    n, d = x.shape
    k = c.shape[0]
    half = shipped.half_norms(c[None])[0]
    out = torch.empty(n, dtype=torch.int64, device=x.device)
    pad = max(16, triton.next_power_of_2(d))
    grid = lambda m: (triton.cdiv(n, m["BLOCK_N"]),)  # noqa: E731
    kernels[(elementwise, pipelined)][grid](
        x,
        c,
        half,
        out,
        n,
        k,
        d,
        triton.next_power_of_2(n),
        triton.next_power_of_2(k),
        D_PAD=pad,
        ELEMENTWISE=elementwise,
        PIPELINED=pipelined,
    )
    return out


def chosen_distance(x, c, idx):
    return ((x.float() - c.float()[idx]) ** 2).sum(-1)


def bench(fn, *args) -> float:
    return triton.testing.do_bench(lambda: fn(*args), warmup=50, rep=300)


def main():
    shapes = [*ANCHOR_SHAPES, (1000, 777, 100), (5, 3, 3)]
    print(torch.cuda.get_device_name(), triton.__version__)
    for n, k, d in shapes:
        x = torch.randn(n, d, device="cuda").bfloat16()
        c = torch.randn(k, d, device="cuda").bfloat16()
        ref = shipped.nearest_code_triton(x, c, fast=True)
        ref_d = chosen_distance(x[:4096], c, ref[:4096])
        row = [f"{n},{k},{d}"]
        t0 = bench(shipped.nearest_code_triton, x, c, True)
        row.append(f"shipped {t0:.4f}")
        for e in (0, 1):
            for p in (0, 1):
                try:
                    idx = variant(x, c, e, p)
                    dd = chosen_distance(x[:4096], c, idx[:4096])
                    worse = int((dd > ref_d + 1e-2 * ref_d.abs().clamp_min(1)).sum())
                    t = bench(variant, x, c, e, p)
                    cfg = kernels[(e, p)].best_config
                    tile = f"{cfg.kwargs['BLOCK_N']}x{cfg.kwargs['BLOCK_K']}"
                    row.append(
                        f"e{e}p{p} {t:.4f} ({t0 / t:.2f}x, worse {worse}, "
                        f"{tile} w{cfg.num_warps} s{cfg.num_stages})"
                    )
                except Exception as error:  # noqa: BLE001
                    row.append(f"e{e}p{p} failed: {str(error)[:120]}")
        print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
