"""What the Triton launchers work out from sizes alone (CPU: nothing is launched)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from vqcodec.kernels import certified_nearest_code as certified  # noqa: E402
from vqcodec.kernels import split_nearest_code as split  # noqa: E402
from vqcodec.kernels import triton_nearest_code as fused  # noqa: E402


@pytest.mark.parametrize(
    "d,fast,expected",
    [
        (1, True, (16, 1)),  # padded to one 16-wide k step
        (129, True, (256, 1)),  # resident up to 256 in fast mode
        (300, True, (64, 8)),  # 512 padded, streamed in 64 columns
        (129, False, (64, 4)),  # tf32x3 keeps at most 128 resident
        (128, False, (128, 1)),
        (520, False, (64, 16)),
    ],
)
def test_row_chunks_cover_the_padded_features(d: int, fast: bool, expected: tuple) -> None:
    chunks = fused.row_chunks(d, fast)
    assert (chunks["D_CHUNK"], chunks["NUM_D_CHUNKS"]) == expected
    assert chunks["D_CHUNK"] * chunks["NUM_D_CHUNKS"] >= d


@pytest.mark.parametrize(
    "d,expected",
    [(1, (16, 1)), (128, (128, 1)), (129, (64, 4)), (300, (64, 8)), (1030, (64, 32))],
)
def test_split_search_keeps_rows_up_to_128_on_chip(d: int, expected: tuple) -> None:
    chunks = split.row_chunks(d)
    assert (chunks["D_CHUNK"], chunks["NUM_D_CHUNKS"]) == expected


def test_certified_search_takes_only_large_exact_searches() -> None:
    def preferred(n: int, k: int, d: int, groups: int = 1) -> bool:
        return certified.preferred(torch.empty(groups, n, d), torch.empty(groups, k, d))

    assert preferred(65536, 4096, 128)  # 2^35 multiply-adds
    assert not preferred(65535, 4096, 128)
    assert not preferred(65536, 4096, 64)  # 2^34: with 4,096 codes the split search is faster
    assert preferred(16384, 16384, 64)  # 2^34 with 16,384 codes
    assert not preferred(16384, 16383, 64)
    assert not preferred(1 << 20, 1024, 128)  # few codes: the split search measured faster
    assert not preferred(262144, 16384, 16)  # small D
    assert preferred(16384, 4096, 128, groups=4)  # the groups' work counts together
    assert preferred(65536, 4096, 257)  # rows streamed along D
    assert preferred(8192, 16384, 512)


@pytest.mark.parametrize(
    "groups,k,d", [(1, 16384, 256), (1, 262144, 256), (4, 70000, 64), (1, 65536, 384)]
)
def test_slices_fit_the_bound_and_start_on_tile_boundaries(groups: int, k: int, d: int) -> None:
    per_slice = certified.per_slice(groups, k, d, certified.SLICE_BYTES)
    assert 2 * groups * per_slice * d <= certified.SLICE_BYTES
    assert per_slice == k or per_slice % certified.SLICE_ALIGN == 0
    for config in certified.CANDIDATE_CONFIGS:  # tile entries record widths in 64s
        assert certified.SLICE_ALIGN % config.kwargs["BLOCK_K"] == 0
        assert certified.SLICE_ALIGN % config.kwargs["BLOCK_N"] == 0  # row slices too
        assert config.kwargs["BLOCK_K"] % 64 == 0
        assert config.kwargs["BLOCK_K"] <= 128  # the hit tally's column fields (7 bits)


def test_small_codebooks_are_one_slice_and_many_groups_still_get_a_slice() -> None:
    assert certified.per_slice(1, 16384, 256, certified.SLICE_BYTES) == 16384  # 8 MiB of fp16
    assert certified.per_slice(1, 262144, 256, certified.SLICE_BYTES) == 32768  # 16 MiB a slice
    assert certified.per_slice(64, 10**6, 256, certified.SLICE_BYTES) == 512
    assert (
        certified.per_slice(256, 10**6, 256, certified.SLICE_BYTES) == certified.SLICE_ALIGN
    )  # over 16 MiB


def test_wide_rows_are_copied_in_larger_slices_than_codes() -> None:
    rows = certified.ROW_SLICE_BYTES
    assert certified.per_slice(1, 65536, 512, rows) == 65536  # 64 MiB of fp16: one launch
    assert certified.per_slice(1, 65536, 1024, rows) == 32768
    assert certified.per_slice(1, 65536, 512, certified.SLICE_BYTES) == 16384


def test_slices_are_equal_rather_than_leaving_a_short_last_one() -> None:
    # 21,760 rows of 384 features fit in 16 MiB: four slices of 16,384, not three and then 256
    assert certified.per_slice(1, 65536, 384, certified.SLICE_BYTES) == 16384
    # 3 slices of 21,760 at most: 20,000 each, rounded up to a multiple of 256
    assert certified.per_slice(1, 60000, 384, certified.SLICE_BYTES) == 20224
    assert certified.per_slice(1, 21761, 384, certified.SLICE_BYTES) == 11008


def test_error_bound_grows_with_the_features_summed() -> None:
    beta_64, gamma_64, tiny_64 = certified.error_factors(64)
    beta_256, gamma_256, tiny_256 = certified.error_factors(256)
    # fp16 rounding of both operands dominates β: at least 2·2⁻¹¹
    assert 2 * 2.0**-11 < beta_64 < beta_256 < 2 * 2.0**-10
    assert gamma_64 < gamma_256 < beta_256 and tiny_64 < tiny_256


def test_fast_mode_multiplies_in_fp16_only_when_both_inputs_are_fp16() -> None:
    assert fused.fast_dtype(torch.float16, torch.float16) == torch.float16
    assert fused.fast_dtype(torch.float16, torch.float32) == torch.bfloat16  # fp16's range
    assert fused.fast_dtype(torch.float32, torch.float32) == torch.bfloat16
    assert fused.fast_dtype(torch.bfloat16, torch.float16) == torch.bfloat16
