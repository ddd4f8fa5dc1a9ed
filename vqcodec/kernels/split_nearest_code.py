"""Exact mode from fp16 pairs: three fp16 tensor-core products recover float32 products.

Every row and every code ``v`` is scaled by its own power of two ``σ`` (``split_scale``: the one
that puts ``max |v|`` in ``[2¹⁴, 2¹⁵)``, inside fp16's range) and split into two fp16 values,
``σ·v ≈ hi + lo`` with ``hi = fp16(σ·v)`` and ``lo = fp16(σ·v − hi)``. A tile's products are

    x·c ≈ (xₗₒ·c_hi + x_hi·c_lo + x_hi·c_hi) / (σ_x·σ_c)

on fp16 tensor cores with float32 accumulation, the small terms first; the dropped ``xₗₒ·cₗₒ``
and the rounding of ``lo`` each err by at most ``2⁻²²`` of ``|x_i·c_i|`` (fp16 keeps 11
significant bits, two of them 22), and fp16's subnormals (down to ``2⁻²⁴``, against a largest
value near ``2¹⁵``) keep ``lo`` for every value within ``2³⁹`` of its row's largest. This is
the arithmetic of Triton's ``tf32x3`` (TF32 also keeps 11 bits), which
:mod:`vqcodec.kernels.triton_nearest_code` uses, at twice its rate: fp16 tensor cores run at
twice TF32's, and the codes are split once, not once a tile. Dividing by the scales (powers of
two) is exact, so the scores ``x·c − ‖c‖²/2`` (half-norms in float32 from the inputs) and the
chosen codes are those of a float32 search up to rounding. On 29 shapes (docs/BENCHMARKS.md,
"Exact mode from fp16 pairs") it chose tf32x3's indices (the fraction equal to five places) and
took 1.6–2.8× less time.

Rows up to ``MAX_RESIDENT_D`` features are split on chip, once a program. Wider rows are
streamed along ``D`` for every codebook tile, so they are split once beforehand into tables
like the codes'. Extra memory: the codes' tables (4 bytes a value, as a float32 codebook, and
8 bytes a code), the wider rows' tables (4 bytes a value and 4 a row), the ``[N]`` indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from vqcodec.kernels import triton_nearest_code as fused
from vqcodec.kernels.launch import LaunchCache, cdiv, next_power_of_2, on_device


@triton.jit
def split_scale(largest):
    """The power of two ``σ`` that puts ``largest`` (``|v|``'s maximum, float32, ≥ 0) in
    ``[2¹⁴, 2¹⁵)``, from its exponent bits; at most ``2¹²⁶`` (zero and float32 subnormals: so
    that ``1/σ`` is a normal float32), at least ``2⁻¹¹⁴`` (infinities and NaNs)."""
    exponent = (largest.to(tl.int32, bitcast=True) >> 23) & 0xFF  # biased by 127
    biased = tl.minimum(127 + 14 - (exponent - 127), 127 + 126)
    return (biased << 23).to(tl.float32, bitcast=True)


@triton.jit
def split(v, scale):
    """``σ·v ≈ hi + lo`` for ``v`` (float32 ``[B, D]``) and ``scale`` ``σ`` (``[B]``): two fp16
    tiles. ``σ·v − hi`` is exact in float32."""
    scaled = v * scale[:, None]
    hi = scaled.to(tl.float16)
    lo = (scaled - hi.to(tl.float32)).to(tl.float16)
    return hi, lo


@triton.jit
def _split_rows_kernel(
    v_ptr, hi_ptr, lo_ptr, inverse_scale_ptr, half_norm_ptr, M, D, BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr, HALF_NORMS: tl.constexpr,
):  # fmt: skip
    """Grid ``(cdiv(M, BLOCK_M), G)``: the fp16 pairs of ``v [G, M, D]`` into ``hi``/``lo``
    (``[G, M, D]``), ``1/σ`` per row into ``inverse_scale`` (``[G, M]``) and, with
    ``HALF_NORMS``, ``0.5·‖v‖²`` (float32, from the unscaled values) into ``half_norm``."""
    group = tl.program_id(1).to(tl.int64)
    v_ptr += group * M * D
    hi_ptr += group * M * D
    lo_ptr += group * M * D
    inverse_scale_ptr += group * M
    half_norm_ptr += group * M
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    largest = tl.zeros((BLOCK_M,), tl.float32)
    squares = tl.zeros((BLOCK_M,), tl.float32)
    for d0 in range(0, D, BLOCK_D):
        d = d0 + tl.arange(0, BLOCK_D)
        ok = row_ok[:, None] & (d[None, :] < D)
        v = tl.load(v_ptr + rows[:, None].to(tl.int64) * D + d[None, :], mask=ok, other=0.0)
        v = v.to(tl.float32)
        largest = tl.maximum(largest, tl.max(tl.abs(v), axis=1))
        squares += tl.sum(v * v, axis=1)
    scale = split_scale(largest)
    for d0 in range(0, D, BLOCK_D):
        d = d0 + tl.arange(0, BLOCK_D)
        ok = row_ok[:, None] & (d[None, :] < D)
        where = rows[:, None].to(tl.int64) * D + d[None, :]
        hi, lo = split(tl.load(v_ptr + where, mask=ok, other=0.0).to(tl.float32), scale)
        tl.store(hi_ptr + where, hi, mask=ok)
        tl.store(lo_ptr + where, lo, mask=ok)
    tl.store(inverse_scale_ptr + rows, 1.0 / scale, mask=row_ok)
    if HALF_NORMS:
        tl.store(half_norm_ptr + rows, 0.5 * squares, mask=row_ok)


@triton.jit
def _split_search_kernel(
    x_ptr, x_hi_ptr, x_lo_ptr, x_inverse_scale_ptr, c_hi_ptr, c_lo_ptr, c_inverse_scale_ptr,
    half_norm_ptr, out_ptr, N, K, D,
    N_BUCKET, K_BUCKET,  # autotuning keys only: sizes rounded to powers of two
    D_CHUNK: tl.constexpr, NUM_D_CHUNKS: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):  # fmt: skip
    """Grid ``(cdiv(N, BLOCK_N), G)``: nearest code per row of ``x [G, N, D]`` into ``out``
    (int64 ``[G, N]``) from the codes' pairs ``c_hi``/``c_lo [G, K, D]``. With one chunk the
    rows are split here (the row tables are unused); else they come from their tables."""
    pid_n = tl.program_id(0)
    group = tl.program_id(1).to(tl.int64)
    x_ptr += group * N * D
    x_hi_ptr += group * N * D
    x_lo_ptr += group * N * D
    x_inverse_scale_ptr += group * N
    c_hi_ptr += group * K * D
    c_lo_ptr += group * K * D
    c_inverse_scale_ptr += group * K
    half_norm_ptr += group * K
    out_ptr += group * N

    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    cols = tl.arange(0, D_CHUNK)
    if NUM_D_CHUNKS == 1:
        x = tl.load(
            x_ptr + rows[:, None].to(tl.int64) * D + cols[None, :],
            mask=row_ok[:, None] & (cols[None, :] < D),
            other=0.0,
        ).to(tl.float32)
        scale = split_scale(tl.max(tl.abs(x), axis=1))
        x_hi, x_lo = split(x, scale)
        x_inverse_scale = 1.0 / scale
    else:
        x_hi, x_lo = 0, 0
        x_inverse_scale = tl.load(x_inverse_scale_ptr + rows, mask=row_ok, other=1.0)

    ks = tl.arange(0, BLOCK_K)
    best = tl.full((BLOCK_N,), float("-inf"), tl.float32)
    best_index = tl.zeros((BLOCK_N,), tl.int32)
    for k0 in range(0, K, BLOCK_K):
        codes = k0 + ks
        code_ok = codes < K
        if NUM_D_CHUNKS == 1:
            where = codes[:, None].to(tl.int64) * D + cols[None, :]
            ok = code_ok[:, None] & (cols[None, :] < D)
            c_hi = tl.trans(tl.load(c_hi_ptr + where, mask=ok, other=0.0))
            c_lo = tl.trans(tl.load(c_lo_ptr + where, mask=ok, other=0.0))
            # Smallest terms first, so that they are not lost against the largest.
            product = tl.dot(x_lo, c_hi)
            product = tl.dot(x_hi, c_lo, product)
            product = tl.dot(x_hi, c_hi, product)
        else:
            product = tl.zeros((BLOCK_N, BLOCK_K), tl.float32)
            for d0 in range(0, D, D_CHUNK):
                d = d0 + cols
                x_where = rows[:, None].to(tl.int64) * D + d[None, :]
                x_ok = row_ok[:, None] & (d[None, :] < D)
                c_where = codes[:, None].to(tl.int64) * D + d[None, :]
                c_ok = code_ok[:, None] & (d[None, :] < D)
                x_hi_chunk = tl.load(x_hi_ptr + x_where, mask=x_ok, other=0.0)
                x_lo_chunk = tl.load(x_lo_ptr + x_where, mask=x_ok, other=0.0)
                c_hi = tl.trans(tl.load(c_hi_ptr + c_where, mask=c_ok, other=0.0))
                c_lo = tl.trans(tl.load(c_lo_ptr + c_where, mask=c_ok, other=0.0))
                product = tl.dot(x_lo_chunk, c_hi, product)
                product = tl.dot(x_hi_chunk, c_lo, product)
                product = tl.dot(x_hi_chunk, c_hi, product)
        c_inverse_scale = tl.load(c_inverse_scale_ptr + codes, mask=code_ok, other=1.0)
        half_norm = tl.load(half_norm_ptr + codes, mask=code_ok, other=float("inf"))
        # Undo the scales (powers of two: exact), then x·c − ‖c‖²/2: larger is nearer.
        score = product * x_inverse_scale[:, None] * c_inverse_scale[None, :] - half_norm[None, :]
        best, best_index = fused.running_best(score, k0, best, best_index)
    tl.store(out_ptr + rows, best_index.to(tl.int64), mask=row_ok)


# The tf32x3 kernel's tiles (two fp16 tiles a side take the room of its float32 tile) and some
# of the fast kernel's.
TILES = fused.EXACT_TILES + [
    (128, 128, 8, 3),
    (64, 128, 4, 3),
    (256, 64, 8, 3),
    (128, 64, 4, 4),
    (256, 128, 8, 2),
]


_search_kernel = triton.autotune(
    configs=fused.tile_configs(TILES),
    key=["N_BUCKET", "K_BUCKET", "D_CHUNK", "NUM_D_CHUNKS"],
    prune_configs_by={"early_config_prune": fused._prune},
)(_split_search_kernel)
# Eager calls repeat: launch what the first call of a shape compiled (and autotuned) directly.
_search_launches = LaunchCache(_search_kernel)
_split_launches = LaunchCache(_split_rows_kernel)

# Rows up to this padded D are split on chip and stay there: two fp16 tiles take the room of
# the tf32x3 kernel's float32 tile (its limit); wider ones are split into tables and streamed
# in STREAMED_CHUNK columns.
MAX_RESIDENT_D = 128
STREAMED_CHUNK = 64
# Rows a program of the splitting kernel.
SPLIT_BLOCK_M = 32


def row_chunks(d: int) -> dict[str, int]:
    """The ``D_CHUNK`` and ``NUM_D_CHUNKS`` constexprs of a search over ``d`` features."""
    padded = max(16, next_power_of_2(d))
    chunk = padded if padded <= MAX_RESIDENT_D else STREAMED_CHUNK
    return {"D_CHUNK": chunk, "NUM_D_CHUNKS": cdiv(padded, chunk)}


@dataclass(frozen=True)
class SplitRows:
    """Rows ``v [G, M, D]`` as fp16 pairs: ``σ·v ≈ hi + lo`` (fp16 ``[G, M, D]`` each), the
    rows' ``1/σ`` (float32 ``[G, M]``) and, when asked for, ``0.5·‖v‖²`` (float32 ``[G, M]``)."""

    hi: Tensor
    lo: Tensor
    inverse_scale: Tensor
    half_norm: Tensor | None


def split_rows(v: Tensor, half_norms: bool = False) -> SplitRows:
    """The fp16 pairs of ``v [G, M, D]`` (contiguous, on CUDA; float32, bf16 or fp16)."""
    groups, m, d = v.shape
    hi = torch.empty(groups, m, d, dtype=torch.float16, device=v.device)
    lo = torch.empty_like(hi)
    inverse_scale = torch.empty(groups, m, dtype=torch.float32, device=v.device)
    half_norm = torch.empty_like(inverse_scale) if half_norms else None
    key = (v.device, v.dtype, groups, m, d, v.data_ptr() % 16 == 0, half_norms)
    # Without HALF_NORMS the kernel writes no half-norms: any float32 buffer fills the argument.
    with on_device(v.device):
        _split_launches(
            key, (cdiv(m, SPLIT_BLOCK_M), groups), v, hi, lo, inverse_scale,
            inverse_scale if half_norm is None else half_norm, m, d, BLOCK_M=SPLIT_BLOCK_M,
            BLOCK_D=min(max(16, next_power_of_2(d)), 128), HALF_NORMS=half_norms,
        )  # fmt: skip
    return SplitRows(hi, lo, inverse_scale, half_norm)


def nearest_code_split(x: Tensor, codebook: Tensor) -> Tensor:
    """Exact search; ``x [N, D]``/``[G, N, D]``, ``codebook [K, D]``/``[G, K, D]`` on CUDA (any
    dtypes :func:`vqcodec.kernels.triton_nearest_code.supports` takes).

    Returns int64 indices ``[N]`` (or ``[G, N]``), ties to the lowest index.
    """
    batched = x.dim() == 3
    xs = (x if batched else x[None]).contiguous()
    cs = (codebook if batched else codebook[None]).contiguous()
    groups, n, d = xs.shape
    k = cs.shape[1]
    chunks = row_chunks(d)
    codes = split_rows(cs, half_norms=True)
    # Resident rows are split on chip: the kernel reads x itself and not the (unused) tables.
    rows = split_rows(xs) if chunks["NUM_D_CHUNKS"] > 1 else SplitRows(xs, xs, xs, None)
    out = torch.empty(groups, n, dtype=torch.int64, device=x.device)
    grid = lambda meta: (cdiv(n, meta["BLOCK_N"]), groups)  # noqa: E731
    # Everything Triton specialises on: the integer arguments follow from the sizes, and the
    # tables and output are fresh (aligned) allocations.
    key = (x.device, xs.dtype, groups, n, k, d, xs.data_ptr() % 16 == 0)
    with on_device(x.device):
        _search_launches(
            key, grid, xs, rows.hi, rows.lo, rows.inverse_scale, codes.hi, codes.lo,
            codes.inverse_scale, codes.half_norm, out, n, k, d, min(next_power_of_2(n), 1 << 16),
            next_power_of_2(k), **chunks,
        )  # fmt: skip
    return out if batched else out[0]
