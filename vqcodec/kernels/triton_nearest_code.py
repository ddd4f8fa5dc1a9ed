"""Fused nearest-code search on the GPU (Triton): the ``N×K`` distances are never written.

Each program owns ``BLOCK_N`` rows of ``x`` and streams the codebook through on-chip memory in
``BLOCK_K`` tiles: one tensor-core product ``x·cᵀ`` per tile with float32 accumulation, minus
``‖c‖²/2`` (precomputed in float32), then a running arg-max per row. Only the ``[N]`` indices
are written. Extra memory is the ``[K]`` half-norms and the ``[N]`` output: O(N + K); in fast
mode, float32 rows wider than 256 also get bf16 copies of both inputs ((N + K)·D values).

Two precisions:

* **fast**: operands rounded to bf16 (fp16 inputs stay fp16) — full tensor-core rate; a row
  whose two nearest codes are closer than bf16 rounding may get the second one. Rows wider
  than 256 features, streamed along ``D``, are rounded to copies before the search.
* **exact**: float32 operands with ``tf32x3`` products (three TF32 products that recover
  float32 accuracy), so the chosen code is nearest up to float32 rounding. The op's exact mode
  no longer comes here (:mod:`vqcodec.kernels.split_nearest_code` does the same arithmetic at
  twice the rate, :mod:`vqcodec.kernels.certified_nearest_code` large searches); the certified
  search's fallback does.

File order follows the Triton tutorials: kernel, then the launcher, nothing else.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from vqcodec.kernels.launch import LaunchCache, cdiv, next_power_of_2, on_device

# Tile shapes (BLOCK_N, BLOCK_K, warps, stages) the autotuner tries, chosen for Hopper's 228 KB
# of shared memory per SM; those that do not fit are rejected by the autotuner (OutOfResources)
# and never chosen.
EXACT_TILES = [
    (128, 64, 8, 3),
    (64, 64, 4, 3),
    (128, 32, 8, 3),
    (64, 128, 8, 2),
    (128, 128, 8, 2),
    (64, 64, 4, 2),
    (64, 32, 4, 3),
    (128, 64, 8, 2),
]
FAST_TILES = [
    (128, 128, 8, 3),
    (128, 64, 8, 3),
    (64, 128, 4, 3),
    (128, 256, 8, 2),
    (256, 64, 8, 3),
    (256, 128, 8, 2),
    (256, 64, 8, 4),
    (256, 128, 8, 3),
    (256, 64, 16, 3),
    (128, 64, 4, 4),
    (256, 128, 8, 4),
    (128, 256, 8, 3),
]


def tile_configs(tiles: list[tuple[int, int, int, int]]) -> list[triton.Config]:
    """Autotuner configs of ``(BLOCK_N, BLOCK_K, num_warps, num_stages)`` tiles."""
    return [
        triton.Config({"BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
        for bn, bk, w, s in tiles
    ]


def _prune(configs: list[triton.Config], named_args: dict, **kwargs: object) -> list[triton.Config]:
    # Small inputs: do not tile past the (padded) number of rows.
    n = named_args["N"]
    kept = [c for c in configs if c.kwargs["BLOCK_N"] <= max(64, next_power_of_2(n))]
    return kept or configs[:1]


@triton.jit
def operand(t, EXACT: tl.constexpr):
    """A product operand: float32 for tf32x3 (exact); else bf16 for float32 inputs, half
    dtypes kept."""
    return t.to(tl.float32) if EXACT else t.to(tl.bfloat16) if t.dtype == tl.float32 else t


@triton.jit
def resident_rows(x_ptr, rows, row_ok, cols, D, NUM_D_CHUNKS: tl.constexpr, EXACT: tl.constexpr):
    """The row tile ``[BLOCK_N, D_CHUNK]`` as a product operand, when it stays on chip for the
    whole pass over the codebook (``NUM_D_CHUNKS == 1``); else nothing (0)."""
    if NUM_D_CHUNKS == 1:
        x = tl.load(
            x_ptr + rows[:, None].to(tl.int64) * D + cols[None, :],
            mask=row_ok[:, None] & (cols[None, :] < D),
            other=0.0,
        )
        return operand(x, EXACT)
    else:
        return 0


@triton.jit
def products(
    x,
    x_ptr,
    codebook_ptr,
    rows,
    row_ok,
    codes,
    code_ok,
    cols,
    D,
    D_CHUNK: tl.constexpr,
    NUM_D_CHUNKS: tl.constexpr,
    EXACT: tl.constexpr,
):
    """``x·cᵀ`` ``[BLOCK_N, BLOCK_K]`` in float32 for one codebook tile: with the resident row
    tile ``x`` (from :func:`resident_rows`), or streaming rows and codes along ``D`` in
    ``D_CHUNK`` columns. Codes take the row operand's dtype; exact mode multiplies with tf32x3."""
    if NUM_D_CHUNKS == 1:
        c = tl.load(
            codebook_ptr + codes[:, None].to(tl.int64) * D + cols[None, :],
            mask=code_ok[:, None] & (cols[None, :] < D),
            other=0.0,
        )
        if EXACT:
            product = tl.dot(x, tl.trans(c.to(tl.float32)), input_precision="tf32x3")
        else:
            product = tl.dot(x, tl.trans(c.to(x.dtype)))
    else:
        product = tl.zeros((rows.shape[0], codes.shape[0]), tl.float32)
        for d0 in range(0, D, D_CHUNK):
            d = d0 + cols
            xc = tl.load(
                x_ptr + rows[:, None].to(tl.int64) * D + d[None, :],
                mask=row_ok[:, None] & (d[None, :] < D),
                other=0.0,
            )
            c = tl.load(
                codebook_ptr + codes[:, None].to(tl.int64) * D + d[None, :],
                mask=code_ok[:, None] & (d[None, :] < D),
                other=0.0,
            )
            xc = operand(xc, EXACT)
            if EXACT:
                product = tl.dot(xc, tl.trans(c.to(tl.float32)), product, input_precision="tf32x3")
            else:
                product = tl.dot(xc, tl.trans(c.to(xc.dtype)), product)
    return product


@triton.jit
def best_codes(
    x,
    x_ptr,
    codebook_ptr,
    half_norm_ptr,
    rows,
    row_ok,
    cols,
    D,
    k_begin,
    k_end,
    K,
    BLOCK_K: tl.constexpr,
    D_CHUNK: tl.constexpr,
    NUM_D_CHUNKS: tl.constexpr,
    EXACT: tl.constexpr,
):
    """The best score ``x·c − ‖c‖²/2`` (float32) and its code (int32, lowest index on ties) per
    row ``[BLOCK_N]`` among codes ``k_begin ≤ k < min(k_end, K)``; ``-inf`` and ``k_begin``
    where the range is empty. ``rows`` may be any row indices (gathered rows)."""
    ks = tl.arange(0, BLOCK_K)
    best = tl.full((rows.shape[0],), float("-inf"), tl.float32)
    best_index = tl.zeros((rows.shape[0],), tl.int32) + k_begin
    for k0 in range(k_begin, k_end, BLOCK_K):
        codes = k0 + ks
        code_ok = (codes < K) & (codes < k_end)
        score = products(
            x, x_ptr, codebook_ptr, rows, row_ok, codes, code_ok, cols, D, D_CHUNK,
            NUM_D_CHUNKS, EXACT,
        )  # fmt: skip
        half_norm = tl.load(half_norm_ptr + codes, mask=code_ok, other=float("inf"))
        score = score - half_norm[None, :]  # x·c − ‖c‖²/2: larger is nearer
        best, best_index = running_best(score, k0, best, best_index)
    return best, best_index


@triton.jit
def running_best(score, k0, best, best_index):
    """Fold a tile's scores (``[BLOCK_N, BLOCK_K]``, codes from ``k0``) into the rows' best
    score and code so far (``[BLOCK_N]`` each); ties go to the lowest index."""
    tile_best, tile_index = tl.max(
        score, axis=1, return_indices=True, return_indices_tie_break_left=True
    )
    # Strictly better only: an equal score in a later tile has a higher index.
    better = tile_best > best
    return tl.where(better, tile_best, best), tl.where(better, tile_index + k0, best_index)


@triton.jit
def _nearest_code_kernel(
    x_ptr,
    codebook_ptr,
    half_norm_ptr,
    out_ptr,
    N,
    K,
    D,
    stride_xg,
    stride_cg,
    N_BUCKET,
    K_BUCKET,  # autotuning keys only: sizes rounded to powers of two
    D_CHUNK: tl.constexpr,
    NUM_D_CHUNKS: tl.constexpr,
    EXACT: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid_n = tl.program_id(0)
    group = tl.program_id(1).to(tl.int64)
    x_ptr += group * stride_xg
    codebook_ptr += group * stride_cg
    half_norm_ptr += group * K
    out_ptr += group * N

    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    cols = tl.arange(0, D_CHUNK)
    x = resident_rows(x_ptr, rows, row_ok, cols, D, NUM_D_CHUNKS, EXACT)

    _, best_index = best_codes(
        x, x_ptr, codebook_ptr, half_norm_ptr, rows, row_ok, cols, D, 0, K, K,
        BLOCK_K, D_CHUNK, NUM_D_CHUNKS, EXACT,
    )  # fmt: skip
    tl.store(out_ptr + rows, best_index.to(tl.int64), mask=row_ok)


# The half-norm terms table's row width: one k step of a bf16 tensor-core product.
TERMS_WIDTH = 16
_TERMS_WIDTH = tl.constexpr(TERMS_WIDTH)


@triton.jit
def _half_norm_kernel(
    codebook_ptr,
    out_ptr,
    K,
    K_OUT,
    D,
    fill,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
    LAUNCH_DEPENDENTS: tl.constexpr = False,
    AS_TERMS: tl.constexpr = False,
):
    """``0.5·‖c‖²`` per code in float32, without a float32 copy of the codebook.

    Grid ``(cdiv(K_OUT, BLOCK_K), G)``: group ``g`` writes ``out[g, :K_OUT]``; codes past ``K``
    (padding up to ``K_OUT``) get ``fill``. ``LAUNCH_DEPENDENTS`` (sm_90 and later) lets a
    kernel launched next with programmatic dependent launch start at once; it must wait
    (``griddepcontrol.wait``) before it reads the norms.

    ``AS_TERMS``: ``out`` is ``[G, K_OUT, 16]`` bf16 and row ``k`` is ``[1, 1, 1, h, m, l, 0, …]``
    with ``h + m + l`` the half-norm split into three bf16 terms (see :func:`half_norm_terms`).
    """
    if LAUNCH_DEPENDENTS:
        tl.extra.cuda.gdc_launch_dependents()
    group = tl.program_id(1).to(tl.int64)
    codebook_ptr += group * K * D
    codes = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
    code_ok = codes < K
    total = tl.zeros((BLOCK_K,), tl.float32)
    for d0 in range(0, D, BLOCK_D):
        d = d0 + tl.arange(0, BLOCK_D)
        c = tl.load(
            codebook_ptr + codes[:, None].to(tl.int64) * D + d[None, :],
            mask=code_ok[:, None] & (d[None, :] < D),
            other=0.0,
        ).to(tl.float32)
        total += tl.sum(c * c, axis=1)
    half_norm = tl.where(code_ok, 0.5 * total, fill)
    if AS_TERMS:
        out_ptr += group * K_OUT * _TERMS_WIDTH
        high = half_norm.to(tl.bfloat16).to(tl.float32)
        middle = (half_norm - high).to(tl.bfloat16).to(tl.float32)
        low = half_norm - high - middle  # both subtractions exact in float32
        column = tl.arange(0, _TERMS_WIDTH)[None, :]
        row = tl.where(
            column < 3,
            1.0,
            tl.where(
                column == 3,
                high[:, None],
                tl.where(column == 4, middle[:, None], tl.where(column == 5, low[:, None], 0.0)),
            ),
        )
        where = out_ptr + codes[:, None].to(tl.int64) * _TERMS_WIDTH + column
        tl.store(where, row.to(tl.bfloat16), mask=codes[:, None] < K_OUT)
    else:
        out_ptr += group * K_OUT
        tl.store(out_ptr + codes, half_norm, mask=codes < K_OUT)


def half_norms(
    codebook: Tensor,
    padded_k: int | None = None,
    fill: float = 0.0,
    out: Tensor | None = None,
    launch_dependents: bool = False,
) -> Tensor:
    """``0.5·‖c‖²`` in float32 for ``codebook [G, K, D]`` (contiguous, on CUDA): ``[G, K]``, or
    ``[G, padded_k]`` with ``fill`` past ``K``; written into ``out`` (float32 ``[G, K_OUT]``,
    ``padded_k`` then taken from it) when given. ``launch_dependents`` (sm_90 and later): see
    ``_half_norm_kernel``."""
    if out is None:
        groups, k, _ = codebook.shape
        k_out = k if padded_k is None else padded_k
        out = torch.empty(groups, k_out, dtype=torch.float32, device=codebook.device)
    return _launch_half_norms(codebook, out, fill, launch_dependents, as_terms=False)


def half_norm_terms(
    codebook: Tensor, out: Tensor, fill: float = 0.0, launch_dependents: bool = False
) -> Tensor:
    """The codes' half-norms as a product's extra k step: ``out [G, K_OUT, 16]`` bf16 (row
    ``k``: ``[1, 1, 1, h, m, l, 0, …]``, ``h + m + l = 0.5·‖c_k‖²`` to float32 precision;
    ``fill`` past ``K``) for ``codebook [G, K, D]``. A row ``[a, b, c, 1, 1, 1, 0, …]`` times
    it gives ``a + b + c + 0.5·‖c_k‖²``: both half-norms added by the tensor cores (the Hopper
    kernel's ``TileConfig.norms_in_product``). Three bf16 terms hold 24 significant bits, all of
    a float32. ``launch_dependents``: see ``_half_norm_kernel``."""
    return _launch_half_norms(codebook, out, fill, launch_dependents, as_terms=True)


def _launch_half_norms(
    codebook: Tensor, out: Tensor, fill: float, launch_dependents: bool, as_terms: bool
) -> Tensor:
    groups, k, d = codebook.shape
    k_out = out.shape[1]
    # Few codes a program, so that even a small codebook spreads over many multiprocessors:
    # the kernel is a chain of dependent loads. Measured on an H100 replaying CUDA graphs
    # (an empty kernel: 4.6 us) at K = 1,024, D = 128: 5.5-5.8 us with 16 codes a program
    # against 10.8-10.9 us with 256 (benchmarks/results/nearest_code_gap_h100_2026-11-22.txt).
    block_k = 16
    block_d = min(max(16, next_power_of_2(d)), 8192 // block_k)
    key = (
        codebook.device, codebook.dtype, out.dtype, groups, k, k_out, d,
        codebook.data_ptr() % 16 == 0, out.data_ptr() % 16 == 0, launch_dependents, as_terms,
    )  # fmt: skip
    with on_device(codebook.device):
        _half_norm_launches(
            key, (cdiv(k_out, block_k), groups), codebook, out, k, k_out, d, fill,
            BLOCK_K=block_k, BLOCK_D=block_d, LAUNCH_DEPENDENTS=launch_dependents,
            AS_TERMS=as_terms,
        )  # fmt: skip
    return out


_fast_kernel = triton.autotune(
    configs=tile_configs(FAST_TILES),
    key=["N_BUCKET", "K_BUCKET", "D_CHUNK", "NUM_D_CHUNKS"],
    prune_configs_by={"early_config_prune": _prune},
)(_nearest_code_kernel)
_exact_kernel = triton.autotune(
    configs=tile_configs(EXACT_TILES),
    key=["N_BUCKET", "K_BUCKET", "D_CHUNK", "NUM_D_CHUNKS"],
    prune_configs_by={"early_config_prune": _prune},
)(_nearest_code_kernel)
# Eager calls repeat: launch what the first call of a shape compiled (and autotuned) directly.
_half_norm_launches = LaunchCache(_half_norm_kernel)
_search_launches = {True: LaunchCache(_fast_kernel), False: LaunchCache(_exact_kernel)}

SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# Above these padded D the row tile is streamed in chunks along D instead of staying on chip.
# tf32x3 keeps split copies of its float32 operands, so exact mode has room for less. Fast mode
# streams its bf16/fp16 copies in 64 columns: with the configs (256, 128, 8, 4) and (128, 256,
# 8, 3), 1.10-1.20x faster than 128 columns at D = 320 to 1,024; flattening the (code tile,
# chunk) loop was no faster (0.93-1.01x; H100, nearest_code_h100_2026-11-23_copies.txt, part 2).
MAX_RESIDENT_D = {"fast": 256, "exact": 128}
STREAMED_CHUNK = {"fast": 64, "exact": 64}


def row_chunks(d: int, fast: bool) -> dict[str, int]:
    """The ``D_CHUNK`` and ``NUM_D_CHUNKS`` constexprs of a search over ``d`` features: the row
    tile stays on chip (one chunk of the padded ``D``) up to ``MAX_RESIDENT_D``, else it is
    streamed in ``STREAMED_CHUNK`` columns."""
    mode = "fast" if fast else "exact"
    padded = max(16, next_power_of_2(d))
    chunk = padded if padded <= MAX_RESIDENT_D[mode] else STREAMED_CHUNK[mode]
    return {"D_CHUNK": chunk, "NUM_D_CHUNKS": cdiv(padded, chunk)}


def fast_dtype(x_dtype: torch.dtype, codebook_dtype: torch.dtype) -> torch.dtype:
    """The dtype fast mode multiplies in: float16 when both inputs are float16, else bfloat16
    (float32's range, so no input overflows)."""
    both_half = x_dtype == codebook_dtype == torch.float16
    return torch.float16 if both_half else torch.bfloat16


def supports(x: Tensor, codebook: Tensor) -> bool:
    """Whether :func:`nearest_code_triton` handles these inputs (else use the reference)."""
    return (
        x.is_cuda
        and codebook.is_cuda
        and x.dtype in SUPPORTED_DTYPES
        and codebook.dtype in SUPPORTED_DTYPES
        and x.shape[-2] > 0
        and x.shape[-2] < 2**31
        and codebook.shape[-2] < 2**31
    )


def nearest_code_triton(x: Tensor, codebook: Tensor, fast: bool) -> Tensor:
    """Fused search; ``x [N, D]``/``[G, N, D]``, ``codebook [K, D]``/``[G, K, D]`` on CUDA.

    Returns int64 indices ``[N]`` (or ``[G, N]``), ties to the lowest index.
    """
    batched = x.dim() == 3
    xs = (x if batched else x[None]).contiguous()
    cs = (codebook if batched else codebook[None]).contiguous()
    chunks = row_chunks(xs.shape[2], fast)
    if fast and chunks["NUM_D_CHUNKS"] > 1:
        # Streamed rows are read again for every codebook tile: rounding them (and the codes)
        # to the product dtype first halves that traffic for float32 inputs, as the Hopper
        # kernel does (the half-norms then come from the rounded codes, as there). Measured
        # 2.2-2.6x faster at D = 320 to 1,024 with 128-column chunks (H100, graph-replayed,
        # benchmarks/results/nearest_code_h100_2026-11-23_copies.txt, part 1).
        dtype = fast_dtype(xs.dtype, cs.dtype)
        xs, cs = xs.to(dtype), cs.to(dtype)
    groups, n, d = xs.shape
    k = cs.shape[1]
    out = torch.empty(groups, n, dtype=torch.int64, device=x.device)
    grid = lambda meta: (cdiv(n, meta["BLOCK_N"]), groups)  # noqa: E731
    # Everything Triton specialises on: the integer arguments follow from the sizes, and the
    # output and half-norms are fresh (aligned) allocations.
    key = (
        x.device, xs.dtype, cs.dtype, groups, n, k, d,
        xs.data_ptr() % 16 == 0, cs.data_ptr() % 16 == 0,
    )  # fmt: skip
    with on_device(x.device):
        _search_launches[fast](
            key, grid, xs, cs, half_norms(cs), out, n, k, d, n * d, k * d,
            min(next_power_of_2(n), 1 << 16), next_power_of_2(k), **chunks, EXACT=not fast,
        )  # fmt: skip
    return out if batched else out[0]
