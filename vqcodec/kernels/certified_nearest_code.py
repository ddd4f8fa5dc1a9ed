"""Exact mode from fp16 products: every code that could be nearest is re-checked in float64.

The tf32x3 kernel recovers float32 products with three TF32 products a tile (4–10× a fast
search). This module gets a stronger answer (the nearest code in float64 arithmetic) from fp16
products and a proven bound on their error:

1. ``scaled_half_copies``: both inputs times ``σ``, the power of two that puts their largest
   magnitude in ``[2¹⁴, 2¹⁵)``, rounded to fp16 (11 significant bits against bf16's 8: an
   eight times tighter bound, so far fewer candidates). A fast search of the copies picks a
   first code ``f`` per row; only how good the pick is matters for speed, never the answer.
2. ``_candidates_kernel`` scores ``s(x, f) = x·f − ‖f‖²/2`` in float64 and streams the codebook
   again with fp16 products (in units of ``σ²``). A code ``c`` with exact score ``s(x, c) ≥
   s(x, f)``, as every nearest code has, has an fp16 score ``s̃(x, c) ≥ s(x, c) − e(x, c)``,
   ``e`` the bound below; so every such code passes the test ``s̃(x, c) + e_max(x) ≥ s(x, f)``,
   ``e_max`` the bound at the group's largest code norm. A row keeps what passes in up to
   ``SLOTS`` entries: the code, or, when two or more codes of one codebook tile pass, the whole
   tile. The test needs no exchange between a program's rows, so tiles stream without waits.
   The program then re-scores its rows' entries in float64 and writes the best, the lowest
   index on ties.
3. Rows with more than ``SLOTS`` entries (many near-equal codes) or a non-finite bound go on
   a list; ``_fallback_kernel`` searches them with tf32x3 (nearest up to
   float32 rounding) over codebook slices in parallel and merges the slices' winners with 64-bit
   atomic maxima, which ``_unpack_kernel`` turns back into indices. No step waits on the host,
   so exact searches can be captured in CUDA graphs.

**The bound** (``error_factors``). Rounding to fp16 to nearest errs by at most ``u = 2⁻¹¹`` of a
value, or ``2⁻¹⁴`` absolute below fp16's normal range (flushed or not), so ``Σ|x̃ᵢc̃ᵢ − xᵢcᵢ| ≤
(2u + u²)·‖x‖·‖c‖ + 2⁻¹⁴·(1 + u)·√D·(‖x‖ + ‖c‖) + D·2⁻²⁸`` (Cauchy–Schwarz). Products of fp16
values are exact in float32; their float32 sum is taken to err by at most ``D·2⁻²¹`` of
``Σ|x̃ᵢc̃ᵢ|``, four times the bound for sums that truncate every addition, as a margin for how
tensor cores align and add. The half-norms come from the inputs themselves (float32 sums of
squares, then times ``σ²``, exactly). The subtraction, the test's own additions, the square
roots and the threshold's rounding to float32 each err by a few units of float32 rounding of
``‖x‖·‖c‖ + ‖c‖²/2``, covered by ``2⁻²⁰`` added to both factors. ``test_certified_gpu.py``
measures the bound against cuBLAS's fp16 products. Memory: fp16 copies of the inputs,
``SLOTS`` int32 entries a row, a row list: O((N + K)·D), never O(N·K).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import triton
import triton.language as tl
from torch import Tensor

from vqcodec.kernels import triton_nearest_code as fused
from vqcodec.kernels.launch import LaunchCache, cdiv, next_power_of_2, on_device

# Entries kept a row (the bound is about 2⁻¹⁰·‖x‖·‖c‖); rows with more go to the tf32x3
# fallback. On the random inputs measured (docs/BENCHMARKS.md) no row had more.
SLOTS = 16
# Columns a step when re-scoring in float64.
CHECK_D = 32
# The fallback's tiles: one of the tf32x3 kernel's configs.
FALLBACK_BLOCK_N, FALLBACK_BLOCK_K, FALLBACK_WARPS, FALLBACK_STAGES = 64, 64, 4, 3
# Codes per fallback program at least: a slice worth a launch.
FALLBACK_MIN_SLICE = 2048


@triton.jit
def _exact_scores(x_ptr, codebook_ptr, rows, row_ok, code, D, CHECK_D: tl.constexpr):
    """``x·c − ‖c‖²/2`` and ``‖x‖²`` in float64 for each row and its ``code`` (``[BLOCK_N]``
    each). The products of float32 (or half) values are exact in float64."""
    cols = tl.arange(0, CHECK_D)
    score = tl.zeros((rows.shape[0],), tl.float64)
    norm = tl.zeros((rows.shape[0],), tl.float64)
    for d0 in range(0, D, CHECK_D):
        d = d0 + cols
        ok = row_ok[:, None] & (d[None, :] < D)
        xv = tl.load(x_ptr + rows[:, None].to(tl.int64) * D + d[None, :], mask=ok, other=0.0)
        cv = tl.load(codebook_ptr + code[:, None].to(tl.int64) * D + d[None, :], mask=ok, other=0.0)
        xv = xv.to(tl.float64)
        cv = cv.to(tl.float64)
        score += tl.sum(xv * cv - 0.5 * (cv * cv), axis=1)
        norm += tl.sum(xv * xv, axis=1)
    return score, norm


@triton.jit
def _abs_max_kernel(
    x_ptr, x_size, codebook_ptr, codebook_size, x_blocks, max_ptr, BLOCK: tl.constexpr
):
    """Grid ``(x_blocks + codebook blocks,)``: ``max |v|`` over both tensors into ``max_ptr``
    (float32, zeroed before)."""
    pid = tl.program_id(0)
    if pid < x_blocks:
        i = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        largest = tl.max(tl.abs(tl.load(x_ptr + i, mask=i < x_size, other=0.0).to(tl.float32)))
    else:
        i = (pid - x_blocks).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        v = tl.load(codebook_ptr + i, mask=i < codebook_size, other=0.0)
        largest = tl.max(tl.abs(v.to(tl.float32)))
    tl.atomic_max(max_ptr, largest)


@triton.jit
def _scaled_copy_kernel(
    x_ptr, x_half_ptr, x_size, codebook_ptr, codebook_half_ptr, codebook_size, x_blocks,
    max_ptr, scale_ptr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Grid as ``_abs_max_kernel``'s: both tensors times ``σ`` in fp16, ``σ`` the power of two
    that puts their largest magnitude in ``[2¹⁴, 2¹⁵)`` (clamped to ``[2⁻¹¹³, 2¹²⁶]``); program
    0 also writes ``σ`` to ``scale_ptr``. Multiplying by ``σ`` is exact; the rounding to fp16
    errs by at most ``2⁻¹¹`` of a value, or ``2⁻¹⁴`` absolute (below fp16's normal range)."""
    largest = tl.load(max_ptr)
    exponent = ((largest.to(tl.int32, bitcast=True) >> 23) & 0xFF) - 127  # floor(log2), > -127
    exponent = tl.minimum(tl.maximum(exponent, -112), 127)
    scale = ((14 - exponent + 127) << 23).to(tl.float32, bitcast=True)  # 2^(14 − exponent)
    pid = tl.program_id(0)
    if pid == 0:
        tl.store(scale_ptr, scale)
    if pid < x_blocks:
        i = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        x = tl.load(x_ptr + i, mask=i < x_size, other=0.0)
        tl.store(x_half_ptr + i, (x.to(tl.float32) * scale).to(tl.float16), mask=i < x_size)
    else:
        i = (pid - x_blocks).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        c = tl.load(codebook_ptr + i, mask=i < codebook_size, other=0.0)
        c = (c.to(tl.float32) * scale).to(tl.float16)
        tl.store(codebook_half_ptr + i, c, mask=i < codebook_size)


@triton.jit
def _candidates_kernel(
    x_ptr,
    codebook_ptr,
    x_half_ptr,
    codebook_half_ptr,
    half_norm_ptr,
    max_half_norm_ptr,
    scale_ptr,
    first_ptr,
    candidates_ptr,
    needy_ptr,
    num_needy_ptr,
    out_ptr,
    N,
    K,
    D,
    stride_xg,
    stride_cg,
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
    """Scores in the scaled copies' units (``σ²`` times the inputs'); see the module docstring."""
    pid_n = tl.program_id(0)
    group = tl.program_id(1).to(tl.int64)
    x_ptr += group * stride_xg
    codebook_ptr += group * stride_cg
    x_half_ptr += group * stride_xg
    codebook_half_ptr += group * stride_cg
    half_norm_ptr += group * K
    max_half_norm_ptr += group
    first_ptr += group * N
    candidates_ptr += group * N * SLOTS
    needy_ptr += group * N
    out_ptr += group * N

    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    cols = tl.arange(0, D_CHUNK)
    ks = tl.arange(0, BLOCK_K)
    scale = tl.load(scale_ptr)

    # The fast search's code, scored exactly: every nearest code scores at least as much.
    first = tl.load(first_ptr + rows, mask=row_ok, other=0).to(tl.int32)
    first_score, x_norm2 = _exact_scores(x_ptr, codebook_ptr, rows, row_ok, first, D, CHECK_D)
    scale64 = scale.to(tl.float64)
    # float32 bounds on the safe side: the threshold rounded down, the norm rounded up.
    threshold = (first_score * scale64 * scale64).to(tl.float32)
    threshold = threshold - tl.abs(threshold) * 2.3841858e-07 - tiny  # 2⁻²² of it
    x_norm = (tl.sqrt(x_norm2) * scale64).to(tl.float32) * 1.000001
    # A code passes if its fp16 score plus the largest error bound of any code of the group
    # reaches the threshold: a superset of the codes whose exact score could.
    max_half = (tl.load(max_half_norm_ptr) * scale) * scale
    max_norm = tl.sqrt(2.0 * max_half)
    slack = x_norm * (beta * max_norm + tiny) + (gamma * max_half + tiny * (1.0 + max_norm))
    passing = threshold - slack
    passing = passing - tl.abs(passing) * 2.3841858e-07

    x = fused.resident_rows(x_half_ptr, rows, row_ok, cols, D, NUM_D_CHUNKS, False)
    count = tl.zeros((BLOCK_N,), tl.int32)
    broken = tl.zeros((BLOCK_N,), tl.int1)
    for k0 in range(0, K, BLOCK_K):
        codes = k0 + ks
        code_ok = codes < K
        product = fused.products(
            x, x_half_ptr, codebook_half_ptr, rows, row_ok, codes, code_ok, cols, D, D_CHUNK,
            NUM_D_CHUNKS, False,
        )  # fmt: skip
        half_norm = tl.load(half_norm_ptr + codes, mask=code_ok, other=float("inf"))
        half_norm = (half_norm * scale) * scale
        # Hits and the sum of their columns in one sum: (1 << 16) + column a hit. The first
        # code always passes (the bound says so) and needs no collecting, as it starts the
        # re-check, so it is taken back out of its tile's sum. (Were the bound broken, a
        # negative sum would show it where no other code of the tile passed; such rows go to
        # the fallback. The check is partial: the bound is what makes the answer exact.) A
        # row with one other hit keeps its code; with more (rare: near-duplicate codes within
        # a tile), the tile, as -1 - k0. No test spans the program's rows, so no wait between
        # tiles.
        hit = product - half_norm[None, :] >= passing[:, None]
        tally = tl.sum(tl.where(hit, 65536 + ks[None, :], 0), axis=1)
        tally -= tl.where((first >= k0) & (first < k0 + BLOCK_K), 65536 + first - k0, 0)
        broken = broken | (tally < 0)
        hits = tally >> 16
        entry = tl.where(hits == 1, k0 + (tally & 65535), -1 - k0)
        where = candidates_ptr + rows.to(tl.int64) * SLOTS + count
        tl.store(where, entry, mask=row_ok & (hits > 0) & (count < SLOTS))
        count += tl.where(hits > 0, 1, 0)

    # Re-score the candidates this program wrote in float64, after the first code; ties
    # compare indices. Rows with more than SLOTS entries are not settled here.
    tl.debug_barrier()
    resolved = (count <= SLOTS) & ~broken & (passing == passing) & (slack < float("inf"))
    kept = tl.where(resolved, count, 0)
    best = first_score
    best_index = first
    for j in range(0, tl.max(kept, axis=0)):
        valid = row_ok & (j < kept)
        entry = tl.load(candidates_ptr + rows.to(tl.int64) * SLOTS + j, mask=valid, other=0)
        whole = valid & (entry < 0)
        width = tl.where(tl.max(whole.to(tl.int32), axis=0) > 0, BLOCK_K, 1)
        for t in range(0, width):
            code = tl.where(whole, -1 - entry + t, entry)
            ok = valid & tl.where(whole, code < K, t == 0)
            score, _ = _exact_scores(x_ptr, codebook_ptr, rows, ok, code, D, CHECK_D)
            better = ok & ((score > best) | ((score == best) & (code < best_index)))
            best = tl.where(better, score, best)
            best_index = tl.where(better, code, best_index)
    tl.store(out_ptr + rows, best_index.to(tl.int64), mask=row_ok & resolved)

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
    # Tuning runs the kernel repeatedly; each run must list its rows afresh.
    reset_to_zero=["num_needy_ptr"],
)(_candidates_kernel)
_abs_max_launches = LaunchCache(_abs_max_kernel)
_scaled_copy_launches = LaunchCache(_scaled_copy_kernel)
_candidate_launches = LaunchCache(_candidates)
_fallback_launches = LaunchCache(_fallback_kernel)
_unpack_launches = LaunchCache(_unpack_kernel)

# fp16's unit roundoff (round to nearest), and the largest error of an fp16 operand below its
# normal range, flushed to zero or not, in the scaled units.
UNIT_ROUNDOFF = 2.0**-11
FLUSH = 2.0**-14
COPY_BLOCK = 4096


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


def scaled_half_copies(x: Tensor, codebook: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(σ·x, σ·codebook)`` in fp16 and ``σ`` (float32 ``[1]``) for contiguous inputs, ``σ``
    the power of two that puts their largest magnitude in ``[2¹⁴, 2¹⁵)``: three launches, no
    wait on the host."""
    device = x.device
    largest = torch.zeros(1, dtype=torch.float32, device=device)
    scale = torch.empty(1, dtype=torch.float32, device=device)
    x_half = torch.empty(x.shape, dtype=torch.float16, device=device)
    codebook_half = torch.empty(codebook.shape, dtype=torch.float16, device=device)
    x_blocks = cdiv(x.numel(), COPY_BLOCK)
    grid = (x_blocks + cdiv(codebook.numel(), COPY_BLOCK),)
    key = (device, x.dtype, codebook.dtype, x.numel(), codebook.numel())
    with on_device(device):
        _abs_max_launches(
            key, grid, x, x.numel(), codebook, codebook.numel(), x_blocks, largest,
            BLOCK=COPY_BLOCK,
        )  # fmt: skip
        _scaled_copy_launches(
            key, grid, x, x_half, x.numel(), codebook, codebook_half, codebook.numel(),
            x_blocks, largest, scale, BLOCK=COPY_BLOCK,
        )  # fmt: skip
    return x_half, codebook_half, scale


def nearest_code_certified(
    x: Tensor, codebook: Tensor, fast_search: Callable[[Tensor, Tensor], Tensor]
) -> Tensor:
    """Exact search; ``x [N, D]``/``[G, N, D]``, ``codebook [K, D]``/``[G, K, D]`` on CUDA;
    ``fast_search(x, codebook)`` any fast search (it gets the scaled fp16 copies).

    Returns int64 indices ``[N]`` (or ``[G, N]``) of the nearest codes in float64 arithmetic,
    ties to the lowest index (rows the fallback settles: nearest up to float32 rounding).
    """
    batched = x.dim() == 3
    xs = (x if batched else x[None]).contiguous()
    cs = (codebook if batched else codebook[None]).contiguous()
    groups, n, d = xs.shape
    k = cs.shape[1]
    device = x.device
    x_half, codebook_half, scale = scaled_half_copies(xs, cs)
    first = fast_search(x_half, codebook_half)
    half_norm = fused.half_norms(cs)
    max_half_norm = half_norm.amax(dim=1)
    out = torch.empty(groups, n, dtype=torch.int64, device=device)
    candidates = torch.empty(groups, n, SLOTS, dtype=torch.int32, device=device)
    needy = torch.empty(groups, n, dtype=torch.int32, device=device)
    num_needy = torch.zeros(groups, dtype=torch.int32, device=device)
    beta, gamma, tiny = error_factors(d)
    key = (
        device, xs.dtype, cs.dtype, groups, n, k, d,
        xs.data_ptr() % 16 == 0, cs.data_ptr() % 16 == 0,
    )  # fmt: skip
    with on_device(device):
        _candidate_launches(
            key, lambda meta: (cdiv(n, meta["BLOCK_N"]), groups),
            xs, cs, x_half, codebook_half, half_norm, max_half_norm, scale, first, candidates,
            needy, num_needy, out, n, k, d, n * d, k * d, beta, gamma, tiny,
            min(next_power_of_2(n), 1 << 16), next_power_of_2(k),
            **fused.row_chunks(d, fast=True), SLOTS=SLOTS, CHECK_D=CHECK_D,
        )  # fmt: skip
        _search_unsettled_rows(key, xs, cs, half_norm, needy, num_needy, out)
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


# Where the certified search is faster than the tf32x3 kernel (graph-replayed, float32 inputs,
# H100, 2026-11-23 03:15 UTC, scratch/certified_timing.py; docs/BENCHMARKS.md, "Exact mode from
# fp16 candidates"): 1.4-1.9x at K = 4,096 and D = 64 or 128, 3.0-3.8x at D = 256; but 0.98x at
# (65,536, 1,024, 128) and 0.82x at (262,144, 1,024, 8), where its per-row set-up and tests
# cost more than the tf32x3 products they save. Below 2^32 multiply-adds an eager call is
# host-bound, and this path makes about ten launches to the tf32x3 kernel's two.
MIN_WORK = 2**32
MIN_CODES = 4096
MIN_D = 32


def preferred(x: Tensor, codebook: Tensor) -> bool:
    """Whether an exact search of these inputs (which :func:`vqcodec.kernels.triton_nearest_code.
    supports`) should come here rather than to the tf32x3 kernel."""
    d, k = x.shape[-1], codebook.shape[-2]
    return d >= MIN_D and k >= MIN_CODES and x.shape[:-1].numel() * k * d >= MIN_WORK
