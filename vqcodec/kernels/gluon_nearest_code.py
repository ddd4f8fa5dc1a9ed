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
separate value and index needs about twice as many instructions per score (6.6 against 3),
which run at half the rate of additions on Hopper and were the bottleneck for D ≤ 64. The cost is
``log2(BLOCK_K)`` of the 24 mantissa bits: codes whose distances agree to 2⁻¹⁷ relative count
as tied, far below the bf16 rounding of fast mode's products.

A program searches a row tile of ``BLOCK_N`` rows of ``x`` (one TMA load into shared memory,
negated in place, kept for the whole pass) and streams the codebook through a ring of
``STAGES`` shared-memory tiles filled by TMA; the codes' half-norms are loaded a tile ahead.
Launched persistent (``TileConfig.programs_per_sm``), each program goes on to further row tiles,
its ring already loading their first codebook tiles. Fast mode only: bf16 or fp16 operands with
float32 accumulation.

Large searches with ``D ≤ 128`` go to a warp-specialised kernel (``TileConfig.warp_specialized``,
``gl.warp_specialize``): one program a multiprocessor, whose single loading warp issues every TMA
copy and waits on "slot free" barriers, and whose two consumer warpgroups (64 rows of a 128-row
tile each) share each codebook tile and only compute. In the plain kernel each program's warps
issue their own loads between products, and Gluon surrounds every mbarrier and TMA operation
with a program-wide barrier; here those are off the consumers' path, the codebook is read from L2
half as often, and each consumer starts its next row tile's first product before it folds the
last tile of the current one. Same tiles and order of minima as the plain kernel with
``BLOCK_K = 128``: the same choices, bit for bit. From ``D = 32`` on
(``TileConfig.norms_in_product``) the two half-norms are not added to the accumulator before
each product but enter it as one more 16-wide k step on the tensor cores (each half-norm split
into three bf16 terms, all of its float32 bits): the consumers then do no work between a
product's wait and the next product's issue but the reduction. The tensor cores add in another
order, so codes whose distances agree to the last bits kept may be chosen differently.

File order: kernel helpers, the plain kernel, the warp-specialised kernel, then the launcher.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
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

from vqcodec.kernels.launch import LaunchCache, cdiv, next_power_of_2, on_device
from vqcodec.kernels.triton_nearest_code import (
    TERMS_WIDTH,
    fast_dtype,
    half_norm_terms,
    half_norms,
)

# Padding codes (past K, up to one whole tile past the last) get this half-norm: far from every
# row, yet finite, so that writing a column into its low bits cannot make a NaN of it the way it
# would of an infinity. The padding also spares every tile a masked load.
FAR = 1e38
DTYPES = (torch.float32, torch.bfloat16, torch.float16)


@gluon.jit
def _fold_tile(acc, k0, best, best_index, columns, KEYED: gl.constexpr):
    """Fold one ``[BLOCK_N, BLOCK_K]`` tile of half squared distances into the running nearest
    code of every row (``best``: the smallest so far, its low bits cleared).

    ``KEYED=False`` is for measuring only (``benchmarks/nearest_code_gap.py``): one float
    minimum per score and no index, the least reduction that keeps the products alive."""
    if not KEYED:
        tile_min = gl.min(acc, axis=1)
        return gl.minimum(best, tile_min), best_index + (tile_min < best).to(gl.int32)
    LOW: gl.constexpr = acc.shape[1] - 1
    keys = ((acc.to(gl.int32, bitcast=True) & ~LOW) | columns).to(gl.float32, bitcast=True)
    tile_key = gl.min(keys, axis=1).to(gl.int32, bitcast=True)
    tile_best = (tile_key & ~LOW).to(gl.float32, bitcast=True)
    # Strictly better only: an equal distance in a later tile has a higher index.
    better = tile_best < best
    best = gl.where(better, tile_best, best)
    best_index = gl.where(better, (tile_key & LOW) + k0, best_index)
    return best, best_index


@gluon.jit
def _load_rows(x_desc, x_smem, x_ready, item, num_items, x_row):
    """Start loading this program's ``item``-th row tile into its buffer (nothing past the
    last item); ``x_row``: the group's first row."""
    BLOCK_N: gl.constexpr = x_desc.block_type.shape[0]
    X_BUFFERS: gl.constexpr = x_smem.shape[0]
    row = x_row + (gl.program_id(0) + item * gl.num_programs(0)) * BLOCK_N
    buffer = item % X_BUFFERS
    mbarrier.expect(x_ready.index(buffer), x_desc.block_type.nbytes, pred=item < num_items)
    tma.async_copy_global_to_shared(
        x_desc, [row, 0], x_ready.index(buffer), x_smem.index(buffer), pred=item < num_items
    )


@gluon.jit
def _load_codes(c_desc, c_smem, c_ready, g, code_tile, c_row, all_tiles, num_tiles):
    """Start loading codebook tile ``code_tile`` as this program's tile number ``g`` (counted
    over all its items) into slot ``g % STAGES`` (nothing past the last); returns the code tile
    of ``g + 1``. Counting instead of dividing keeps the per-tile scalar work small."""
    STAGES: gl.constexpr = c_smem.shape[0]
    BLOCK_K: gl.constexpr = c_desc.block_type.shape[0]
    slot = g % STAGES
    mbarrier.expect(c_ready.index(slot), c_desc.block_type.nbytes, pred=g < all_tiles)
    tma.async_copy_global_to_shared(
        c_desc,
        [c_row + code_tile * BLOCK_K, 0],
        c_ready.index(slot),
        c_smem.index(slot),
        pred=g < all_tiles,
    )
    return gl.where(code_tile + 1 == num_tiles, 0, code_tile + 1)


@gluon.jit
def _load_half_norms(half_norm_ptr, t, K_PAD, BLOCK_K: gl.constexpr, layout: gl.constexpr):
    """Codebook tile ``t``'s half-norms in ``layout`` (see ``COLUMN_NORMS`` in the kernel).
    Loaded a tile ahead of their use: read just before the product, their latency would hold up
    every product."""
    codes = t * BLOCK_K + gl.arange(0, BLOCK_K, layout=layout)
    # The prefetch reads at most the spare tile; the mask only guards that.
    return gl.load(half_norm_ptr + codes, mask=codes < K_PAD, other=0.0)


@gluon.jit
def _start_tile(
    x_smem,
    c_smem,
    c_ready,
    row_half_norm,
    code_half_norm,
    exists,
    g,
    layout: gl.constexpr,
    ADD_NORMS: gl.constexpr,
):
    """Issue the product of this program's codebook tile number ``g`` (counted over all its row
    tiles): ``‖x‖²/2 + ‖c‖²/2 + (−x)·c`` (``x_smem`` holds ``−x``), not waited for. Without
    ``exists`` (a tile past the last) the product reads a stale slot and is discarded.

    ``ADD_NORMS=False`` (measuring only) starts the product from zero.
    """
    STAGES: gl.constexpr = c_smem.shape[0]
    slot = g % STAGES
    if ADD_NORMS:
        # A no-op when the norms were loaded in this layout (COLUMN_NORMS).
        code_half_norm = gl.convert_layout(code_half_norm, gl.SliceLayout(0, layout))
        acc = gl.expand_dims(row_half_norm, 1) + gl.expand_dims(code_half_norm, 0)
    else:
        BLOCK_N: gl.constexpr = x_smem.shape[0]
        BLOCK_K: gl.constexpr = c_smem.shape[1]
        acc = gl.zeros([BLOCK_N, BLOCK_K], gl.float32, layout)
    mbarrier.wait(c_ready.index(slot), (g // STAGES) & 1, pred=exists)
    return warpgroup_mma(
        x_smem, c_smem.index(slot).permute((1, 0)), acc, use_acc=ADD_NORMS, is_async=True
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
    X_BUFFERS: gl.constexpr,
    num_warps: gl.constexpr,
    COLUMN_NORMS: gl.constexpr = False,
    KEYED: gl.constexpr = True,
    ADD_NORMS: gl.constexpr = True,
):
    """Program ``(p, group)`` searches the group's row tiles ``p, p + P, p + 2P, ...`` (``P``
    programs a group). With one program per row tile this is the plain tiled search; with fewer
    (persistent) each program loads its next row tile's first codebook tiles while it searches
    the current one, and with ``X_BUFFERS = 2`` its next rows too (with one buffer, that load
    starts when the current row tile is done). ``COLUMN_NORMS``: see :class:`TileConfig`.
    ``KEYED`` and ``ADD_NORMS`` are for measuring the kernel's parts (see :func:`_fold_tile` and
    :func:`_start_tile`)."""
    BLOCK_N: gl.constexpr = x_desc.block_type.shape[0]
    BLOCK_K: gl.constexpr = c_desc.block_type.shape[0]
    group = gl.program_id(1)
    num_items = gl.cdiv(gl.cdiv(N, BLOCK_N) - gl.program_id(0), gl.num_programs(0))
    num_tiles = gl.cdiv(K, BLOCK_K)
    all_tiles = num_items * num_tiles
    x_row = group * N
    c_row = group * K
    half_norm_ptr += group.to(gl.int64) * K_PAD

    layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, BLOCK_K, 16]
    )
    rows_layout: gl.constexpr = gl.SliceLayout(1, layout)
    if COLUMN_NORMS:
        norms_layout: gl.constexpr = gl.SliceLayout(0, layout)
    else:
        norms_layout: gl.constexpr = gl.BlockedLayout([1], [32], [num_warps], [0])

    x_smem = gl.allocate_shared_memory(
        x_desc.dtype, [X_BUFFERS] + x_desc.block_type.shape, x_desc.layout
    )
    c_smem = gl.allocate_shared_memory(
        c_desc.dtype, [STAGES] + c_desc.block_type.shape, c_desc.layout
    )
    x_ready = gl.allocate_shared_memory(gl.int64, [X_BUFFERS, 1], mbarrier.MBarrierLayout())
    c_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for b in gl.static_range(X_BUFFERS):
        mbarrier.init(x_ready.index(b), count=1)
    for s in gl.static_range(STAGES):
        mbarrier.init(c_ready.index(s), count=1)

    _load_rows(x_desc, x_smem, x_ready, 0, num_items, x_row)
    load_tile = 0  # code tile of the next codebook load
    for s in gl.static_range(STAGES):
        load_tile = _load_codes(c_desc, c_smem, c_ready, s, load_tile, c_row, all_tiles, num_tiles)

    # Column of every score, offset by a runtime zero so that the compiler keeps the columns in
    # registers (one bit operation per score) instead of folding them into immediates (two).
    columns = gl.expand_dims(gl.arange(0, BLOCK_K, layout=gl.SliceLayout(0, layout)), 0) + zero
    rows_blocked: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [num_warps, 1], [1, 0])
    for item in range(num_items):
        if X_BUFFERS == 2:
            # Every warp is done with the previous item (its products read the other buffer)
            # before that buffer is refilled with the next item's rows.
            gl.thread_barrier()
            _load_rows(x_desc, x_smem, x_ready, item + 1, num_items, x_row)
        x_buffer = x_smem.index(item % X_BUFFERS)
        mbarrier.wait(x_ready.index(item % X_BUFFERS), (item // X_BUFFERS) & 1)

        # Negate the row tile in place; its half-norms come from the same (rounded) values.
        x = x_buffer.load(rows_blocked).to(gl.float32)
        row_half_norm = gl.convert_layout(0.5 * gl.sum(x * x, axis=1), rows_layout)
        x_buffer.store((-x).to(x_desc.dtype))
        fence_async_shared()
        gl.thread_barrier()

        g0 = item * num_tiles
        best = gl.full([BLOCK_N], float("inf"), gl.float32, rows_layout)
        best_index = gl.zeros([BLOCK_N], gl.int32, rows_layout)
        # Two accumulators take turns: while the tensor cores fill one with tile t + 1, the
        # warps reduce tile t from the other. Nothing reads an accumulator while a product into
        # it is in flight (ptxas would then serialise every product). When a tile's product is
        # done, its slot takes the tile STAGES further on (of this row tile or the next).
        norms = _load_half_norms(half_norm_ptr, 0, K_PAD, BLOCK_K, norms_layout)
        acc_a = _start_tile(
            x_buffer, c_smem, c_ready, row_half_norm, norms, 0 < num_tiles, g0, layout, ADD_NORMS
        )
        norms = _load_half_norms(half_norm_ptr, 1, K_PAD, BLOCK_K, norms_layout)
        acc_a = warpgroup_mma_wait(num_outstanding=0, deps=(acc_a,))
        for t in range(0, num_tiles - 2, 2):
            # acc_a holds tile t, finished; tiles t + 1 and t + 2 exist.
            g = g0 + t
            load_tile = _load_codes(
                c_desc, c_smem, c_ready, g + STAGES, load_tile, c_row, all_tiles, num_tiles
            )
            acc_b = _start_tile(
                x_buffer, c_smem, c_ready, row_half_norm, norms, t + 1 < num_tiles, g + 1, layout,
                ADD_NORMS,
            )  # fmt: skip
            norms = _load_half_norms(half_norm_ptr, t + 2, K_PAD, BLOCK_K, norms_layout)
            best, best_index = _fold_tile(acc_a, t * BLOCK_K, best, best_index, columns, KEYED)
            acc_b = warpgroup_mma_wait(num_outstanding=0, deps=(acc_b,))
            load_tile = _load_codes(
                c_desc, c_smem, c_ready, g + 1 + STAGES, load_tile, c_row, all_tiles, num_tiles
            )
            acc_a = _start_tile(
                x_buffer, c_smem, c_ready, row_half_norm, norms, t + 2 < num_tiles, g + 2, layout,
                ADD_NORMS,
            )  # fmt: skip
            norms = _load_half_norms(half_norm_ptr, t + 3, K_PAD, BLOCK_K, norms_layout)
            best, best_index = _fold_tile(
                acc_b, (t + 1) * BLOCK_K, best, best_index, columns, KEYED
            )
            acc_a = warpgroup_mma_wait(num_outstanding=0, deps=(acc_a,))
        # The loop starts no product past the last tile (that was one product in nine at
        # K = 1,024): with an even number of tiles, the last one is started here.
        if num_tiles % 2 == 0:
            t = num_tiles - 2  # acc_a holds it, finished
            g = g0 + t
            load_tile = _load_codes(
                c_desc, c_smem, c_ready, g + STAGES, load_tile, c_row, all_tiles, num_tiles
            )
            acc_b = _start_tile(
                x_buffer, c_smem, c_ready, row_half_norm, norms, t + 1 < num_tiles, g + 1, layout,
                ADD_NORMS,
            )  # fmt: skip
            best, best_index = _fold_tile(acc_a, t * BLOCK_K, best, best_index, columns, KEYED)
            acc_a = warpgroup_mma_wait(num_outstanding=0, deps=(acc_b,))
        # acc_a holds the last tile, finished; its slot was not refilled yet.
        load_tile = _load_codes(
            c_desc, c_smem, c_ready, g0 + num_tiles - 1 + STAGES, load_tile, c_row, all_tiles,
            num_tiles,
        )  # fmt: skip
        best, best_index = _fold_tile(
            acc_a, (num_tiles - 1) * BLOCK_K, best, best_index, columns, KEYED
        )

        rows = (gl.program_id(0) + item * gl.num_programs(0)) * BLOCK_N
        rows += gl.arange(0, BLOCK_N, layout=rows_layout)
        # Clamped: a row of NaNs never beats anything, which would otherwise leave a padding
        # code.
        best_index = gl.minimum(best_index, K - 1)
        out = out_ptr + group.to(gl.int64) * N + rows
        gl.store(out, best_index.to(gl.int64), mask=rows < N)
        if X_BUFFERS == 1:
            gl.thread_barrier()  # every warp's products are done with the one row buffer
            _load_rows(x_desc, x_smem, x_ready, item + 1, num_items, x_row)

    for b in gl.static_range(X_BUFFERS):
        mbarrier.invalidate(x_ready.index(b))
    for s in gl.static_range(STAGES):
        mbarrier.invalidate(c_ready.index(s))


# The warp-specialised search: a loading warp and two consumer warpgroups a program, one
# program a multiprocessor. ``ROWS_PER_CONSUMER`` is the row tiling of one warpgroup's wgmma.
ROWS_PER_CONSUMER = 64
_HALF = gl.constexpr(ROWS_PER_CONSUMER)
# The consumers' tile loop needs at least this many codebook tiles a row tile; the launcher pads
# smaller codebooks with codes that never win (see ``_nearest_code_ws_kernel``).
WS_MIN_TILES = 3


@gluon.jit
def _prepare_rows(
    x_smem,
    row_terms_smem,
    x_ready,
    item,
    half: gl.constexpr,
    exists,
    rows_layout: gl.constexpr,
    NORMS_IN_PRODUCT: gl.constexpr,
):
    """Wait for this consumer's rows of its program's ``item``-th row tile, negate them in place;
    returns their buffer number, the buffer and the rows' half-norms: in ``rows_layout``, or with
    ``NORMS_IN_PRODUCT`` the buffer of their terms (row ``[h, m, l, 1, 1, 1, 0, …]``, the product
    partner of ``half_norm_terms``'s table). Without ``exists`` (no such item) nothing is waited
    for and the results are discarded."""
    X_BUFFERS: gl.constexpr = x_smem.shape[0] // 2
    b = (item % X_BUFFERS) * 2 + half
    x_buffer = x_smem.index(b)
    mbarrier.wait(x_ready.index(b), (item // X_BUFFERS) & 1, pred=exists)
    rows_blocked: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [4, 1], [1, 0])
    x = x_buffer.load(rows_blocked).to(gl.float32)
    row_half_norm = 0.5 * gl.sum(x * x, axis=1)
    if not NORMS_IN_PRODUCT:
        row_norms = gl.convert_layout(row_half_norm, rows_layout)
    x_buffer.store((-x).to(x_buffer.dtype))
    if NORMS_IN_PRODUCT:
        terms_layout: gl.constexpr = gl.BlockedLayout([1, 8], [16, 2], [4, 1], [1, 0])
        row_half_norm = gl.convert_layout(row_half_norm, gl.SliceLayout(1, terms_layout))
        high = row_half_norm.to(gl.bfloat16).to(gl.float32)
        middle = (row_half_norm - high).to(gl.bfloat16).to(gl.float32)
        low = gl.expand_dims(row_half_norm - high - middle, 1)  # exact in float32
        TERMS: gl.constexpr = row_terms_smem.shape[2]
        column = gl.arange(0, TERMS, layout=gl.SliceLayout(0, terms_layout))
        column = gl.expand_dims(column, 0)
        terms = gl.where(column < 6, 1.0, 0.0)
        terms = gl.where(column == 2, low, terms)
        terms = gl.where(column == 1, gl.expand_dims(middle, 1), terms)
        terms = gl.where(column == 0, gl.expand_dims(high, 1), terms)
        row_norms = row_terms_smem.index(b)
        row_norms.store(terms.to(gl.bfloat16))
    fence_async_shared()
    gl.thread_barrier()  # of this partition: every warp's rows are stored before the products
    return b, x_buffer, row_norms


@gluon.jit
def _wait_for_prior_kernels():
    """``griddepcontrol.wait``: until the kernels this one was launched after (with
    programmatic dependent launch: the half-norm kernel) are done and their writes visible; a
    no-op in an ordinary launch."""
    gl.inline_asm_elementwise(
        "griddepcontrol.wait; // $0", "=r", [], dtype=gl.int32, is_pure=False, pack=1
    )


@gluon.jit
def _next_code_norms(
    half_norm_ptr,
    t,
    K_PAD,
    BLOCK_K: gl.constexpr,
    layout: gl.constexpr,
    NORMS_IN_PRODUCT: gl.constexpr,
):
    """Codebook tile ``t``'s half-norms for :func:`_start_ws_tile`, loaded a tile ahead; with
    ``NORMS_IN_PRODUCT`` they come with the codebook tile, and a scalar zero (unused: loop-carried
    values must be tensors) stands in."""
    if NORMS_IN_PRODUCT:
        norms = gl.to_tensor(0.0)
    else:
        norms = _load_half_norms(half_norm_ptr, t, K_PAD, BLOCK_K, layout)
    return norms


@gluon.jit
def _start_ws_tile(
    x_buffer,
    row_norms,
    code_norms,
    c_smem,
    code_terms_smem,
    c_ready,
    exists,
    g,
    layout: gl.constexpr,
    ADD_NORMS: gl.constexpr,
    NORMS_IN_PRODUCT: gl.constexpr,
):
    """A consumer's :func:`_start_tile`. With ``NORMS_IN_PRODUCT`` the product starts with the
    extra k step ``row terms · code terms`` (``row_norms``: the rows' terms buffer; both
    half-norms, each as three bf16 terms), then adds ``(−x)·c`` (``code_norms`` unused)."""
    if NORMS_IN_PRODUCT:
        STAGES: gl.constexpr = c_smem.shape[0]
        BLOCK_K: gl.constexpr = c_smem.shape[1]
        slot = g % STAGES
        acc = gl.zeros([_HALF, BLOCK_K], gl.float32, layout)  # not read: use_acc=False
        mbarrier.wait(c_ready.index(slot), (g // STAGES) & 1, pred=exists)
        if ADD_NORMS:
            acc = warpgroup_mma(
                row_norms, code_terms_smem.index(slot).permute((1, 0)), acc, use_acc=False,
                is_async=True,
            )  # fmt: skip
        acc = warpgroup_mma(
            x_buffer, c_smem.index(slot).permute((1, 0)), acc, use_acc=ADD_NORMS, is_async=True
        )
    else:
        acc = _start_tile(
            x_buffer, c_smem, c_ready, row_norms, code_norms, exists, g, layout, ADD_NORMS
        )
    return acc


@gluon.jit
def _loader(
    args,
    half: gl.constexpr,
    WAIT: gl.constexpr,
    KEYED: gl.constexpr,
    ADD_NORMS: gl.constexpr,
    NORMS_IN_PRODUCT: gl.constexpr,
):
    """The loading warp: for each of the program's row tiles, both consumers' rows (once their
    buffer is free), then every codebook tile into the ring (once both consumers are done with
    the slot), with ``NORMS_IN_PRODUCT`` each tile's rows of the half-norm terms table on the
    same barrier. ``half``, ``KEYED`` and ``ADD_NORMS`` are unused (the worker partitions share
    one signature). ``WAIT``: wait for the prior kernel (which writes the terms table) before
    the first table load; neither rows nor codes come from it."""
    (x_desc, c_desc, half_norm_ptr, out_ptr, N, K, K_PAD, num_tiles, zero,
     x_smem, c_smem, x_ready, x_empty, c_ready, c_empty, terms_desc, code_terms_smem,
     row_terms_smem) = args  # fmt: skip
    BLOCK_K: gl.constexpr = c_desc.block_type.shape[0]
    STAGES: gl.constexpr = c_smem.shape[0]
    X_BUFFERS: gl.constexpr = x_smem.shape[0] // 2
    group = gl.program_id(1)
    num_items = gl.cdiv(gl.cdiv(N, 2 * _HALF) - gl.program_id(0), gl.num_programs(0))
    g = 0
    for item in range(num_items):
        row = group * N + (gl.program_id(0) + item * gl.num_programs(0)) * 2 * _HALF
        for h in gl.static_range(2):
            b = (item % X_BUFFERS) * 2 + h
            # mbarriers start in phase 0: the first wait for a free buffer (phase 1) passes.
            mbarrier.wait(x_empty.index(b), ((item // X_BUFFERS) & 1) ^ 1)
            mbarrier.expect(x_ready.index(b), x_desc.block_type.nbytes)
            tma.async_copy_global_to_shared(
                x_desc, [row + h * _HALF, 0], x_ready.index(b), x_smem.index(b)
            )
        for t in range(num_tiles):
            slot = g % STAGES
            mbarrier.wait(c_empty.index(slot), ((g // STAGES) & 1) ^ 1)
            if NORMS_IN_PRODUCT:
                if WAIT:
                    if g == 0:
                        _wait_for_prior_kernels()
                nbytes: gl.constexpr = c_desc.block_type.nbytes + terms_desc.block_type.nbytes
                mbarrier.expect(c_ready.index(slot), nbytes)
                tma.async_copy_global_to_shared(
                    terms_desc,
                    [group * K_PAD + t * BLOCK_K, 0],
                    c_ready.index(slot),
                    code_terms_smem.index(slot),
                )
            else:
                mbarrier.expect(c_ready.index(slot), c_desc.block_type.nbytes)
            tma.async_copy_global_to_shared(
                c_desc, [group * K + t * BLOCK_K, 0], c_ready.index(slot), c_smem.index(slot)
            )
            g += 1


@gluon.jit
def _consumer(
    args,
    half: gl.constexpr,
    WAIT: gl.constexpr,
    KEYED: gl.constexpr,
    ADD_NORMS: gl.constexpr,
    NORMS_IN_PRODUCT: gl.constexpr,
):
    """One consumer warpgroup: rows ``[64·half, 64·half + 64)`` of each of its program's row
    tiles. The tile loop is the plain kernel's (two accumulators in turn), except that a slot is
    handed back to the loader instead of refilled, and that the next row tile's first product
    starts before the last tile of this one is folded (the rows are prepared just before).
    ``WAIT``: wait for the prior kernels before the first half-norms are read (with
    ``NORMS_IN_PRODUCT`` the loader waits: the consumers read no norms, they come in the codebook
    tiles' ring as terms of the product)."""
    (x_desc, c_desc, half_norm_ptr, out_ptr, N, K, K_PAD, num_tiles, zero,
     x_smem, c_smem, x_ready, x_empty, c_ready, c_empty, terms_desc, code_terms_smem,
     row_terms_smem) = args  # fmt: skip
    BLOCK_K: gl.constexpr = c_desc.block_type.shape[0]
    STAGES: gl.constexpr = c_smem.shape[0]
    group = gl.program_id(1)
    num_items = gl.cdiv(gl.cdiv(N, 2 * _HALF) - gl.program_id(0), gl.num_programs(0))
    if not NORMS_IN_PRODUCT:
        half_norm_ptr += group.to(gl.int64) * K_PAD
    layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, BLOCK_K, 16]
    )
    rows_layout: gl.constexpr = gl.SliceLayout(1, layout)
    norms_layout: gl.constexpr = gl.BlockedLayout([1], [32], [4], [0])
    columns = gl.expand_dims(gl.arange(0, BLOCK_K, layout=gl.SliceLayout(0, layout)), 0) + zero

    b, x_buffer, row_norms = _prepare_rows(
        x_smem, row_terms_smem, x_ready, 0, half, True, rows_layout, NORMS_IN_PRODUCT
    )
    if WAIT and not NORMS_IN_PRODUCT:
        _wait_for_prior_kernels()  # the code half-norms are written (rows and codes need not)
    norms = _next_code_norms(half_norm_ptr, 0, K_PAD, BLOCK_K, norms_layout, NORMS_IN_PRODUCT)
    acc_a = _start_ws_tile(
        x_buffer, row_norms, norms, c_smem, code_terms_smem, c_ready, True, 0, layout,
        ADD_NORMS, NORMS_IN_PRODUCT,
    )  # fmt: skip
    norms = _next_code_norms(half_norm_ptr, 1, K_PAD, BLOCK_K, norms_layout, NORMS_IN_PRODUCT)
    acc_a = warpgroup_mma_wait(num_outstanding=0, deps=(acc_a,))
    for item in range(num_items):
        # acc_a holds this row tile's first codebook tile, finished; norms: the second's.
        g0 = item * num_tiles
        best = gl.full([_HALF], float("inf"), gl.float32, rows_layout)
        best_index = gl.zeros([_HALF], gl.int32, rows_layout)
        # With num_tiles >= WS_MIN_TILES this loop runs at least once for every row tile (see
        # _nearest_code_ws_kernel).
        for t in range(0, num_tiles - 2, 2):
            g = g0 + t
            mbarrier.arrive(c_empty.index(g % STAGES))
            acc_b = _start_ws_tile(
                x_buffer, row_norms, norms, c_smem, code_terms_smem, c_ready, True, g + 1, layout,
                ADD_NORMS, NORMS_IN_PRODUCT,
            )  # fmt: skip
            norms = _next_code_norms(
                half_norm_ptr, t + 2, K_PAD, BLOCK_K, norms_layout, NORMS_IN_PRODUCT
            )
            best, best_index = _fold_tile(acc_a, t * BLOCK_K, best, best_index, columns, KEYED)
            acc_b = warpgroup_mma_wait(num_outstanding=0, deps=(acc_b,))
            mbarrier.arrive(c_empty.index((g + 1) % STAGES))
            acc_a = _start_ws_tile(
                x_buffer, row_norms, norms, c_smem, code_terms_smem, c_ready, True, g + 2, layout,
                ADD_NORMS, NORMS_IN_PRODUCT,
            )  # fmt: skip
            norms = _next_code_norms(
                half_norm_ptr, t + 3, K_PAD, BLOCK_K, norms_layout, NORMS_IN_PRODUCT
            )
            best, best_index = _fold_tile(
                acc_b, (t + 1) * BLOCK_K, best, best_index, columns, KEYED
            )
            acc_a = warpgroup_mma_wait(num_outstanding=0, deps=(acc_a,))
        more = item + 1 < num_items
        if num_tiles % 2 == 0:
            t = num_tiles - 2
            g = g0 + t
            mbarrier.arrive(c_empty.index(g % STAGES))
            acc_b = _start_ws_tile(
                x_buffer, row_norms, norms, c_smem, code_terms_smem, c_ready, True, g + 1, layout,
                ADD_NORMS, NORMS_IN_PRODUCT,
            )  # fmt: skip
            # The next row tile's rows are prepared while the tensor cores work.
            b_next, x_next, row_norms_next = _prepare_rows(
                x_smem, row_terms_smem, x_ready, item + 1, half, more, rows_layout,
                NORMS_IN_PRODUCT,
            )  # fmt: skip
            best, best_index = _fold_tile(acc_a, t * BLOCK_K, best, best_index, columns, KEYED)
            acc_a = warpgroup_mma_wait(num_outstanding=0, deps=(acc_b,))
        else:
            b_next, x_next, row_norms_next = _prepare_rows(
                x_smem, row_terms_smem, x_ready, item + 1, half, more, rows_layout,
                NORMS_IN_PRODUCT,
            )  # fmt: skip
        # acc_a holds the last tile, finished: the next row tile's first product starts first.
        mbarrier.arrive(c_empty.index((g0 + num_tiles - 1) % STAGES))
        norms = _next_code_norms(half_norm_ptr, 0, K_PAD, BLOCK_K, norms_layout, NORMS_IN_PRODUCT)
        acc_b = _start_ws_tile(
            x_next, row_norms_next, norms, c_smem, code_terms_smem, c_ready, more, g0 + num_tiles,
            layout, ADD_NORMS, NORMS_IN_PRODUCT,
        )  # fmt: skip
        norms = _next_code_norms(half_norm_ptr, 1, K_PAD, BLOCK_K, norms_layout, NORMS_IN_PRODUCT)
        best, best_index = _fold_tile(
            acc_a, (num_tiles - 1) * BLOCK_K, best, best_index, columns, KEYED
        )
        rows = (gl.program_id(0) + item * gl.num_programs(0)) * 2 * _HALF + half * _HALF
        rows += gl.arange(0, _HALF, layout=rows_layout)
        # Clamped: a row of NaNs never beats anything, which would otherwise leave a padding code.
        best_index = gl.minimum(best_index, K - 1)
        gl.store(out_ptr + group.to(gl.int64) * N + rows, best_index.to(gl.int64), mask=rows < N)
        acc_a = warpgroup_mma_wait(num_outstanding=0, deps=(acc_b,))
        mbarrier.arrive(x_empty.index(b))  # the products that read these rows are all done
        b = b_next
        x_buffer = x_next
        row_norms = row_norms_next


@gluon.jit
def _first_consumer(
    args,
    WAIT: gl.constexpr,
    KEYED: gl.constexpr,
    ADD_NORMS: gl.constexpr,
    NORMS_IN_PRODUCT: gl.constexpr,
):
    _consumer(args, 0, WAIT, KEYED, ADD_NORMS, NORMS_IN_PRODUCT)


@gluon.jit
def _nearest_code_ws_kernel(
    x_desc,
    c_desc,
    half_norm_ptr,
    out_ptr,
    N,
    K,
    K_PAD,
    num_tiles,
    zero,
    terms_desc,
    STAGES: gl.constexpr,
    X_BUFFERS: gl.constexpr,
    CONSUMER_REGISTERS: gl.constexpr,
    DEPENDENT_LAUNCH: gl.constexpr = False,
    KEYED: gl.constexpr = True,
    ADD_NORMS: gl.constexpr = True,
    NORMS_IN_PRODUCT: gl.constexpr = False,
):
    """Warp-specialised search: program ``(p, group)`` searches the group's 128-row tiles
    ``p, p + P, ...``. Its loading warp fills ``X_BUFFERS`` row buffers (one a consumer each) and
    a ring of ``STAGES`` codebook tiles; its two consumer warpgroups (the default partition and a
    worker) share every codebook tile, so the program reads the codebook from L2 half as often as
    two 64-row programs would, and the loads and their barriers are off the consumers' path.

    ``num_tiles`` codebook tiles are searched a row tile: ``cdiv(K, BLOCK_K)``, but at least
    ``WS_MIN_TILES``; the tiles past the codebook hold padding codes (half-norm ``FAR``, ``K_PAD``
    covers them) that never win. Why: with fewer, the consumers' tile-pair loop runs zero times,
    and ptxas 12.8.93 (Triton 3.6.0) computes a product's shared-memory descriptor only on the
    path into that loop while the tail after it reads the descriptor on both paths. At
    ``K = 200`` that tail's product read out of bounds (compute-sanitizer; docs/BENCHMARKS.md).

    ``DEPENDENT_LAUNCH``: launched with programmatic dependent launch right after the half-norm
    kernel (which lets it start), so the rows and first codebook tiles load and the rows are
    negated while the norms are still being written; the consumers wait for them only before
    their first product (with ``NORMS_IN_PRODUCT`` the loader, before its first table load).

    ``NORMS_IN_PRODUCT`` (``TileConfig.norms_in_product``): ``half_norm_ptr`` is unused and
    ``terms_desc`` reads the ``[G·K_PAD, 16]`` table of ``half_norm_terms``; each product gets one
    more 16-wide k step, the row terms (written by the consumer with its negated rows) times
    those of the codes, which adds both half-norms on the tensor cores instead of 64 float
    additions before each product."""
    x_smem = gl.allocate_shared_memory(
        x_desc.dtype, [2 * X_BUFFERS] + x_desc.block_type.shape, x_desc.layout
    )
    c_smem = gl.allocate_shared_memory(
        c_desc.dtype, [STAGES] + c_desc.block_type.shape, c_desc.layout
    )
    x_ready = gl.allocate_shared_memory(gl.int64, [2 * X_BUFFERS, 1], mbarrier.MBarrierLayout())
    x_empty = gl.allocate_shared_memory(gl.int64, [2 * X_BUFFERS, 1], mbarrier.MBarrierLayout())
    c_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    c_empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for b in gl.static_range(2 * X_BUFFERS):
        mbarrier.init(x_ready.index(b), count=1)
        mbarrier.init(x_empty.index(b), count=1)
    for s in gl.static_range(STAGES):
        mbarrier.init(c_ready.index(s), count=1)
        mbarrier.init(c_empty.index(s), count=2)  # both consumers hand the slot back
    if NORMS_IN_PRODUCT:
        code_terms_smem = gl.allocate_shared_memory(
            terms_desc.dtype, [STAGES] + terms_desc.block_type.shape, terms_desc.layout
        )
        # The same layout as the codes' terms: with 16 columns it does not depend on the rows.
        row_terms_smem = gl.allocate_shared_memory(
            terms_desc.dtype,
            [2 * X_BUFFERS, _HALF] + terms_desc.block_type.shape[1:],
            terms_desc.layout,
        )
    else:
        # Stand-ins, never read: the partitions' argument tuple holds values only.
        terms_desc = c_desc
        code_terms_smem = c_smem
        row_terms_smem = x_smem
    args = (x_desc, c_desc, half_norm_ptr, out_ptr, N, K, K_PAD, num_tiles, zero,
            x_smem, c_smem, x_ready, x_empty, c_ready, c_empty, terms_desc, code_terms_smem,
            row_terms_smem)  # fmt: skip
    # Tuples carry runtime values: the compile-time switches go as arguments of their own.
    gl.warp_specialize(
        [
            (_first_consumer, (args, DEPENDENT_LAUNCH, KEYED, ADD_NORMS, NORMS_IN_PRODUCT)),
            (_consumer, (args, 1, DEPENDENT_LAUNCH, KEYED, ADD_NORMS, NORMS_IN_PRODUCT)),
            (_loader, (args, 0, DEPENDENT_LAUNCH, KEYED, ADD_NORMS, NORMS_IN_PRODUCT)),
        ],
        [4, 1],
        [CONSUMER_REGISTERS, 24],
    )
    for b in gl.static_range(2 * X_BUFFERS):
        mbarrier.invalidate(x_ready.index(b))
        mbarrier.invalidate(x_empty.index(b))
    for s in gl.static_range(STAGES):
        mbarrier.invalidate(c_ready.index(s))
        mbarrier.invalidate(c_empty.index(s))


@dataclass(frozen=True)
class TileConfig:
    """One launch's shape: rows per row tile, codes per codebook tile, codebook tiles in flight,
    and ``programs_per_sm``: 0 launches one program per row tile; n > 0 launches about n
    programs per multiprocessor (over all groups) that loop over the row tiles (persistent),
    with ``x_buffers`` row tiles in shared memory (2: the next rows load during the search).

    ``column_norms`` loads each tile's code half-norms straight into the accumulator's column
    layout (each thread the ``BLOCK_K/4`` columns it holds, as many registers more for the
    prefetch) instead of a few a thread moved there through shared memory (a store, a barrier
    and loads a tile).

    ``warp_specialized``: the warp-specialised kernel (one persistent program a multiprocessor,
    128-row tiles split between two consumer warpgroups); ``block_n`` must then be 128 and
    ``x_buffers`` 2 (a consumer prepares its next rows while its last products read the current
    ones), ``programs_per_sm`` is ignored and ``column_norms`` not offered.

    ``norms_in_product`` (warp-specialised launches only): the half-norms enter each product as
    one more 16-wide k step on the tensor cores (row terms times code terms, each half-norm split
    into three bf16 terms: ``half_norm_terms``) instead of being added to the accumulator before
    it, 64 float additions a consumer thread and tile. Nothing is added before a product any
    more; the cost is a product 16/D longer (see ``NORMS_IN_PRODUCT_MIN_D``)."""

    block_n: int
    block_k: int
    stages: int
    programs_per_sm: int = 0
    x_buffers: int = 1
    column_norms: bool = False
    warp_specialized: bool = False
    norms_in_product: bool = False

    def __post_init__(self) -> None:
        if not self.warp_specialized:
            if self.norms_in_product:
                raise ValueError("norms_in_product needs a warp-specialised launch")
            return
        if self.block_n != 2 * ROWS_PER_CONSUMER:
            raise ValueError(f"warp-specialised tiles have {2 * ROWS_PER_CONSUMER} rows")
        if self.x_buffers != 2:
            raise ValueError("warp-specialised launches need x_buffers=2")
        if self.column_norms:
            raise ValueError("warp-specialised launches load the code norms compactly")

    @property
    def num_warps(self) -> int:
        if self.warp_specialized:
            return 4  # the default partition: the first consumer warpgroup
        return self.block_n // 16  # one warp per 16 rows: the wgmma layout's row tiling


# Warp-specialised launches: registers a thread in a consumer warpgroup (the loading warp gets
# the minimum, 24), and the launch limit that leaves for 12 warps on one multiprocessor.
CONSUMER_REGISTERS = 232
WS_MAXNREG = 168
# Below this many (row, code) pairs in all groups the plain kernel: the warp-specialised one
# starts slower (one program a multiprocessor, 128-row tiles), which only many codebook tiles a
# program repay. Measured side by side at D = 128, K = 1,024 (graph replay, H100, 2026-11-22):
# 0.74x at 4,096 rows, 0.90x at 16,384, 0.96-0.98x at 32,768, 0.99-1.005x at 65,536 (1.04x back
# to back), 1.08x at 131,072, 1.12-1.14x at 524,288; 1.08-1.13x at (65,536, 16,384, 128),
# 1.15-1.17x at (262,144, 1,024, 8), 1.20-1.23x at (65,536, 65,536, 64) (docs/BENCHMARKS.md).
WS_MIN_PAIRS = 2**26
# Warp-specialised launches from this padded D on put the half-norms into the products
# (TileConfig.norms_in_product): the extra 16-wide k step costs 16/D of a product, the additions
# it replaces a fixed 64 a thread and tile. Side by side in one run (H100, 2026-11-23 00:42 UTC,
# scratch/ab_ship.py; graph replay, back to back where given), added -> in the product:
# (65,536, 1,024, 128) 36.5 -> 33.4 us back to back; (524,288, 1,024, 128) 249.5 -> 235.2;
# (65,536, 16,384, 128) 449.2 -> 428.9; (262,144, 1,024, 64) 92.6 -> 83.3 back to back;
# (65,536, 65,536, 64) 1,264.4 -> 1,268.1 (a tie); (262,144, 1,024, 32) 85.3 -> 74.4 back to
# back; (65,536, 16,384, 32) 305.1 -> 252.9; but (262,144, 1,024, 8) 87.8 -> 105.4 back to back,
# where D pads to 16 and the step doubles each product.
NORMS_IN_PRODUCT_MIN_D = 32


def default_config(d: int, k: int, rows: int = 2**31) -> TileConfig:
    """The fastest launch measured on an H100 for ``D``, ``K`` codes and ``rows`` rows in all
    groups (``benchmarks/nearest_code_hopper.py --persistent`` and the side-by-side runs in
    ``docs/BENCHMARKS.md``). The warp-specialised kernel needs ``D ≤ 128`` to fit four codebook
    tiles and four row buffers in shared memory, and is only chosen for codebooks of at least
    ``WS_MIN_TILES`` tiles (it would search padding tiles below that; not measured)."""
    d_pad = padded_dim(d)
    block_k = 128
    if d_pad <= 128 and rows * k >= WS_MIN_PAIRS and k > (WS_MIN_TILES - 1) * block_k:
        return TileConfig(
            2 * ROWS_PER_CONSUMER, block_k, 4, x_buffers=2, warp_specialized=True,
            norms_in_product=d_pad >= NORMS_IN_PRODUCT_MIN_D,
        )  # fmt: skip
    if d_pad <= 32:
        return TileConfig(128, 64, 3)
    if d_pad == 64:
        return TileConfig(64, 64, 2)
    if d_pad == 128:
        # A small codebook is a few tiles a row tile, so each program's start (loading its rows,
        # filling the ring) weighs: persistent programs hide it. Measured at K = 1,024 (graph
        # replay, five rounds: 50.4 us against 54.0 us); larger K keeps one program a row tile.
        if k <= 2048:
            return TileConfig(64, 128, 2, programs_per_sm=2, x_buffers=2)
        return TileConfig(64, 128, 3)
    # Loading the norms where the products add them paid only at D = 256, whose products take
    # twice as long a tile: side by side (graph replay, best of 3-4 rounds, H100, 2026-11-22)
    # 1.03-1.07x at (65,536, 16,384, 256) and 1.05-1.06x at (65,536, 262,144, 256), but
    # 0.92-0.97x at (65,536, 16,384, 128), 0.95-0.97x at (65,536, 65,536, 64) and 0.81-0.82x at
    # (262,144, 1,024, 8), where the extra loads and registers cost more than the conversion.
    return TileConfig(128, 128, 2, column_norms=True)


def searched_tiles(k: int, config: TileConfig) -> int:
    """Codebook tiles a row tile searches: those of ``K`` codes, and for the warp-specialised
    kernel at least ``WS_MIN_TILES`` (padding tiles: see ``_nearest_code_ws_kernel``)."""
    tiles = cdiv(k, config.block_k)
    return max(tiles, WS_MIN_TILES) if config.warp_specialized else tiles


def padded_dim(d: int) -> int:
    return max(16, next_power_of_2(d))


def supports(x: Tensor, codebook: Tensor) -> bool:
    """Whether :func:`nearest_code_gluon` handles these inputs: fast mode on a Hopper GPU (sm_90,
    the only architecture with ``wgmma``), ``D`` a multiple of 8 up to 256 (TMA needs 16-byte
    rows), fewer than 2³¹ rows in all (TMA coordinates are 32-bit)."""
    if not (x.is_cuda and codebook.is_cuda and x.dtype in DTYPES and codebook.dtype in DTYPES):
        return False
    d = x.shape[-1]
    rows = x.shape[:-1].numel()
    codes = codebook.shape[:-1].numel()
    return (
        _is_hopper(_device_index(x.device))
        and d % 8 == 0
        and 8 <= d <= 256
        and 0 < rows < 2**31
        and 0 < codes < 2**31
    )


# Eager calls are bound by host time below a certain size, and this kernel's launch costs more
# host time than the Triton kernel's (descriptors, float32 inputs rounded by separate kernels).
# With both launched through the launch cache (vqcodec.kernels.launch), float32 inputs, on the
# lent H100 machine (2026-11-23 01:43 UTC, benchmarks/nearest_code_host.py), microseconds an
# eager call, Triton against this kernel: 78.7 against 138.5 at (65,536, 1,024, 128), where both
# are host-bound, but 182.0 against 127.6 at (262,144, 1,024, 8), where the Triton kernel's
# per-pair work keeps the GPU busier than this kernel's launch keeps the host (02:13 UTC on
# another machine: 71.1 against 137.5, and 183.4 against 96.9). So an eager call
# comes here from 2^28 row-code pairs (N·K), or from 2^34 multiply-adds (N·K·D: the rule before
# the launch cache, measured then). Captured calls pay no host time, so they always come here.
EAGER_MIN_WORK = 2**34
EAGER_MIN_PAIRS = 2**28


def preferred(x: Tensor, codebook: Tensor) -> bool:
    """Whether this kernel should serve the call (given :func:`supports`): large problems, and
    every call captured into a CUDA graph."""
    pairs = x.shape[:-1].numel() * codebook.shape[-2]
    return (
        pairs >= EAGER_MIN_PAIRS
        or pairs * x.shape[-1] >= EAGER_MIN_WORK
        or torch.cuda.is_current_stream_capturing()
    )


def nearest_code_gluon(x: Tensor, codebook: Tensor, config: TileConfig | None = None) -> Tensor:
    """Fast-mode search; ``x [N, D]``/``[G, N, D]``, ``codebook [K, D]``/``[G, K, D]`` on a
    Hopper GPU. float32 inputs are rounded to bf16 copies first (what fast mode does to its
    operands anyway; the copies take half the inputs' memory). Returns int64 ``[N]``/``[G, N]``.
    """
    search = PreparedSearch.build(x, codebook, config)
    search.compute_half_norms()
    return search.run()


@dataclass
class PreparedSearch:
    """One search's launch, split into its two kernels so that benchmarks can time each part
    (``benchmarks/nearest_code_gap.py``): the codes' half-norms, then the search."""

    x_desc: TensorDescriptor
    c_desc: TensorDescriptor
    codebook: Tensor  # [G, K, D], bf16 or fp16
    # Filled by compute_half_norms: [G, K_PAD] float32, or with config.norms_in_product the
    # [G, K_PAD, 16] bf16 terms table (half_norm_terms) that terms_desc reads.
    code_half_norms: Tensor
    out: Tensor  # [G, N] int64
    grid: tuple[int, int]
    config: TileConfig
    batched: bool
    num_tiles: int  # codebook tiles a row tile (the warp-specialised kernel may add padding)
    # The search starts while the half-norm kernel runs (warp-specialised launches only):
    # side by side on an H100 (2026-11-22) 0.995-1.054x, most at small N.
    dependent_launch: bool = False
    terms_desc: TensorDescriptor | None = None

    @staticmethod
    def build(x: Tensor, codebook: Tensor, config: TileConfig | None = None) -> PreparedSearch:
        batched = x.dim() == 3
        xs = x if batched else x[None]
        cs = codebook if batched else codebook[None]
        dtype = fast_dtype(xs.dtype, cs.dtype)
        xs, cs = _tma_ready(xs.to(dtype)), _tma_ready(cs.to(dtype))
        groups, n, d = xs.shape
        k = cs.shape[1]
        plan = _plan(_device_index(x.device), dtype, groups, n, k, d, config)
        norms = torch.empty(plan.norms_shape, dtype=plan.norms_dtype, device=x.device)
        terms_desc = None
        if plan.terms is not None:
            terms_desc = _descriptor(norms.view(-1, TERMS_WIDTH), plan.terms)
        return PreparedSearch(
            x_desc=_descriptor(xs.view(groups * n, d), plan.x),
            c_desc=_descriptor(cs.view(groups * k, d), plan.codes),
            codebook=cs,
            code_half_norms=norms,
            out=torch.empty(groups, n, dtype=torch.int64, device=x.device),
            grid=plan.grid,
            config=plan.config,
            batched=batched,
            num_tiles=plan.num_tiles,
            dependent_launch=plan.config.warp_specialized,
            terms_desc=terms_desc,
        )

    def compute_half_norms(self) -> None:
        write = half_norm_terms if self.config.norms_in_product else half_norms
        write(
            self.codebook, fill=FAR, out=self.code_half_norms,
            launch_dependents=self.dependent_launch,
        )  # fmt: skip

    def run(self, keyed: bool = True, add_norms: bool = True) -> Tensor:
        """The search (after :meth:`compute_half_norms`). ``keyed=False`` and
        ``add_norms=False`` leave out parts of the kernel for timing (wrong indices)."""
        n = self.out.shape[1]
        k = self.codebook.shape[1]
        k_pad = self.code_half_norms.shape[1]
        # The sizes and config fix every argument's specialisation and the grid; the tensors
        # are TMA-ready (16-byte aligned) or fresh allocations.
        key = (
            self.out.device, self.codebook.dtype, self.grid, n, k, self.codebook.shape[2], k_pad,
            self.num_tiles, self.config, self.dependent_launch, keyed, add_norms,
        )  # fmt: skip
        with on_device(self.out.device):
            if self.config.warp_specialized:
                norms_in_product = self.config.norms_in_product
                _ws_launches(
                    key, self.grid, self.x_desc, self.c_desc,
                    None if norms_in_product else self.code_half_norms, self.out, n, k, k_pad,
                    self.num_tiles, 0, self.terms_desc, STAGES=self.config.stages,
                    X_BUFFERS=self.config.x_buffers, CONSUMER_REGISTERS=CONSUMER_REGISTERS,
                    DEPENDENT_LAUNCH=self.dependent_launch, KEYED=keyed, ADD_NORMS=add_norms,
                    NORMS_IN_PRODUCT=norms_in_product, num_warps=4, maxnreg=WS_MAXNREG,
                    launch_pdl=self.dependent_launch,
                )  # fmt: skip
            else:
                _plain_launches(
                    key, self.grid, self.x_desc, self.c_desc, self.code_half_norms, self.out, n,
                    k, k_pad, 0, STAGES=self.config.stages, X_BUFFERS=self.config.x_buffers,
                    COLUMN_NORMS=self.config.column_norms, num_warps=self.config.num_warps,
                    KEYED=keyed, ADD_NORMS=add_norms,
                )  # fmt: skip
        return self.out if self.batched else self.out[0]


# Eager calls repeat: launch what the first call of a shape compiled directly.
_plain_launches = LaunchCache(_nearest_code_kernel)
_ws_launches = LaunchCache(_nearest_code_ws_kernel)


@dataclass(frozen=True)
class _DescriptorShape:
    """A tensor descriptor without its tensor: ``[rows, columns]`` in ``block`` tiles."""

    shape: tuple[int, int]
    block: tuple[int, int]
    layout: gl.NVMMASharedLayout


@dataclass(frozen=True)
class _Plan:
    """What a search's launch takes from its sizes and config alone: worked out once per
    sizes (``_plan``), so that repeated eager calls spend no host time on it."""

    config: TileConfig
    num_tiles: int
    grid: tuple[int, int]
    norms_shape: tuple[int, ...]  # [G, K_PAD] float32, or [G, K_PAD, 16] bf16 terms
    norms_dtype: torch.dtype
    x: _DescriptorShape
    codes: _DescriptorShape
    terms: _DescriptorShape | None


@functools.lru_cache(maxsize=1024)
def _plan(
    device_index: int, dtype: torch.dtype, groups: int, n: int, k: int, d: int,
    config: TileConfig | None,
) -> _Plan:  # fmt: skip
    config = config or default_config(d, k, groups * n)
    d_pad = padded_dim(d)
    element = gl.float16 if dtype == torch.float16 else gl.bfloat16
    x_rows = ROWS_PER_CONSUMER if config.warp_specialized else config.block_n
    x = _descriptor_shape((groups * n, d), (x_rows, d_pad), element, dtype)
    codes = _descriptor_shape((groups * k, d), (config.block_k, d_pad), element, dtype)
    num_tiles = searched_tiles(k, config)
    # One spare tile of padding: the half-norms are loaded a tile ahead, one past the last.
    k_pad = (num_tiles + 1) * config.block_k
    programs = row_tiles = cdiv(n, config.block_n)
    per_sm = 1 if config.warp_specialized else config.programs_per_sm
    if per_sm:
        programs = min(row_tiles, cdiv(per_sm * _multiprocessor_count(device_index), groups))
    terms = None
    norms_shape: tuple[int, ...] = (groups, k_pad)
    norms_dtype = torch.float32
    if config.norms_in_product:
        terms = _descriptor_shape(
            (groups * k_pad, TERMS_WIDTH), (config.block_k, TERMS_WIDTH), gl.bfloat16,
            torch.bfloat16,
        )  # fmt: skip
        norms_shape, norms_dtype = (groups, k_pad, TERMS_WIDTH), torch.bfloat16
    return _Plan(config, num_tiles, (programs, groups), norms_shape, norms_dtype, x, codes, terms)


def _descriptor_shape(
    shape: tuple[int, int], block: tuple[int, int], element: gl.dtype, dtype: torch.dtype
) -> _DescriptorShape:
    """Checked once by TensorDescriptor itself (shapes, block, strides, layout; its tensor's
    alignment is checked per call by ``_tma_ready``)."""
    layout = _layout(*block, element)
    TensorDescriptor(torch.empty(0, dtype=dtype), [*shape], [shape[1], 1], [*block], layout)
    return _DescriptorShape(shape, block, layout)


def _descriptor(t: Tensor, shape: _DescriptorShape) -> TensorDescriptor:
    """A descriptor of ``t`` (contiguous, 16-byte aligned, of ``shape.shape``) without
    TensorDescriptor's checks, which ``_descriptor_shape`` ran for these sizes: they cost a few
    microseconds of host time a descriptor, three a call."""
    descriptor = object.__new__(TensorDescriptor)
    descriptor.base = t
    descriptor.shape = [*shape.shape]
    descriptor.strides = [shape.shape[1], 1]
    descriptor.block_shape = [*shape.block]
    descriptor.layout = shape.layout
    descriptor.padding = "zero"
    return descriptor


@functools.cache
def _is_hopper(device_index: int) -> bool:
    return torch.cuda.get_device_capability(device_index) == (9, 0)


def _device_index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()


@functools.cache
def _multiprocessor_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


@functools.cache
def _layout(rows: int, columns: int, element: gl.dtype) -> gl.NVMMASharedLayout:
    return gl.NVMMASharedLayout.get_default_for([rows, columns], element)


def _tma_ready(t: Tensor) -> Tensor:
    """Contiguous, starting on a 16-byte boundary (a view into a larger tensor may not)."""
    t = t.contiguous()
    return t if t.data_ptr() % 16 == 0 else t.clone()
