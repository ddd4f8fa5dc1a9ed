"""The training and evaluation losses against the libraries they replace."""

from __future__ import annotations

import pytest
import torch
import torchaudio

from vqcodec.train.losses import MelSpectrogram, MultiScaleMelLoss

SHAPES = [(24000, 512, 40), (24000, 2048, 160), (16000, 1024, 80), (22050, 1024, 80)]


@pytest.mark.parametrize(("rate", "n_fft", "n_mels"), SHAPES)
def test_mel_spectrogram_matches_torchaudio(rate: int, n_fft: int, n_mels: int) -> None:
    x = torch.randn(3, 1, 5000, generator=torch.Generator().manual_seed(n_fft))
    reference = torchaudio.transforms.MelSpectrogram(
        rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels, power=1.0, center=True
    )(x)
    ours = MelSpectrogram(rate, n_fft, n_mels)(x)
    assert ours.shape == reference.shape == (3, 1, n_mels, 5000 // (n_fft // 4) + 1)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)


def test_mel_loss_is_zero_for_equal_inputs_and_grows_with_noise() -> None:
    loss = MultiScaleMelLoss(24000)
    x = torch.randn(2, 1, 24000, generator=torch.Generator().manual_seed(0)) * 0.1
    small = loss(x + 0.001 * torch.randn_like(x), x)
    large = loss(x + 0.05 * torch.randn_like(x), x)
    assert float(loss(x, x)) == 0.0 and 0 < float(small) < float(large)
