"""SimVQ: the codebook is frozen; only the linear layer learns, through the codebook term."""

from __future__ import annotations

import torch

from vqcodec.quantizers import SimVQ


def test_frozen_codebook_is_a_buffer_and_the_transform_trains() -> None:
    sim = SimVQ(8, 32)
    assert "frozen_codebook" in dict(sim.named_buffers())
    assert {name for name, _ in sim.named_parameters()} == {
        "codebook_transform.weight",
        "codebook_transform.bias",
    }
    out = sim(torch.randn(4, 8, 6))
    out.loss.backward()
    assert torch.count_nonzero(sim.codebook_transform.weight.grad) > 0


def test_codes_index_the_transformed_codebook() -> None:
    sim = SimVQ(8, 32).eval()
    z = torch.randn(2, 8, 5)
    codes = sim.encode(z)
    effective = sim.effective_codebook().detach()
    rows = z.transpose(1, 2).reshape(-1, 8)
    expected = torch.cdist(rows, effective).argmin(dim=1)
    assert torch.equal(codes.flatten(), expected)
