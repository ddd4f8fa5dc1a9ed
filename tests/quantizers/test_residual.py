"""ResidualQuantizer: any number of levels, quantizer dropout, any inner quantizer."""

from __future__ import annotations

import copy

import pytest
import torch

import vqcodec.quantizers.grouped as grouped_module
import vqcodec.quantizers.residual as residual_module
from vqcodec.quantizers import (
    FiniteScalarQuantizer,
    GroupedQuantizer,
    ResidualQuantizer,
    VectorQuantizer,
)
from vqcodec.quantizers.vector import updates_together


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


def _one_level_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ResidualQuantizer run each level's own forward (its own codebook update)."""
    monkeypatch.setattr(residual_module, "updates_together", lambda levels: False)


@pytest.mark.parametrize("learning", ["ema", "loss"])
def test_stacked_codebook_update_equals_one_level_at_a_time(
    monkeypatch: pytest.MonkeyPatch, learning: str
) -> None:
    # No dead-code replacement: it draws random rows, in another order when stacked.
    torch.manual_seed(0)
    stacked = ResidualQuantizer(8, 32, 3, codebook_learning=learning, dead_code_threshold=0)
    separate = copy.deepcopy(stacked)
    assert updates_together(stacked.levels)
    z = torch.randn(4, 8, 50)
    outputs = [stacked(z) for _ in range(3)]
    _one_level_at_a_time(monkeypatch)
    expected = [separate(z) for _ in range(3)]
    for out, ref in zip(outputs, expected):
        assert torch.equal(out.codes, ref.codes)
        assert torch.allclose(out.z_q, ref.z_q, atol=1e-6)
        assert out.metrics.keys() == ref.metrics.keys()
        for name, value in ref.metrics.items():
            assert torch.allclose(out.metrics[name], value, atol=1e-6), name
    state, reference = stacked.state_dict(), separate.state_dict()
    assert state.keys() == reference.keys()
    for name, value in reference.items():
        assert torch.allclose(state[name].float(), value.float(), atol=1e-6), name


def test_stacked_update_revives_dead_codes_of_every_level() -> None:
    torch.manual_seed(0)
    rvq = ResidualQuantizer(8, 32, 3, decay=0.9)
    with torch.no_grad():
        for level in rvq.levels:  # every code of every level identical: all but one dead
            level.codebook.copy_(torch.zeros(32, 8) + torch.randn(1, 8))
            level.ema_sum.copy_(level.codebook)
    data = torch.randn(64, 8, 8)
    first = rvq(data).metrics
    assert [float(first[f"level{i}/dead_codes"]) for i in range(3)] == [31.0] * 3
    for _ in range(20):
        rvq(data)
    rvq.eval()
    usage = rvq(data).metrics
    assert all(float(usage[f"level{i}/code_usage"]) > 0.9 for i in range(3))


def test_levels_of_different_settings_are_updated_one_at_a_time() -> None:
    rvq = ResidualQuantizer(8, 32, 2)
    assert updates_together(rvq.levels)
    rvq.levels[1].decay = 0.5
    assert not updates_together(rvq.levels)
    rvq(torch.randn(2, 8, 10))  # trains, each level with its own update
    assert [int(level.usage.steps) for level in rvq.levels] == [1, 1]
    fsq = ResidualQuantizer(3, 125, 2, factory=lambda d, k: FiniteScalarQuantizer([5, 5, 5], dim=d))
    assert not updates_together(fsq.levels)


def test_grouped_training_update_equals_one_group_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch.manual_seed(0)
    stacked = GroupedQuantizer(8, 32, 4, dead_code_threshold=0)
    separate = copy.deepcopy(stacked)
    z = torch.randn(4, 8, 30)
    outputs = [stacked(z) for _ in range(3)]
    monkeypatch.setattr(grouped_module, "updates_together", lambda groups: False)
    expected = [separate(z) for _ in range(3)]
    for out, ref in zip(outputs, expected):
        assert torch.equal(out.codes, ref.codes)
        for name, value in ref.metrics.items():
            assert torch.allclose(out.metrics[name], value, atol=1e-6), name
    for name, value in separate.state_dict().items():
        assert torch.allclose(stacked.state_dict()[name].float(), value.float(), atol=1e-6), name
