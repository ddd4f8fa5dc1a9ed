"""The Hopper kernel's launch choices (no GPU needed: only which kernel and tiles a call gets)."""

from __future__ import annotations

import pytest

pytest.importorskip("triton.experimental.gluon", reason="this Triton has no Gluon")


def test_warp_specialized_tiles_have_two_consumers_rows_and_two_buffers() -> None:
    from vqcodec.kernels.gluon_nearest_code import TileConfig

    with pytest.raises(ValueError, match="128 rows"):
        TileConfig(64, 128, 4, x_buffers=2, warp_specialized=True)
    # With one row buffer a consumer would wait for its next rows before freeing the buffer.
    with pytest.raises(ValueError, match="x_buffers=2"):
        TileConfig(128, 128, 4, x_buffers=1, warp_specialized=True)
    with pytest.raises(ValueError, match="norms"):
        TileConfig(128, 128, 4, x_buffers=2, column_norms=True, warp_specialized=True)
    # Only the warp-specialised consumers multiply the half-norm terms.
    with pytest.raises(ValueError, match="warp-specialised"):
        TileConfig(64, 128, 2, norms_in_product=True)


@pytest.mark.parametrize(
    "d,expected", [(8, False), (16, False), (24, True), (32, True), (40, True), (128, True)]
)
def test_warp_specialized_launches_multiply_the_half_norms_from_d_32(
    d: int, expected: bool
) -> None:
    """The extra k step costs a product 16/D_pad more: measured slower at D = 8 (padded to 16),
    faster at D = 32, 64 and 128 (``NORMS_IN_PRODUCT_MIN_D``)."""
    from vqcodec.kernels.gluon_nearest_code import default_config

    config = default_config(d, 4096, 2**20)
    assert config.warp_specialized
    assert config.norms_in_product is expected


@pytest.mark.parametrize(
    "d,k,rows,expected",
    [
        (64, 65536, 65536, True),
        (128, 1024, 2**19, True),
        (8, 1024, 2**18, True),
        (128, 1024, 32768, False),  # too few (row, code) pairs
        (256, 16384, 65536, False),  # D > 128: four tiles and four row buffers do not fit
        (64, 256, 2**20, False),  # two codebook tiles: padding would cost a third product
        (64, 257, 2**20, True),
    ],
)
def test_warp_specialized_kernel_takes_large_searches_of_three_tiles_or_more(
    d: int, k: int, rows: int, expected: bool
) -> None:
    from vqcodec.kernels.gluon_nearest_code import default_config

    assert default_config(d, k, rows).warp_specialized is expected


@pytest.mark.parametrize(
    "k,plain,warp_specialized", [(1, 1, 3), (200, 2, 3), (257, 3, 3), (1000, 8, 8)]
)
def test_warp_specialized_launches_search_at_least_three_codebook_tiles(
    k: int, plain: int, warp_specialized: int
) -> None:
    from vqcodec.kernels.gluon_nearest_code import TileConfig, searched_tiles

    assert searched_tiles(k, TileConfig(64, 128, 2)) == plain
    ws = TileConfig(128, 128, 4, x_buffers=2, warp_specialized=True)
    assert searched_tiles(k, ws) == warp_specialized


def test_unchecked_descriptors_match_checked_ones() -> None:
    import torch

    from vqcodec.kernels import gluon_nearest_code as hopper

    shape = hopper._descriptor_shape((300, 64), (64, 64), hopper.gl.bfloat16, torch.bfloat16)
    t = torch.zeros(300, 64, dtype=torch.bfloat16)
    fast = hopper._descriptor(t, shape)
    checked = hopper.TensorDescriptor(t, [300, 64], [64, 1], [64, 64], shape.layout)
    assert fast.base is t
    for field in ("shape", "strides", "block_shape", "layout", "padding"):
        assert getattr(fast, field) == getattr(checked, field), field


def test_descriptor_shapes_are_checked_once_by_tensor_descriptor() -> None:
    import torch

    from vqcodec.kernels import gluon_nearest_code as hopper

    # Rows of 4 bf16 values are 8 bytes: TMA needs 16-byte strides.
    with pytest.raises(AssertionError, match="16-byte"):
        hopper._descriptor_shape((300, 4), (64, 16), hopper.gl.bfloat16, torch.bfloat16)
