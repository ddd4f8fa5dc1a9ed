"""Fused nearest-code search for Hopper GPUs, written in Gluon (Triton's explicit dialect).

The Triton kernel (:mod:`vqcodec.kernels.triton_nearest_code`) waits for each tile's product
before its arg-max, so tensor cores and CUDA cores take turns. Here the warps issue the next
tile's product asynchronously (``wgmma``), reduce the current tile while the tensor cores work,
and only then wait.

The reduction is also cheaper. Each score is the half squared distance
``e = ‖x‖²/2 + ‖c‖²/2 − x·c ≥ 0``: the accumulator starts at ``‖x‖²/2 + ‖c‖²/2`` and the
product adds ``(−x)·c``. For non-negative floats the bit pattern orders like the value, so the
code's column within the tile is written into the low mantissa bits and one float minimum per
score finds both the nearest code and its column (ties: the lowest column). The arg-max with
separate value and index needs about two and a half times as many compare/select instructions,
which run at half the rate of additions on Hopper and were the bottleneck for D ≤ 64. The cost is
``log2(BLOCK_K)`` of the 24 mantissa bits: codes whose distances agree to 2⁻¹⁷ relative count
as tied, far below the bf16 rounding of fast mode's products.

One program owns ``BLOCK_N`` rows of ``x`` (one TMA load into shared memory, negated in place,
kept for the whole pass) and streams the codebook through a ring of ``STAGES`` shared-memory
tiles filled by TMA. Fast mode only: bf16 or fp16 operands with float32 accumulation.
"""

from __future__ import annotations

import torch
import triton
from torch import Tensor
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    fence_async_shared,
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_wait,
)
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

from vqcodec.kernels.triton_nearest_code import half_norms

# Padding codes (past K, up to one whole tile past the last) get this half-norm: far from every
# row, yet finite, so that writing a column into its low bits cannot make a NaN of it the way it
# would of an infinity. The padding also spares every tile a masked load.
FAR = 1e38


@gluon.jit
def _argmax_combine(value_a, index_a, value_b, index_b):
    # Larger score wins; on equal scores the lower column (lowest-index tie rule).
    a_wins = (value_a > value_b) | ((value_a == value_b) & (index_a < index_b))
    return gl.where(a_wins, value_a, value_b), gl.where(a_wins, index_a, index_b)


@gluon.jit
def _fold_tile(
    acc, half_norm_ptr, k0, K, best, best_index, columns, layout: gl.constexpr, KEYED: gl.constexpr
):
    """Fold one ``[BLOCK_N, BLOCK_K]`` tile into the running nearest code of every row.

    KEYED: ``acc`` holds half squared distances; ``best`` the row's smallest, low bits cleared.
    Otherwise: ``acc`` holds ``x·c``; ``best`` the row's largest ``x·c − ‖c‖²/2``.
    """
    BLOCK_K: gl.constexpr = acc.shape[1]
    if KEYED:
        LOW: gl.constexpr = BLOCK_K - 1
        bits = acc.to(gl.int32, bitcast=True)
        keys = ((bits & ~LOW) | columns).to(gl.float32, bitcast=True)
        tile_key = gl.min(keys, axis=1).to(gl.int32, bitcast=True)
        tile_best = (tile_key & ~LOW).to(gl.float32, bitcast=True)
        tile_index = tile_key & LOW
        # Strictly better only: an equal distance in a later tile has a higher index.
        better = tile_best < best
    else:
        columns = gl.expand_dims(gl.arange(0, BLOCK_K, layout=gl.SliceLayout(0, layout)), 0)
        codes = k0 + gl.arange(0, BLOCK_K, layout=gl.SliceLayout(0, layout))
        half_norm = gl.load(half_norm_ptr + codes)
        score = acc - gl.expand_dims(half_norm, 0)  # x·c − ‖c‖²/2: larger is nearer
        columns = gl.broadcast(columns, score)[0]
        tile_best, tile_index = gl.reduce((score, columns), 1, _argmax_combine)
        better = tile_best > best
    best = gl.where(better, tile_best, best)
    best_index = gl.where(better, tile_index + k0, best_index)
    return best, best_index


@gluon.jit
def _refill(c_desc, c_smem, c_ready, c_row, t, num_tiles, STAGES: gl.constexpr):
    """Tile ``t``'s product is done with its slot: load tile ``t + STAGES`` into it."""
    BLOCK_K: gl.constexpr = c_desc.block_type.shape[0]
    slot = t % STAGES
    tile = t + STAGES
    mbarrier.expect(c_ready.index(slot), c_desc.block_type.nbytes, pred=tile < num_tiles)
    tma.async_copy_global_to_shared(
        c_desc,
        [c_row + tile * BLOCK_K, 0],
        c_ready.index(slot),
        c_smem.index(slot),
        pred=tile < num_tiles,
    )


@gluon.jit
def _start_tile(
    x_smem,
    c_smem,
    c_ready,
    acc,
    row_half_norm,
    half_norm_ptr,
    K,
    t,
    num_tiles,
    layout: gl.constexpr,
    STAGES: gl.constexpr,
    KEYED: gl.constexpr,
):
    """Issue tile ``t``'s product into ``acc`` without waiting for it.

    KEYED: ``acc = ‖x‖²/2 + ‖c‖²/2 + (−x)·c`` (``x_smem`` holds ``−x``); else ``acc = x·c``.
    Past the last tile the product runs on stale shared memory and is never folded.
    """
    BLOCK_K: gl.constexpr = acc.shape[1]
    slot = t % STAGES
    if KEYED:
        codes = t * BLOCK_K + gl.arange(0, BLOCK_K, layout=gl.SliceLayout(0, layout))
        half_norm = gl.load(half_norm_ptr + codes)
        acc = gl.expand_dims(row_half_norm, 1) + gl.expand_dims(half_norm, 0)
    mbarrier.wait(c_ready.index(slot), (t // STAGES) & 1, pred=t < num_tiles)
    return warpgroup_mma(
        x_smem, c_smem.index(slot).permute((1, 0)), acc, use_acc=KEYED, is_async=True
    )


@gluon.jit
def _nearest_code_kernel(
    x_desc,
    c_desc,
    half_norm_ptr,
    out_ptr,
    N,
    K,
    K_PAD,
    zero,
    STAGES: gl.constexpr,
    KEYED: gl.constexpr,
    num_warps: gl.constexpr,
):
    BLOCK_N: gl.constexpr = x_desc.block_type.shape[0]
    BLOCK_K: gl.constexpr = c_desc.block_type.shape[0]
    pid = gl.program_id(0)
    group = gl.program_id(1)
    x_row = group * N + pid * BLOCK_N
    c_row = group * K
    half_norm_ptr += group.to(gl.int64) * K_PAD

    layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, BLOCK_K, 16]
    )
    rows_layout: gl.constexpr = gl.SliceLayout(1, layout)

    x_smem = gl.allocate_shared_memory(x_desc.dtype, x_desc.block_type.shape, x_desc.layout)
    c_smem = gl.allocate_shared_memory(
        c_desc.dtype, [STAGES] + c_desc.block_type.shape, c_desc.layout
    )
    x_ready = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    c_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    mbarrier.init(x_ready, count=1)
    for s in gl.static_range(STAGES):
        mbarrier.init(c_ready.index(s), count=1)

    num_tiles = gl.cdiv(K, BLOCK_K)
    mbarrier.expect(x_ready, x_desc.block_type.nbytes)
    tma.async_copy_global_to_shared(x_desc, [x_row, 0], x_ready, x_smem)
    for s in gl.static_range(STAGES):
        mbarrier.expect(c_ready.index(s), c_desc.block_type.nbytes, pred=s < num_tiles)
        tma.async_copy_global_to_shared(
            c_desc, [c_row + s * BLOCK_K, 0], c_ready.index(s), c_smem.index(s), pred=s < num_tiles
        )
    mbarrier.wait(x_ready, 0)

    if KEYED:
        # Negate the row tile in place and take its half-norms from the same (rounded) values.
        rows_blocked: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [num_warps, 1], [1, 0])
        x = x_smem.load(rows_blocked)
        x_float = x.to(gl.float32)
        row_half_norm = gl.convert_layout(0.5 * gl.sum(x_float * x_float, axis=1), rows_layout)
        x_smem.store((-x_float).to(x_desc.dtype))
        fence_async_shared()
        best = gl.full([BLOCK_N], float("inf"), gl.float32, rows_layout)
    else:
        row_half_norm = gl.zeros([BLOCK_N], gl.float32, rows_layout)
        best = gl.full([BLOCK_N], float("-inf"), gl.float32, rows_layout)
    best_index = gl.zeros([BLOCK_N], gl.int32, rows_layout)
    # Column of every score, offset by a runtime zero so that the compiler keeps the columns in
    # registers (one bit operation per score) instead of folding them into immediates (two).
    columns = gl.expand_dims(gl.arange(0, BLOCK_K, layout=gl.SliceLayout(0, layout)), 0) + zero

    # Two accumulators take turns: while the tensor cores fill one with tile t + 1, the warps
    # reduce tile t from the other. Nothing reads an accumulator while a product into it is in
    # flight (ptxas would then serialise every product).
    acc_a = gl.zeros([BLOCK_N, BLOCK_K], gl.float32, layout)
    acc_b = gl.zeros([BLOCK_N, BLOCK_K], gl.float32, layout)
    acc_a = _start_tile(
        x_smem,
        c_smem,
        c_ready,
        acc_a,
        row_half_norm,
        half_norm_ptr,
        K,
        0,
        num_tiles,
        layout,
        STAGES,
        KEYED,
    )
    acc_a = warpgroup_mma_wait(num_outstanding=0, deps=(acc_a,))
    for t in range(0, num_tiles - 1, 2):
        # acc_a holds tile t, finished.
        _refill(c_desc, c_smem, c_ready, c_row, t, num_tiles, STAGES)
        acc_b = _start_tile(
            x_smem,
            c_smem,
            c_ready,
            acc_b,
            row_half_norm,
            half_norm_ptr,
            K,
            t + 1,
            num_tiles,
            layout,
            STAGES,
            KEYED,
        )
        best, best_index = _fold_tile(
            acc_a, half_norm_ptr, t * BLOCK_K, K, best, best_index, columns, layout, KEYED
        )
        acc_b = warpgroup_mma_wait(num_outstanding=0, deps=(acc_b,))
        _refill(c_desc, c_smem, c_ready, c_row, t + 1, num_tiles, STAGES)
        acc_a = _start_tile(
            x_smem,
            c_smem,
            c_ready,
            acc_a,
            row_half_norm,
            half_norm_ptr,
            K,
            t + 2,
            num_tiles,
            layout,
            STAGES,
            KEYED,
        )
        best, best_index = _fold_tile(
            acc_b, half_norm_ptr, (t + 1) * BLOCK_K, K, best, best_index, columns, layout, KEYED
        )
        acc_a = warpgroup_mma_wait(num_outstanding=0, deps=(acc_a,))
    if num_tiles % 2 == 1:
        best, best_index = _fold_tile(
            acc_a,
            half_norm_ptr,
            (num_tiles - 1) * BLOCK_K,
            K,
            best,
            best_index,
            columns,
            layout,
            KEYED,
        )

    mbarrier.invalidate(x_ready)
    for s in gl.static_range(STAGES):
        mbarrier.invalidate(c_ready.index(s))
    rows = pid * BLOCK_N + gl.arange(0, BLOCK_N, layout=rows_layout)
    gl.store(out_ptr + group.to(gl.int64) * N + rows, best_index.to(gl.int64), mask=rows < N)


def launch(
    x: Tensor,
    codebook: Tensor,
    out: Tensor,
    block_n: int = 128,
    block_k: int = 128,
    stages: int = 2,
    num_warps: int = 8,
    keyed: bool = True,
) -> None:
    """``x [G, N, D]``, ``codebook [G, K, D]`` (bf16 or fp16, contiguous, D % 8 == 0, D ≤ 256),
    → ``out [G, N]`` int64."""
    groups, n, d = x.shape
    k = codebook.shape[1]
    d_pad = max(16, triton.next_power_of_2(d))
    dtype = gl.bfloat16 if x.dtype == torch.bfloat16 else gl.float16
    x_layout = gl.NVMMASharedLayout.get_default_for([block_n, d_pad], dtype)
    c_layout = gl.NVMMASharedLayout.get_default_for([block_k, d_pad], dtype)
    x2 = x.view(groups * n, d)
    c2 = codebook.view(groups * k, d)
    x_desc = TensorDescriptor(x2, list(x2.shape), list(x2.stride()), [block_n, d_pad], x_layout)
    c_desc = TensorDescriptor(c2, list(c2.shape), list(c2.stride()), [block_k, d_pad], c_layout)
    k_pad = (triton.cdiv(k, block_k) + 1) * block_k
    norms = half_norms(codebook, padded_k=k_pad, fill=FAR)
    grid = (triton.cdiv(n, block_n), groups)
    _nearest_code_kernel[grid](
        x_desc, c_desc, norms, out, n, k, k_pad, 0, STAGES=stages, KEYED=keyed, num_warps=num_warps
    )
