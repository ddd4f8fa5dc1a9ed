"""Quality metrics: perfect copies score best, noise scores worse, and the metric packages agree
with what their definitions say about simple cases."""

from __future__ import annotations

import math

import pytest
import torch

from vqcodec.eval import metrics


def _speechlike(rate: int = 16000, seconds: float = 3.0) -> torch.Tensor:
    torch.manual_seed(0)
    t = torch.arange(int(rate * seconds)) / rate
    envelope = (torch.sin(2 * math.pi * 3 * t) > 0).float() * 0.5 + 0.1  # syllable-like bursts
    voiced = sum(torch.sin(2 * math.pi * f * t) / k for k, f in enumerate([150, 300, 450, 900], 1))
    return envelope * voiced * 0.2 + 0.01 * torch.randn_like(t)


def test_identical_signals_score_best_and_noise_scores_worse() -> None:
    x = _speechlike()
    noisy = x + 0.05 * torch.randn_like(x)
    assert metrics.log_mel_distance(x, x, 16000) == pytest.approx(0.0, abs=1e-6)
    assert metrics.log_mel_distance(noisy, x, 16000) > 0.1
    assert metrics.si_sdr(x, x) > 100 and metrics.si_sdr(2 * x, x) > 100  # scale-invariant
    assert metrics.si_sdr(noisy, x) < 20
    pytest.importorskip("pystoi")
    assert metrics.stoi(x, x, 16000) == pytest.approx(1.0, abs=1e-6)
    assert metrics.stoi(noisy, x, 16000) < 0.99
    pytest.importorskip("pesq")
    clean = metrics.pesq_wideband(x, x, 16000)
    assert clean > 4.0 and metrics.pesq_wideband(noisy, x, 16000) < clean
