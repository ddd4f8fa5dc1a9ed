"""Reconstruction losses: audio (multi-scale log-mel, multi-resolution STFT, waveform L1) and
images (L1, L2, MS-SSIM)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio
from torch import Tensor, nn
from torch.nn import functional as F

from vqcodec.train.spectrum import centred_stft


class MelSpectrogram(nn.Module):
    """Magnitude mel spectrogram, ``[..., T] -> [..., n_mels, frames]``.

    The same numbers as ``torchaudio.transforms.MelSpectrogram(sample_rate, n_fft,
    hop_length=n_fft // 4, n_mels, power=1.0)`` (tested), written with ``torch.stft`` and one
    matrix product so that ``torch.compile`` traces it without graph breaks (torchaudio's
    ``spectrogram`` breaks the graph on every call).
    """

    def __init__(self, sample_rate: int, n_fft: int, n_mels: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        filters = torchaudio.functional.melscale_fbanks(
            n_fft // 2 + 1, 0.0, float(sample_rate // 2), n_mels, sample_rate
        )  # [freqs, n_mels]; torchaudio's default f_max is sample_rate // 2
        self.register_buffer("filters", filters, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        # [B, freqs, frames]
        spec = centred_stft(x.reshape(-1, x.shape[-1]), self.n_fft, self.hop, self.window).abs()
        mel = torch.matmul(spec.transpose(-1, -2), self.filters).transpose(-1, -2)
        return mel.reshape(*x.shape[:-1], *mel.shape[-2:])


class MultiScaleMelLoss(nn.Module):
    """Mean L1 distance of log-mel spectrograms at several window sizes (DAC, EnCodec)."""

    def __init__(
        self,
        sample_rate: int,
        windows: tuple[int, ...] = (512, 1024, 2048),
        mels: tuple[int, ...] = (40, 80, 160),
    ) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(
            MelSpectrogram(sample_rate, w, m) for w, m in zip(windows, mels)
        )

    def forward(self, x_hat: Tensor, x: Tensor) -> Tensor:
        x_hat, x = x_hat.float(), x.float()
        total = x.new_zeros(())
        for mel in self.transforms:
            total = total + F.l1_loss(torch.log(mel(x_hat) + 1e-5), torch.log(mel(x) + 1e-5))
        return total / len(self.transforms)


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence plus log-magnitude L1, averaged over STFT resolutions."""

    def __init__(self, windows: tuple[int, ...] = (256, 512, 1024, 2048)) -> None:
        super().__init__()
        self.windows = windows
        for w in windows:
            self.register_buffer(f"window_{w}", torch.hann_window(w), persistent=False)

    def _magnitude(self, x: Tensor, w: int) -> Tensor:
        spec = centred_stft(x.reshape(-1, x.shape[-1]), w, w // 4, getattr(self, f"window_{w}"))
        return spec.abs().clamp_min(1e-7)

    def forward(self, x_hat: Tensor, x: Tensor) -> Tensor:
        x_hat, x = x_hat.float(), x.float()
        total = x.new_zeros(())
        for w in self.windows:
            a, b = self._magnitude(x_hat, w), self._magnitude(x, w)
            convergence = torch.linalg.norm(a - b) / torch.linalg.norm(b).clamp_min(1e-7)
            total = total + convergence + F.l1_loss(a.log(), b.log())
        return total / len(self.windows)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the training loss terms."""

    mel: float = 1.0
    stft: float = 1.0
    waveform: float = 0.1
    quantizer: float = 1.0


@dataclass
class LossTerms:
    """The total and each weighted term's value (for logging)."""

    total: Tensor
    terms: dict[str, Tensor]


class AudioReconstructionLoss(nn.Module):
    """``mel + stft + waveform L1 + quantizer`` with :class:`LossWeights`."""

    def __init__(self, sample_rate: int, weights: LossWeights = LossWeights()) -> None:
        super().__init__()
        self.weights = weights
        self.mel = MultiScaleMelLoss(sample_rate)
        self.stft = MultiResolutionSTFTLoss()

    def forward(self, x_hat: Tensor, x: Tensor, quantizer_loss: Tensor) -> LossTerms:
        terms = {
            "mel": self.mel(x_hat, x),
            "stft": self.stft(x_hat, x),
            "waveform": F.l1_loss(x_hat.float(), x.float()),
            "quantizer": quantizer_loss.float(),
        }
        total = sum(getattr(self.weights, name) * value for name, value in terms.items())
        return LossTerms(total, {name: value.detach() for name, value in terms.items()})


@dataclass(frozen=True)
class ImageLossWeights:
    """Weights of the image training loss terms (images in ``[0, 1]``)."""

    l1: float = 1.0
    l2: float = 0.0
    ms_ssim: float = 0.5
    quantizer: float = 1.0


class ImageReconstructionLoss(nn.Module):
    """``l1 + l2 + (1 - MS-SSIM) + quantizer`` with :class:`ImageLossWeights`.

    MS-SSIM (Wang et al. 2003, five scales, via ``pytorch_msssim``) needs crops of at least
    161 pixels per side.
    """

    def __init__(self, weights: ImageLossWeights = ImageLossWeights()) -> None:
        super().__init__()
        self.weights = weights

    def forward(self, x_hat: Tensor, x: Tensor, quantizer_loss: Tensor) -> LossTerms:
        from pytorch_msssim import ms_ssim

        x_hat, x = x_hat.float(), x.float()
        terms = {
            "l1": F.l1_loss(x_hat, x),
            "l2": F.mse_loss(x_hat, x),
            "quantizer": quantizer_loss.float(),
        }
        if self.weights.ms_ssim > 0:
            terms["ms_ssim"] = 1 - ms_ssim(x_hat.clamp(0, 1), x, data_range=1.0)
        total = sum(getattr(self.weights, name) * value for name, value in terms.items())
        return LossTerms(total, {name: value.detach() for name, value in terms.items()})
