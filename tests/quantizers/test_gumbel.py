"""GumbelQuantizer (HQA): the loss terms, temperature schedule, inference modes, code reset."""

from __future__ import annotations

import math

import pytest
import torch

from vqcodec.quantizers import GumbelQuantizer


def test_loss_is_weighted_kl_plus_probability_weighted_commitment() -> None:
    gq = GumbelQuantizer(4, 8, kl_weight=1.0, commitment_weight=0.0)
    rows = torch.randn(50, 4)
    d = torch.cdist(rows, gq.codebook.detach()).pow(2)
    q = torch.softmax(-d, dim=-1)
    kl = (q * (q.log() + math.log(8))).sum(-1).mean()  # KL(q || uniform)
    assert torch.allclose(gq(rows).loss, kl, atol=1e-5)
    gq = GumbelQuantizer(4, 8, kl_weight=0.0, commitment_weight=1.0)
    gq.codebook.data.copy_(torch.randn(8, 4))
    d = torch.cdist(rows, gq.codebook.detach()).pow(2)
    expected = (torch.softmax(-d, -1) * d).sum(-1).mean()
    assert torch.allclose(gq(rows).loss, expected, rtol=1e-4)


def test_training_output_is_a_soft_mixture_and_trains_the_codebook() -> None:
    gq = GumbelQuantizer(4, 8)
    z = torch.randn(2, 4, 10, requires_grad=True)
    out = gq(z)
    codebook_rows = {tuple(row.tolist()) for row in gq.codebook.detach()}
    assert any(
        tuple(v.tolist()) not in codebook_rows
        for v in out.z_q.detach().transpose(1, 2).reshape(-1, 4)
    )
    (out.z_q.sum() + out.loss).backward()
    assert gq.codebook.grad is not None and z.grad is not None


def test_temperature_schedule_is_linear_from_start_to_end() -> None:
    gq = GumbelQuantizer(4, 8)
    assert gq.anneal(0.0) == pytest.approx(0.667)
    assert gq.anneal(0.5) == pytest.approx((0.667 + 0.001) / 2)
    assert gq.anneal(1.0) == pytest.approx(0.001)
    assert gq.anneal(2.0) == pytest.approx(0.001)


def test_argmax_inference_is_deterministic_and_sampling_is_not() -> None:
    z = torch.randn(1, 4, 2000) * 0.1  # near the codes' scale: the posterior is not peaked
    argmax = GumbelQuantizer(4, 8).eval()
    assert torch.equal(argmax.encode(z), argmax.encode(z))
    sampler = GumbelQuantizer(4, 8, inference="sample").eval()
    sampler.load_state_dict(argmax.state_dict())
    assert not torch.equal(sampler.encode(z), sampler.encode(z))


def test_least_used_code_is_moved_to_the_most_used() -> None:
    gq = GumbelQuantizer(4, 8, dead_code_interval=5)
    data = torch.randn(256, 4) * 0.3
    with torch.no_grad():
        gq.codebook[:7] = data[:7]  # codes 0-6 sit on the data and are all used
        gq.codebook[7] = 100.0  # never chosen
    for _ in range(6):  # the check runs at the start of the step after the 5th update
        gq(data)
    assert float(gq.codebook[7].detach().abs().max()) < 10
