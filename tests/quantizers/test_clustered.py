"""CVQ: anchor pulls only in training, driven by usage; collapsed codebooks recover."""

from __future__ import annotations

import pytest
import torch

from vqcodec.quantizers import ClusteredVectorQuantizer


def test_codebook_moves_only_in_training() -> None:
    cvq = ClusteredVectorQuantizer(8, 16)
    z = torch.randn(4, 8, 10)
    before = cvq.codebook.detach().clone()
    cvq.eval()
    cvq(z)
    assert torch.equal(before, cvq.codebook)
    cvq.train()
    cvq(z)
    assert not torch.equal(before, cvq.codebook)


def test_unused_codes_jump_to_anchors_and_used_codes_barely_move() -> None:
    cvq = ClusteredVectorQuantizer(4, 8)
    with torch.no_grad():
        cvq.codebook.copy_(torch.randn(8, 4))
        cvq.codebook[1:] += 50.0  # unreachable: unused
    data = torch.randn(256, 4)
    before = cvq.codebook.detach().clone()
    cvq(data)
    moved = (cvq.codebook.detach() - before).norm(dim=-1)
    assert float(moved[0]) < 1e-3  # code 0 took every assignment: α ≈ e^-1000
    assert float(moved[1:].min()) > 40  # the others jumped to the data
    nearest = torch.cdist(cvq.codebook[1:].detach(), data).min(dim=1).values
    # α = e^-0.001 keeps 0.1% of the old position (~100 away): within 0.2 of a batch feature.
    assert float(nearest.max()) < 0.2


@pytest.mark.parametrize("anchor,steps", [("closest", 40), ("random", 5)])
def test_collapsed_codebook_recovers_usage(anchor: str, steps: int) -> None:
    # With identical codes every "closest" anchor is the same feature, so codes separate about
    # one per step (as in the reference implementation); random anchors separate them at once.
    cvq = ClusteredVectorQuantizer(8, 32, anchor=anchor)
    with torch.no_grad():
        cvq.codebook.copy_(torch.zeros(32, 8) + torch.randn(1, 8))
    data = torch.randn(1024, 8)
    cvq.eval()
    start = float(cvq(data).metrics["code_usage"])
    cvq.train()
    for _ in range(steps):
        cvq(data[torch.randperm(1024)[:256]])
    cvq.eval()
    assert start == 1 / 32
    assert float(cvq(data).metrics["code_usage"]) > 0.9


def test_random_anchor_mode() -> None:
    cvq = ClusteredVectorQuantizer(8, 16, anchor="random")
    out = cvq(torch.randn(2, 8, 50))
    assert out.codes.shape == (2, 1, 50)
