"""Exact mode from fp16 products: every code that could be nearest is re-checked in float64.

The tf32x3 kernel recovers float32 products with three TF32 products a tile (4–10× a fast
search). This module gets a stronger answer (the nearest code in float64 arithmetic) from fp16
products and a proven bound on their error, in one pass over the codebook:

1. Both sides move by ``μ``, the group's mean code (``codebook_centres``; distances do not
   change), and are scaled by ``σ`` (``power_of_two_scale``), the power of two that puts the
   largest ``|v − μ|`` in ``[2¹⁴, 2¹⁵)``. Products use ``σ·(x − μ)`` and ``σ·(c − μ)`` rounded
   to fp16 (11 significant bits against bf16's 8: an eight times tighter bound, so far fewer
   candidates; centring makes the bound follow the data's spread, not its distance from the
   origin). The codes are converted in slices (``per_slice``) whose fp16 copy takes at most
   ``SLICE_BYTES``, so the extra memory stays bounded whatever ``K``; rows of up to 256
   features are converted on chip once a program, wider ones (streamed along ``D``) in slices
   of at most ``ROW_SLICE_BYTES``.
2. ``_candidates_kernel`` streams a slice with fp16 tensor-core products and keeps, per row,
   the best fp16 score so far ``m``. Every nearest code ``c*`` has ``s̃(c*) ≥ m − 2·e_max``
   (``s̃`` the fp16 score, ``s`` the exact one, ``e`` the bound below, ``e_max`` its value at
   the group's largest centred code norm: for the code ``b`` that scored ``m``, ``s̃(c*) ≥
   s(c*) − e ≥ s(b) − e ≥ s̃(b) − 2e``). So the test ``s̃(c) ≥ m − 2·e_max`` keeps every
   nearest code, with ``m`` the running maximum (never more than the final one). A row keeps
   what passes in up to ``SLOTS`` entries, one a tile with passing codes: enough to name one
   or two of them, or, when three or more pass (rare), the whole tile; when ``m`` rises past
   the old ``m`` plus ``2·e_max``, every earlier entry (scoring at most the old ``m``) fails
   the test and the row starts again. The test needs no exchange between a program's rows, so
   tiles stream without waits; the rows' state carries across slices.
3. ``_recheck_kernel`` re-scores each row's entries in float64 and writes the best, the lowest
   index on ties. Naming two codes matters: a program's rows wait for its slowest one, and a
   whole tile is scored one code after another.
4. Rows with more than ``SLOTS`` entries (many near-equal codes) or a non-finite bound go on a
   list; ``_fallback_kernel`` searches them with tf32x3 (nearest up to float32 rounding) over
   codebook slices in parallel and merges the slices' winners with 64-bit atomic maxima, which
   ``_unpack_kernel`` turns back into indices. No step waits on the host, so exact searches can
   be captured in CUDA graphs.

**The bound** (``error_factors``; ``x`` and ``c`` stand for the centred, scaled operands, whose
rounding to float32 before the rounding to fp16 adds at most ``2⁻²⁴`` of a value, inside the
margin on ``2u``). Rounding to fp16 to nearest errs by at most ``u = 2⁻¹¹`` of a value, or
``2⁻¹⁴`` absolute below fp16's normal range (flushed or not), so ``Σ|x̃ᵢc̃ᵢ − xᵢcᵢ| ≤ (2u +
u²)·‖x‖·‖c‖ + 2⁻¹⁴·(1 + u)·√D·(‖x‖ + ‖c‖) + D·2⁻²⁸`` (Cauchy–Schwarz). Products of fp16 values
are exact in float32; their float32 sum is taken to err by at most ``D·2⁻²¹`` of
``Σ|x̃ᵢc̃ᵢ|``, four times the bound for sums that truncate every addition, as a margin for how
tensor cores align and add. The half-norms are float32 sums of squares of the centred, scaled
codes (``centred_half_norms``). The subtraction, the test's own additions, the square roots and
the threshold's rounding to float32 each err by a few units of float32 rounding of ``‖x‖·‖c‖ +
‖c‖²/2``, covered by ``2⁻²⁰`` added to both factors. Exactness rests on this bound (nothing
checks it at run time); ``test_certified_gpu.py`` measures it against cuBLAS's fp16 products.
Memory: the fp16 slices (at most ``SLICE_BYTES`` of codes and ``ROW_SLICE_BYTES`` of rows),
a row's best score, ``SLOTS`` int64 entries and a list entry, a code's half-norm: O(N + K),
never O(N·K).
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl
from torch import Tensor

from vqcodec.kernels import triton_nearest_code as fused
from vqcodec.kernels.launch import LaunchCache, cdiv, next_power_of_2, on_device

# Entries kept a row (the bound is about 2⁻¹⁰·‖x − μ‖·‖c − μ‖); rows with more go to the tf32x3
# fallback. On the random inputs measured (docs/BENCHMARKS.md) no row had more.
SLOTS = 16
# Columns a step of the rows' float64 norms in the candidates pass.
CHECK_D = 32
# The fallback's tiles: one of the tf32x3 kernel's configs.
FALLBACK_BLOCK_N, FALLBACK_BLOCK_K, FALLBACK_WARPS, FALLBACK_STAGES = 64, 64, 4, 3
# Codes per fallback program at least: a slice worth a launch.
FALLBACK_MIN_SLICE = 2048


@triton.jit
def _exact_scores(x_ptr, codebook_ptr, rows, row_ok, code, D, CHECK_D: tl.constexpr):
    """``x·c − ‖c‖²/2`` in float64 for each row and its ``code`` (``[BLOCK_N]`` each). The
    products of float32 (or half) values are exact in float64."""
    cols = tl.arange(0, CHECK_D)
    score = tl.zeros((rows.shape[0],), tl.float64)
    for d0 in range(0, D, CHECK_D):
        d = d0 + cols
        ok = row_ok[:, None] & (d[None, :] < D)
        xv = tl.load(x_ptr + rows[:, None].to(tl.int64) * D + d[None, :], mask=ok, other=0.0)
        cv = tl.load(codebook_ptr + code[:, None].to(tl.int64) * D + d[None, :], mask=ok, other=0.0)
        xv = xv.to(tl.float64)
        cv = cv.to(tl.float64)
        score += tl.sum(xv * cv - 0.5 * (cv * cv), axis=1)
    return score


@triton.jit
def _centred_norms(x_ptr, centre_ptr, rows, row_ok, D, CHECK_D: tl.constexpr):
    """``‖x − μ‖`` in float64 for each row (``[BLOCK_N]``)."""
    cols = tl.arange(0, CHECK_D)
    norm = tl.zeros((rows.shape[0],), tl.float64)
    for d0 in range(0, D, CHECK_D):
        d = d0 + cols
        ok = row_ok[:, None] & (d[None, :] < D)
        xv = tl.load(x_ptr + rows[:, None].to(tl.int64) * D + d[None, :], mask=ok, other=0.0)
        centre = tl.load(centre_ptr + d, mask=d < D, other=0.0)
        xv = tl.where(ok, xv.to(tl.float64) - centre.to(tl.float64)[None, :], 0.0)
        norm += tl.sum(xv * xv, axis=1)
    return tl.sqrt(norm)


@triton.jit
def _abs_max_kernel(
    x_ptr, x_size, x_group_size, codebook_ptr, codebook_size, codebook_group_size, x_blocks,
    centre_ptr, D, max_ptr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Grid ``(x_blocks + codebook blocks,)``: ``max |v − μ|`` over both tensors (flat, groups
    of ``*_group_size`` elements, ``μ`` the group's ``[D]`` centre) into ``max_ptr`` (float32,
    zeroed before)."""
    pid = tl.program_id(0)
    if pid < x_blocks:
        i = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        ok = i < x_size
        v = tl.load(x_ptr + i, mask=ok, other=0.0).to(tl.float32)
        group = i // x_group_size
    else:
        i = (pid - x_blocks).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        ok = i < codebook_size
        v = tl.load(codebook_ptr + i, mask=ok, other=0.0).to(tl.float32)
        group = i // codebook_group_size
    centre = tl.load(centre_ptr + group * D + i % D, mask=ok, other=0.0)
    tl.atomic_max(max_ptr, tl.max(tl.where(ok, tl.abs(v - centre), 0.0)))


@triton.jit
def _column_sums_kernel(
    codebook_ptr, out_ptr, K, D, PER_PROGRAM: tl.constexpr, BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
):  # fmt: skip
    """Grid ``(P, G)``: ``out[g, p]`` (float32 ``[BLOCK_D]``, ``[G, P, BLOCK_D]``) is the sum of
    codes ``[p·PER_PROGRAM, (p + 1)·PER_PROGRAM)`` of group ``g``."""
    group = tl.program_id(1).to(tl.int64)
    part = tl.program_id(0)
    codebook_ptr += group * K * D
    d = tl.arange(0, BLOCK_D)
    total = tl.zeros((BLOCK_D,), tl.float32)
    for k0 in range(0, PER_PROGRAM, BLOCK_K):
        codes = part * PER_PROGRAM + k0 + tl.arange(0, BLOCK_K)
        ok = (codes[:, None] < K) & (d[None, :] < D)
        c = tl.load(codebook_ptr + codes[:, None].to(tl.int64) * D + d[None, :], mask=ok)
        total += tl.sum(tl.where(ok, c.to(tl.float32), 0.0), axis=0)
    tl.store(out_ptr + (group * tl.num_programs(0) + part) * BLOCK_D + d, total)


@triton.jit
def _centred_half_norm_kernel(
    codebook_ptr, centre_ptr, scale_ptr, out_ptr, K, D, BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
):  # fmt: skip
    """Grid ``(cdiv(K, BLOCK_K), G)``: ``0.5·‖σ·(c − μ)‖²`` per code in float32, ``out [G, K]``
    (scaled, so that neither tiny nor huge inputs underflow or overflow)."""
    group = tl.program_id(1).to(tl.int64)
    codebook_ptr += group * K * D
    centre_ptr += group * D
    scale = tl.load(scale_ptr)
    codes = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
    total = tl.zeros((BLOCK_K,), tl.float32)
    for d0 in range(0, D, BLOCK_D):
        d = d0 + tl.arange(0, BLOCK_D)
        ok = (codes[:, None] < K) & (d[None, :] < D)
        c = tl.load(codebook_ptr + codes[:, None].to(tl.int64) * D + d[None, :], mask=ok)
        centre = tl.load(centre_ptr + d, mask=d < D, other=0.0)
        c = tl.where(ok, (c.to(tl.float32) - centre[None, :]) * scale, 0.0)
        total += tl.sum(c * c, axis=1)
    tl.store(out_ptr + group * K + codes, 0.5 * total, mask=codes < K)


@triton.jit
def _scale_kernel(max_ptr, scale_ptr):
    """Grid ``(1,)``: ``σ``, the power of two that puts the largest magnitude ``max_ptr`` holds
    in ``[2¹⁴, 2¹⁵)`` (clamped to ``[2⁻¹¹³, 2¹²⁶]``), into ``scale_ptr``. Multiplying by ``σ``
    is exact; rounding the product to fp16 errs by at most ``2⁻¹¹`` of it, or ``2⁻¹⁴``
    absolute (below fp16's normal range)."""
    largest = tl.load(max_ptr)
    exponent = ((largest.to(tl.int32, bitcast=True) >> 23) & 0xFF) - 127  # floor(log2), > -127
    exponent = tl.minimum(tl.maximum(exponent, -112), 127)
    tl.store(scale_ptr, ((14 - exponent + 127) << 23).to(tl.float32, bitcast=True))


@triton.jit
def _scaled_slice_kernel(
    src_ptr, dst_ptr, centre_ptr, scale_ptr, M, D, begin, end, PER_SLICE, BLOCK: tl.constexpr
):
    """Grid ``(cdiv((end − begin)·D, BLOCK), G)``: vectors ``[begin, end)`` of each group of
    ``src [G, M, D]`` as ``fp16(σ·(v − μ))`` into ``dst [G, PER_SLICE, D]`` (flat)."""
    group = tl.program_id(1).to(tl.int64)
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = i < (end - begin) * D
    v = tl.load(src_ptr + group * M * D + begin * D + i, mask=ok, other=0.0)
    centre = tl.load(centre_ptr + group * D + i % D, mask=ok, other=0.0)
    v = ((v.to(tl.float32) - centre) * tl.load(scale_ptr)).to(tl.float16)
    tl.store(dst_ptr + group * PER_SLICE * D + i, v, mask=ok)


@triton.jit
def _candidates_kernel(
    x_ptr,
    rows_ptr,
    codes_ptr,
    half_norm_ptr,
    max_half_norm_ptr,
    centre_ptr,
    scale_ptr,
    top_ptr,
    count_ptr,
    candidates_ptr,
    N,
    K,
    row_begin,
    row_end,
    k_begin,
    k_end,
    D,
    stride_xg,
    stride_rg,
    stride_sg,
    beta,
    gamma,
    tiny,
    N_BUCKET,
    K_BUCKET,  # autotuning keys only: sizes rounded to powers of two
    D_CHUNK: tl.constexpr,
    NUM_D_CHUNKS: tl.constexpr,
    SLOTS: tl.constexpr,
    CHECK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """Grid ``(cdiv(row_end − row_begin, BLOCK_N), G)``: codes ``[k_begin, k_end)``
    (``codes_ptr``: their centred, scaled fp16 copy, ``[G, ·, D]``) tested against rows
    ``[row_begin, row_end)``, continuing the rows' state (best fp16 score ``top``, entries
    ``count``, ``candidates``) from earlier slices. Rows stay on chip (``NUM_D_CHUNKS == 1``),
    converted here, or stream along ``D`` from ``rows_ptr``, their centred, scaled fp16 copy
    (``[G, ·, D]``, from ``row_begin``). Scores are of the centred, scaled operands; see the
    module docstring."""
    pid_n = tl.program_id(0)
    group = tl.program_id(1).to(tl.int64)
    x_ptr += group * stride_xg
    rows_ptr += group * stride_rg
    codes_ptr += group * stride_sg
    half_norm_ptr += group * K + k_begin
    max_half_norm_ptr += group
    centre_ptr += group * D
    top_ptr += group * N
    count_ptr += group * N
    candidates_ptr += group * N * SLOTS

    rows = row_begin + pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < row_end
    cols = tl.arange(0, D_CHUNK)
    ks = tl.arange(0, BLOCK_K)
    scale = tl.load(scale_ptr)

    # e_max, the error bound of any code of the group for these rows (the norms rounded up).
    x_norm = _centred_norms(x_ptr, centre_ptr, rows, row_ok, D, CHECK_D) * scale.to(tl.float64)
    x_norm = x_norm.to(tl.float32) * 1.000001
    max_half = tl.load(max_half_norm_ptr)
    max_norm = tl.sqrt(2.0 * max_half)
    slack = x_norm * (beta * max_norm + tiny) + (gamma * max_half + tiny * (1.0 + max_norm))

    if NUM_D_CHUNKS == 1:  # the row tile as an fp16 operand, σ·(x − μ), on chip for the slice
        ok = row_ok[:, None] & (cols[None, :] < D)
        x = tl.load(x_ptr + rows[:, None].to(tl.int64) * D + cols[None, :], mask=ok, other=0.0)
        centre = tl.load(centre_ptr + cols, mask=cols < D, other=0.0)
        x = (tl.where(ok, x.to(tl.float32) - centre[None, :], 0.0) * scale).to(tl.float16)
    else:
        x = 0
    top = tl.load(top_ptr + rows, mask=row_ok, other=float("-inf"))
    count = tl.load(count_ptr + rows, mask=row_ok, other=0)
    # Each hit adds (1 << 24) + (column << 15) + column² to its row's tally: the count of hits
    # and, without overflow when there are two or fewer (columns < 128), their columns' sum
    # and sum of squares (_hit_codes). First codes of tiles are multiples of 64 (slices start
    # at multiples of SLICE_ALIGN), so an entry's low six bits hold the tile's width / 64.
    tl.static_assert(BLOCK_K <= 128)
    hit_keys = (1 << 24) + (ks << 15) + ks * ks
    for k0 in range(0, k_end - k_begin, BLOCK_K):
        codes = k0 + ks
        code_ok = codes < k_end - k_begin
        product = fused.products(
            x, rows_ptr, codes_ptr, rows - row_begin, row_ok, codes, code_ok, cols, D, D_CHUNK,
            NUM_D_CHUNKS, False,
        )  # fmt: skip
        half_norm = tl.load(half_norm_ptr + codes, mask=code_ok, other=float("inf"))
        score = product - half_norm
        new_top = tl.maximum(top, tl.max(score, axis=1))
        # Every nearest code scores at least new_top − 2·e_max; rounded down, the test keeps it.
        passing = new_top - 2.0 * slack
        passing = passing - tl.abs(passing) * 2.3841858e-07  # 2⁻²² of it
        # The entries so far hold codes scoring at most top: none of them passes any more.
        count = tl.where(passing > top, 0, count)
        top = new_top
        # A tile with hits is one entry: its first code and width, and one sum over its hits
        # (see hit_keys) from which the re-check finds them. No test spans the program's rows,
        # so no wait between tiles.
        hit = score >= passing[:, None]
        tally = tl.sum(tl.where(hit, hit_keys[None, :], 0), axis=1)
        entry = ((tally.to(tl.int64) & 0xFFFFFFFF) << 32) + (k_begin + k0 + BLOCK_K // 64)
        hits = (tally >> 24) & 255
        where = candidates_ptr + rows.to(tl.int64) * SLOTS + count
        tl.store(where, entry, mask=row_ok & (hits > 0) & (count < SLOTS))
        count += tl.where(hits > 0, 1, 0)

    tl.store(top_ptr + rows, top, mask=row_ok)
    # A non-finite bound (non-finite inputs) leaves the row to the fallback.
    tl.store(count_ptr + rows, tl.where(slack < float("inf"), count, SLOTS + 1), mask=row_ok)


@triton.jit
def _hit_codes(entry):
    """A candidates entry (int64 ``[BLOCK_N]``) decoded: the tile's first code, the number of
    codes to re-score (one or two hits: those; more, rare: the whole tile) and, for two hits,
    the lower and the upper hit code (for one, the upper is the hit). Two hit columns ``a <
    b`` follow from their sum ``S`` and sum of squares ``Q`` as ``(S ∓ √(2Q − S²)) / 2``."""
    tally = ((entry >> 32) & 0xFFFFFFFF).to(tl.int32)
    hits = (tally >> 24) & 255
    column_sum = (tally >> 15) & 511
    squares = tally & 32767
    start = (entry & 0xFFFFFFFF).to(tl.int32)
    first = start & ~63
    width = tl.where(hits <= 2, hits, (start & 63) * 64)
    apart = tl.sqrt(tl.maximum(2 * squares - column_sum * column_sum, 0).to(tl.float32))
    lower = (column_sum - (apart + 0.5).to(tl.int32)) >> 1  # rounded: tl.sqrt approximates
    return first, width, first + lower, first + column_sum - lower


@triton.jit
def _recheck_kernel(
    x_ptr,
    codebook_ptr,
    count_ptr,
    candidates_ptr,
    needy_ptr,
    num_needy_ptr,
    out_ptr,
    N,
    K,
    D,
    stride_xg,
    stride_cg,
    SLOTS: tl.constexpr,
    CHECK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """Grid ``(cdiv(N, BLOCK_N), G)``: each row's entries re-scored in float64, the best (the
    lowest index on ties) written to ``out``; rows with no entries or more than ``SLOTS`` are
    listed for the fallback instead."""
    pid_n = tl.program_id(0)
    group = tl.program_id(1).to(tl.int64)
    x_ptr += group * stride_xg
    codebook_ptr += group * stride_cg
    count_ptr += group * N
    candidates_ptr += group * N * SLOTS
    needy_ptr += group * N
    out_ptr += group * N

    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    count = tl.load(count_ptr + rows, mask=row_ok, other=0)
    resolved = row_ok & (count > 0) & (count <= SLOTS)
    kept = tl.where(resolved, count, 0)
    best = tl.full((BLOCK_N,), float("-inf"), tl.float64)
    best_index = tl.zeros((BLOCK_N,), tl.int32) + K
    for j in range(0, tl.max(kept, axis=0)):
        valid = j < kept
        entry = tl.load(candidates_ptr + rows.to(tl.int64) * SLOTS + j, mask=valid, other=0)
        first, width, lower, upper = _hit_codes(entry)
        for t in range(0, tl.max(tl.where(valid, width, 0), axis=0)):
            code = tl.where(width <= 2, tl.where(t == width - 1, upper, lower), first + t)
            ok = valid & (t < width) & (code < K)
            score = _exact_scores(x_ptr, codebook_ptr, rows, ok, code, D, CHECK_D)
            better = ok & ((score > best) | ((score == best) & (code < best_index)))
            best = tl.where(better, score, best)
            best_index = tl.where(better, code, best_index)
    tl.store(out_ptr + rows, best_index.to(tl.int64), mask=resolved)

    # Unsettled rows: listed for the fallback, their outputs set to the smallest packed value
    # for its atomic maxima.
    needy = row_ok & ~resolved
    num = tl.sum(needy.to(tl.int32), axis=0)
    if num > 0:
        start = tl.atomic_add(num_needy_ptr + group, num)
        where = start + tl.cumsum(needy.to(tl.int32), axis=0) - 1
        tl.store(needy_ptr + where, rows, mask=needy)
        tl.store(out_ptr + rows, tl.full((BLOCK_N,), -(2**63), tl.int64), mask=needy)


@triton.jit
def _packed(score, index):
    """``(score, −index)`` as one int64 whose order is theirs: the float32 score's bits made
    order-preserving in the high half, ``2³² − 1 − index`` in the low half."""
    bits = (score + 0.0).to(tl.int32, bitcast=True)  # + 0.0: −0.0 becomes +0.0
    key = tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return (key.to(tl.int64) << 32) + (4294967295 - index.to(tl.int64))


@triton.jit
def _fallback_kernel(
    x_ptr,
    codebook_ptr,
    half_norm_ptr,
    needy_ptr,
    num_needy_ptr,
    out_ptr,
    N,
    K,
    D,
    stride_xg,
    stride_cg,
    SLICE,
    WORKERS,
    D_CHUNK: tl.constexpr,
    NUM_D_CHUNKS: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """Grid ``(WORKERS, G, slices)``: worker ``w`` searches listed rows ``w·BLOCK_N, (w +
    WORKERS)·BLOCK_N, …`` over codes ``[s·SLICE, (s + 1)·SLICE)`` with tf32x3 products."""
    worker = tl.program_id(0)
    group = tl.program_id(1).to(tl.int64)
    k_begin = tl.program_id(2) * SLICE
    x_ptr += group * stride_xg
    codebook_ptr += group * stride_cg
    half_norm_ptr += group * K
    needy_ptr += group * N
    out_ptr += group * N
    num = tl.load(num_needy_ptr + group)
    cols = tl.arange(0, D_CHUNK)
    for start in range(worker * BLOCK_N, num, WORKERS * BLOCK_N):
        listed = start + tl.arange(0, BLOCK_N)
        listed_ok = listed < num
        rows = tl.load(needy_ptr + listed, mask=listed_ok, other=0)
        x = fused.resident_rows(x_ptr, rows, listed_ok, cols, D, NUM_D_CHUNKS, True)
        best, best_index = fused.best_codes(
            x, x_ptr, codebook_ptr, half_norm_ptr, rows, listed_ok, cols, D, k_begin,
            k_begin + SLICE, K, BLOCK_K, D_CHUNK, NUM_D_CHUNKS, True,
        )  # fmt: skip
        tl.atomic_max(out_ptr + rows, _packed(best, best_index), mask=listed_ok)


@triton.jit
def _unpack_kernel(needy_ptr, num_needy_ptr, out_ptr, N, WORKERS, BLOCK: tl.constexpr):
    """Grid ``(WORKERS, G)``: the listed rows' packed winners back to indices."""
    group = tl.program_id(1).to(tl.int64)
    needy_ptr += group * N
    out_ptr += group * N
    num = tl.load(num_needy_ptr + group)
    for start in range(tl.program_id(0) * BLOCK, num, WORKERS * BLOCK):
        listed = start + tl.arange(0, BLOCK)
        listed_ok = listed < num
        rows = tl.load(needy_ptr + listed, mask=listed_ok, other=0)
        packed = tl.load(out_ptr + rows, mask=listed_ok, other=0)
        tl.store(out_ptr + rows, 4294967295 - (packed & 4294967295), mask=listed_ok)


# Five of the fast kernel's tile shapes: the candidate tests add registers, and each config is
# compiled for every dtype pair it meets.
CANDIDATE_CONFIGS = [
    triton.Config({"BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=stages)
    for bn, bk, w, stages in [
        (128, 64, 8, 3),
        (128, 128, 8, 3),
        (64, 64, 4, 3),
        (256, 64, 8, 3),
        (256, 128, 8, 2),
    ]
]
_candidates = triton.autotune(
    configs=CANDIDATE_CONFIGS,
    key=["N_BUCKET", "K_BUCKET", "D_CHUNK", "NUM_D_CHUNKS"],
    prune_configs_by={"early_config_prune": fused._prune},
    # Tuning runs the kernel repeatedly; each run must start from the rows' state.
    restore_value=["top_ptr", "count_ptr"],
)(_candidates_kernel)
_abs_max_launches = LaunchCache(_abs_max_kernel)
_scale_launches = LaunchCache(_scale_kernel)
_scaled_slice_launches = LaunchCache(_scaled_slice_kernel)
_column_sums_launches = LaunchCache(_column_sums_kernel)
_centred_half_norm_launches = LaunchCache(_centred_half_norm_kernel)
_candidate_launches = LaunchCache(_candidates)
_recheck_launches = LaunchCache(_recheck_kernel)
_fallback_launches = LaunchCache(_fallback_kernel)
_unpack_launches = LaunchCache(_unpack_kernel)

# fp16's unit roundoff (round to nearest), and the largest error of an fp16 operand below its
# normal range, flushed to zero or not, in the scaled units.
UNIT_ROUNDOFF = 2.0**-11
FLUSH = 2.0**-14
COPY_BLOCK = 4096
# The codebook is tested in slices whose scaled fp16 copy takes at most SLICE_BYTES (so the
# copy is bounded whatever K, and stays in L2 while the rows stream past it); slices start at
# multiples of SLICE_ALIGN codes (of every config's BLOCK_K, and of 64 for tile entries).
SLICE_BYTES = 1 << 24
# Rows wider than 256 are copied in slices of at most ROW_SLICE_BYTES. Each slice is a launch
# over every code: in 16 MiB slices, 65,536 rows of 512 features were four launches of 128
# programs; one 64 MiB slice made the search 1.16x faster (1.46x at D = 1,024, two slices;
# H100, benchmarks/results/nearest_code_h100_2026-11-23_copies.txt, part 9).
ROW_SLICE_BYTES = 1 << 26
SLICE_ALIGN = 256
# The float64 re-check's tile: few rows (a program's rows wait for the one with the most
# entries) and 128 columns a step (fewer dependent load steps a code). Side by side on an H100
# (benchmarks/results/nearest_code_h100_2026-11-23_copies.txt): 16 rows against 64 rows and 32
# columns, 1.60x faster searches at (65,536, 4,096, 512), 1.87x at D = 1,024, 1.00-1.02x at
# D <= 256 (part 5); 8 rows and 2 warps against 16 and 4, 1.11x at D = 1,024, 1.00x on the five
# other shapes (part 9), though 0.98x at (65,536, 4,096, 128) in the next run (part 10).
RECHECK_BLOCK_N, RECHECK_D, RECHECK_WARPS = 8, 128, 2
CENTRE_PART = 128  # codes a program sums for the centres (enough programs to fill the GPU)


def error_factors(d: int) -> tuple[float, float, float]:
    """``(β, γ, tiny)`` of the bound ``β·‖x‖·‖c‖ + γ·‖c‖²/2 + tiny·(‖x‖ + ‖c‖ + 1)`` on the error
    of an fp16 score in ``d`` dimensions, in the scaled copies' units; see the module docstring.
    """
    u = UNIT_ROUNDOFF
    accumulation = d * 2.0**-21  # 4× the bound for float32 sums that truncate every addition
    beta = (2 * u + u * u) * (1 + 2.0**-10) + accumulation + 2.0**-20
    gamma = accumulation + 2.0**-20
    tiny = max(2 * FLUSH * (1 + u) * d**0.5 * 1.01, 2 * d * FLUSH * FLUSH, d * 2.0**-100)
    return beta, gamma, tiny


def codebook_centres(codebook: Tensor) -> Tensor:
    """``μ``: each group's mean code in float32, ``[G, D]`` for contiguous ``codebook [G, K, D]``
    (``D ≤ 256``). Distances do not change when both sides move by ``μ``; the fp16 error bound,
    proportional to the operands' norms, shrinks to the spread of the data about it. Summed in
    parts, then the parts by torch: deterministic, and without torch's column reduction of the
    whole codebook, which takes memory twice the codebook's size."""
    groups, k, d = codebook.shape
    block_d = max(16, next_power_of_2(d))
    parts = cdiv(k, CENTRE_PART)
    partial = torch.empty(groups, parts, block_d, dtype=torch.float32, device=codebook.device)
    key = (codebook.device, codebook.dtype, groups, k, d, codebook.data_ptr() % 16 == 0)
    with on_device(codebook.device):
        _column_sums_launches(
            key, (parts, groups), codebook, partial, k, d,
            PER_PROGRAM=CENTRE_PART, BLOCK_K=min(CENTRE_PART, 8192 // block_d), BLOCK_D=block_d,
        )  # fmt: skip
    return partial[:, :, :d].sum(dim=1) / k


def power_of_two_scale(x: Tensor, codebook: Tensor, centre: Tensor) -> Tensor:
    """``σ`` (float32 ``[1]``, on the inputs' device) for contiguous ``x [G, N, D]``, ``codebook
    [G, K, D]`` and ``centre [G, D]`` (float32): the power of two that puts the largest
    ``|v − μ|`` of both in ``[2¹⁴, 2¹⁵)``. Two launches, no wait on the host."""
    device = x.device
    groups, n, d = x.shape
    k = codebook.shape[1]
    largest = torch.zeros(1, dtype=torch.float32, device=device)
    scale = torch.empty(1, dtype=torch.float32, device=device)
    x_blocks = cdiv(x.numel(), COPY_BLOCK)
    grid = (x_blocks + cdiv(codebook.numel(), COPY_BLOCK),)
    key = (device, x.dtype, codebook.dtype, groups, n, k, d)
    with on_device(device):
        _abs_max_launches(
            key, grid, x, x.numel(), n * d, codebook, codebook.numel(), k * d, x_blocks, centre,
            d, largest, BLOCK=COPY_BLOCK,
        )  # fmt: skip
        _scale_launches(device, (1,), largest, scale)
    return scale


def centred_half_norms(codebook: Tensor, centre: Tensor, scale: Tensor) -> Tensor:
    """``0.5·‖σ·(c − μ)‖²`` in float32, ``[G, K]``, for contiguous ``codebook [G, K, D]``,
    ``centre [G, D]`` and ``scale`` (``σ``, float32 ``[1]``)."""
    groups, k, d = codebook.shape
    out = torch.empty(groups, k, dtype=torch.float32, device=codebook.device)
    block_k, block_d = 16, min(max(16, next_power_of_2(d)), 512)
    key = (codebook.device, codebook.dtype, groups, k, d, codebook.data_ptr() % 16 == 0)
    with on_device(codebook.device):
        _centred_half_norm_launches(
            key, (cdiv(k, block_k), groups), codebook, centre, scale, out, k, d,
            BLOCK_K=block_k, BLOCK_D=block_d,
        )  # fmt: skip
    return out


def per_slice(groups: int, m: int, d: int, budget: int) -> int:
    """Vectors (codes, or rows when they stream along ``D``) a slice of ``m`` takes, per group:
    all of them when their fp16 copy fits in ``budget`` bytes, else as many as make equal
    slices that fit, a multiple of ``SLICE_ALIGN`` (the last slice may be a little shorter)."""
    fitting = max(SLICE_ALIGN, budget // (2 * d * groups) // SLICE_ALIGN * SLICE_ALIGN)
    if m <= fitting:
        return m
    # Equal slices: a short last row slice is a launch of a few programs over every code, with
    # most of the GPU idle (65,536 rows of 384 features were 3 x 21,760 rows and then 256; with
    # the re-check's new tile, 1.66x faster there: nearest_code_h100_2026-11-23_copies.txt, part 6).
    slices = cdiv(m, fitting)
    return cdiv(cdiv(m, slices), SLICE_ALIGN) * SLICE_ALIGN


def nearest_code_certified(x: Tensor, codebook: Tensor) -> Tensor:
    """Exact search; ``x [N, D]``/``[G, N, D]``, ``codebook [K, D]``/``[G, K, D]`` on CUDA.

    Returns int64 indices ``[N]`` (or ``[G, N]``) of the nearest codes in float64 arithmetic,
    ties to the lowest index (rows the fallback settles: nearest up to float32 rounding).
    """
    batched = x.dim() == 3
    xs = (x if batched else x[None]).contiguous()
    cs = (codebook if batched else codebook[None]).contiguous()
    groups, n, d = xs.shape
    k = cs.shape[1]
    device = x.device
    centre = codebook_centres(cs)
    scale = power_of_two_scale(xs, cs, centre)
    centred_half_norm = centred_half_norms(cs, centre, scale)
    max_half_norm = centred_half_norm.amax(dim=1)
    top = torch.full((groups, n), float("-inf"), dtype=torch.float32, device=device)
    count = torch.zeros(groups, n, dtype=torch.int32, device=device)
    candidates = torch.empty(groups, n, SLOTS, dtype=torch.int64, device=device)
    codes_per_slice = per_slice(groups, k, d, SLICE_BYTES)
    codes = torch.empty(groups, codes_per_slice, d, dtype=torch.float16, device=device)
    # Rows too wide to stay on chip stream along D from a scaled fp16 copy, made in slices.
    chunks = fused.row_chunks(d, fast=True)
    streamed = chunks["NUM_D_CHUNKS"] > 1
    rows_per_slice = per_slice(groups, n, d, ROW_SLICE_BYTES) if streamed else n
    rows = xs  # not read unless streamed
    if streamed:
        rows = torch.empty(groups, rows_per_slice, d, dtype=torch.float16, device=device)
    beta, gamma, tiny = error_factors(d)
    key = (
        device, xs.dtype, cs.dtype, groups, n, k, d,
        xs.data_ptr() % 16 == 0, cs.data_ptr() % 16 == 0,
    )  # fmt: skip
    with on_device(device):
        for row_begin in range(0, n, rows_per_slice):
            row_end = min(row_begin + rows_per_slice, n)
            if streamed:
                _scaled_slice_launches(
                    (*key, "rows", rows_per_slice, row_begin, row_end),
                    (cdiv((row_end - row_begin) * d, COPY_BLOCK), groups),
                    xs, rows, centre, scale, n, d, row_begin, row_end, rows_per_slice,
                    BLOCK=COPY_BLOCK,
                )  # fmt: skip
            for k_begin in range(0, k, codes_per_slice):
                k_end = min(k_begin + codes_per_slice, k)
                rows_key = (rows_per_slice, row_begin, row_end)
                slice_key = (*key, *rows_key, codes_per_slice, k_begin, k_end)
                _scaled_slice_launches(
                    slice_key, (cdiv((k_end - k_begin) * d, COPY_BLOCK), groups),
                    cs, codes, centre, scale, k, d, k_begin, k_end, codes_per_slice,
                    BLOCK=COPY_BLOCK,
                )  # fmt: skip
                slice_rows = row_end - row_begin
                _candidate_launches(
                    slice_key, lambda meta, m=slice_rows: (cdiv(m, meta["BLOCK_N"]), groups),
                    xs, rows, codes, centred_half_norm, max_half_norm, centre, scale, top, count,
                    candidates, n, k, row_begin, row_end, k_begin, k_end, d, n * d,
                    rows_per_slice * d if streamed else 0, codes_per_slice * d, beta, gamma,
                    tiny, min(next_power_of_2(rows_per_slice), 1 << 16),
                    next_power_of_2(codes_per_slice), **chunks, SLOTS=SLOTS, CHECK_D=CHECK_D,
                )  # fmt: skip
        out = torch.empty(groups, n, dtype=torch.int64, device=device)
        needy = torch.empty(groups, n, dtype=torch.int32, device=device)
        num_needy = torch.zeros(groups, dtype=torch.int32, device=device)
        _recheck_launches(
            key, (cdiv(n, RECHECK_BLOCK_N), groups),
            xs, cs, count, candidates, needy, num_needy, out, n, k, d, n * d, k * d,
            SLOTS=SLOTS, CHECK_D=RECHECK_D, BLOCK_N=RECHECK_BLOCK_N, num_warps=RECHECK_WARPS,
        )  # fmt: skip
        # The fallback's tf32x3 search takes the codes' own half-norms.
        _search_unsettled_rows(key, xs, cs, fused.half_norms(cs), needy, num_needy, out)
    return out if batched else out[0]


def _search_unsettled_rows(
    key: tuple, xs: Tensor, cs: Tensor, half_norm: Tensor, needy: Tensor, num_needy: Tensor,
    out: Tensor,
) -> None:  # fmt: skip
    """The fallback over the listed rows, in codebook slices, then their indices unpacked."""
    groups, n, d = xs.shape
    k = cs.shape[1]
    multiprocessors = _multiprocessors(xs.device)
    slices = max(1, min(cdiv(k, FALLBACK_MIN_SLICE), 2 * multiprocessors))
    slice_size = cdiv(cdiv(k, slices), FALLBACK_BLOCK_K) * FALLBACK_BLOCK_K
    slices = cdiv(k, slice_size)
    workers = max(1, min(cdiv(n, FALLBACK_BLOCK_N), cdiv(2 * multiprocessors, slices * groups)))
    _fallback_launches(
        key, (workers, groups, slices),
        xs, cs, half_norm, needy, num_needy, out, n, k, d, n * d, k * d, slice_size, workers,
        **fused.row_chunks(d, fast=False),
        BLOCK_N=FALLBACK_BLOCK_N, BLOCK_K=FALLBACK_BLOCK_K,
        num_warps=FALLBACK_WARPS, num_stages=FALLBACK_STAGES,
    )  # fmt: skip
    unpack_workers = max(1, min(cdiv(n, 1024), 64))
    _unpack_launches(
        (xs.device, groups, n), (unpack_workers, groups),
        needy, num_needy, out, n, unpack_workers, BLOCK=1024,
    )  # fmt: skip


@functools.cache
def _multiprocessors(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


# Where the certified search is faster than three fp16 products of split operands
# (split_nearest_code; graph-replayed, float32 inputs, H100, 2026-11-23, scratch/split_ab*.py,
# benchmarks/results/nearest_code_h100_2026-11-23_split.txt, parts 1, 2 and 4): 1.07-1.19x at
# (65,536, 4,096, 128) (2^35 multiply-adds), 1.64x at (65,536, 4,096, 256), 1.30x at (65,536, 4,096,
# 512), 1.25x at (16,384, 16,384, 64) (2^34), 2.04-2.08x at (65,536, 16,384, 256) and 1.32-1.35x at
# (65,536, 65,536, 64); but 0.81-1.01x at 2^34 with 4,096 or 8,192 codes (six shapes, D = 32 to
# 512), 0.81-1.01x at 2^33 and 0.70-0.85x at 2^32. Its per-row work (centred norms, the float64
# re-check) is paid back by the codes it saves products on, and its 17 launches (kernels and small
# torch operations; two more a further codebook slice) by the work: the split search makes two or
# three. One shape measured goes the wrong way: (16,384, 4,096, 512) (2^35) took 0.694 ms here
# against 0.428 ms there (0.62x; why was not measured).
# (codes at least, multiply-adds N·K·D at least) for the certified search; any pair will do.
THRESHOLDS = ((4096, 2**35), (16384, 2**34))
MIN_D = 32


def preferred(x: Tensor, codebook: Tensor) -> bool:
    """Whether an exact search of these inputs (which :func:`vqcodec.kernels.triton_nearest_code.
    supports`) should come here rather than to :mod:`vqcodec.kernels.split_nearest_code`."""
    d, k = x.shape[-1], codebook.shape[-2]
    work = x.shape[:-1].numel() * k * d
    return d >= MIN_D and any(k >= codes and work >= least for codes, least in THRESHOLDS)
