"""Discriminators for adversarial codec training: a multi-scale STFT discriminator for audio
(EnCodec, arXiv 2210.13438, section 3.4) and a patch discriminator for images (pix2pix,
arXiv 1611.07004; VQGAN, arXiv 2012.09841).

Every discriminator returns a list of :class:`Judgement` (one per scale or sub-network): its
logits, and the activations of its hidden layers for feature matching. Neither uses batch
statistics, so processes training with data parallelism never disagree about a buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from vqcodec.train.spectrum import centred_stft


@dataclass
class Judgement:
    """One sub-discriminator's verdict: ``logits`` (any shape, one per patch or frame) and the
    hidden activations ``features`` that feature matching compares."""

    logits: Tensor
    features: list[Tensor]


class STFTDiscriminator(nn.Module):
    """Judges one complex STFT resolution of a waveform: real and imaginary parts as two image
    channels ``[B, 2, frames, bins]``, 2-D convolutions dilated in time and strided in frequency."""

    def __init__(self, window: int, filters: int = 32, dilations: tuple[int, ...] = (1, 2, 4)):
        super().__init__()
        self.window = window
        self.register_buffer("hann", torch.hann_window(window), persistent=False)
        layers = [weight_norm(nn.Conv2d(2, filters, (3, 9), padding=(1, 4)))]
        for d in dilations:
            layers.append(
                weight_norm(
                    nn.Conv2d(filters, filters, (3, 9), stride=(1, 2), dilation=(d, 1),
                              padding=(d, 4))
                )
            )  # fmt: skip
        layers.append(weight_norm(nn.Conv2d(filters, filters, (3, 3), padding=(1, 1))))
        self.layers = nn.ModuleList(layers)
        self.post = weight_norm(nn.Conv2d(filters, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: Tensor) -> Judgement:
        """``x [B, 1, T]`` -> logits ``[B, 1, frames, bins']``."""
        spec = centred_stft(
            x.float().reshape(-1, x.shape[-1]),
            self.window,
            self.window // 4,
            self.hann,
            normalized=True,
        )  # [B, bins, frames]
        h = torch.stack([spec.real, spec.imag], 1).transpose(2, 3)  # [B, 2, frames, bins]
        features = []
        for layer in self.layers:
            h = nn.functional.leaky_relu(layer(h), 0.2)
            features.append(h)
        return Judgement(self.post(h), features)


class MultiScaleSTFTDiscriminator(nn.Module):
    """EnCodec's MS-STFTD: one :class:`STFTDiscriminator` per window size (hop = window / 4)."""

    def __init__(
        self, windows: tuple[int, ...] = (2048, 1024, 512, 256, 128), filters: int = 32
    ) -> None:
        super().__init__()
        self.scales = nn.ModuleList(STFTDiscriminator(w, filters) for w in windows)

    def forward(self, x: Tensor) -> list[Judgement]:
        """``x [B, 1, T]`` (T at least the largest window / 2) -> one judgement per window."""
        return [scale(x) for scale in self.scales]


class PatchDiscriminator(nn.Module):
    """A PatchGAN: each output logit judges one overlapping patch (70 × 70 pixels with the
    default three strided layers). Group norm instead of pix2pix's batch norm (no running
    statistics to drift between processes).

    Args:
        channels: image channels.
        width: channels of the first layer; each further layer doubles them (up to 8×).
        layers: stride-2 layers (the patch grows with each).
    """

    def __init__(self, channels: int = 3, width: int = 64, layers: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv2d(channels, width, 4, stride=2, padding=1)]
        c = width
        for i in range(1, layers + 1):
            out = width * min(2**i, 8)
            stride = 2 if i < layers else 1
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(c, out, 4, stride=stride, padding=1, bias=False),
                    nn.GroupNorm(min(32, out // 4), out),
                )
            )
            c = out
        self.blocks = nn.ModuleList(blocks)
        self.post = nn.Conv2d(c, 1, 4, stride=1, padding=1)

    def forward(self, x: Tensor) -> list[Judgement]:
        """``x [B, C, H, W]`` in ``[0, 1]`` -> one judgement with logits ``[B, 1, H', W']``."""
        h = 2 * x - 1
        features = []
        for block in self.blocks:
            h = nn.functional.leaky_relu(block(h), 0.2)
            features.append(h)
        return [Judgement(self.post(h), features)]
