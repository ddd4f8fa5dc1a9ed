"""ResidualQuantizer: any number of levels, quantizer dropout, any inner quantizer."""

from __future__ import annotations

import pytest
import torch

from vqcodec.quantizers import FiniteScalarQuantizer, ResidualQuantizer, VectorQuantizer


def trained_rvq() -> ResidualQuantizer:
    rvq = ResidualQuantizer(8, 64, 4, kmeans_init=True)
    data = torch.randn(16, 8, 64)
    for _ in range(3):
        rvq(data)
    return rvq.eval()


def test_encode_and_decode_at_any_number_of_levels() -> None:
    rvq = trained_rvq()
    z = torch.randn(2, 8, 50)
    full = rvq.encode(z)
    errors = []
    for n in range(1, 5):
        codes = rvq.encode(z, num_levels=n)
        assert codes.shape == (2, n, 50)
        assert torch.equal(codes, full[:, :n])  # a prefix of the full codes
        errors.append(float((rvq.decode(codes) - z).pow(2).mean()))
    # Each level quantizes what the previous left, so the error falls level by level.
    assert all(later < earlier for earlier, later in zip(errors, errors[1:]))


def test_num_levels_out_of_range() -> None:
    rvq = ResidualQuantizer(8, 16, 3)
    with pytest.raises(ValueError):
        rvq.encode(torch.randn(1, 8, 4), num_levels=4)
    with pytest.raises(ValueError):
        rvq.encode(torch.randn(1, 8, 4), num_levels=0)


def test_quantizer_dropout_masks_levels_per_item_in_training_only() -> None:
    # Loss-learned codebooks without dead-code replacement do not change during forward, so the
    # levels can be decoded afterwards with the codebooks forward used.
    rvq = ResidualQuantizer(
        8, 16, 4, quantizer_dropout=1.0, codebook_learning="loss", dead_code_threshold=0
    )
    z = torch.randn(64, 8, 5)
    out = rvq(z)
    # With every item dropped to n ~ U{1..4} levels, its z_q is the sum of its first n levels.
    level_outputs = [rvq.levels[i].decode(out.codes[:, i : i + 1]) for i in range(4)]
    partial_sums = torch.stack(level_outputs).cumsum(0)  # [4, B, D, T]
    matches = [
        next(n for n in range(4) if torch.allclose(partial_sums[n, b], out.z_q[b], atol=1e-5))
        for b in range(64)
    ]
    assert len(set(matches)) > 1  # several bitrates were drawn
    rvq.eval()
    assert torch.allclose(rvq(z).z_q, rvq.decode(rvq.encode(z)))


def test_residual_of_fsq_levels() -> None:
    rvq = ResidualQuantizer(
        8, 125, 2, factory=lambda dim, size: FiniteScalarQuantizer([5, 5, 5], dim=dim)
    ).eval()
    z = torch.randn(3, 8, 7)
    codes = rvq.encode(z)
    assert codes.shape == (3, 2, 7)
    assert torch.equal(rvq.decode(codes), rvq(z).z_q)


def test_mismatched_inner_quantizer_is_rejected() -> None:
    with pytest.raises(ValueError):
        ResidualQuantizer(
            8, 100, 2, factory=lambda dim, size: FiniteScalarQuantizer([5, 5, 5], dim=dim)
        )


def test_gradient_reaches_input_through_all_levels() -> None:
    rvq = ResidualQuantizer(8, 16, 3, estimator="straight_through")
    z = torch.randn(2, 8, 6, requires_grad=True)
    g = torch.randn(2, 8, 6)
    (rvq(z).z_q * g).sum().backward()
    # With straight-through levels the stack as a whole passes the gradient unchanged.
    assert torch.allclose(z.grad, g, atol=1e-6)


def test_levels_are_independent_modules() -> None:
    rvq = ResidualQuantizer(8, 16, 3)
    assert all(isinstance(level, VectorQuantizer) for level in rvq.levels)
    assert len({id(level.codebook) for level in rvq.levels}) == 3
