"""A SEANet-style convolutional audio codec (EnCodec, arXiv 2210.13438; DAC, arXiv 2306.06546)
with a residual quantizer and quantizer dropout, so one model serves several bitrates."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import torchaudio
from torch import Tensor, nn
from torch.nn import functional as F

from vqcodec.codecs.blocks import PaddedConv1d, decoder_block, encoder_block
from vqcodec.config import check
from vqcodec.quantizers import ResidualQuantizer


@dataclass(frozen=True)
class AudioCodecConfig:
    """Architecture of :class:`AudioCodec`.

    Attributes:
        sample_rate: rate of the waveform the model codes (Hz).
        channels: width of the first convolution; each downsampling stage doubles it.
        strides: downsampling factors; their product is the hop (samples per code frame).
        latent_dim: channels of the latent entering the quantizer.
        codebook_size: codes per residual level.
        codebook_dim: low-dimensional, l2-normalised lookup space of each level (DAC).
        num_quantizers: residual levels at the full bitrate.
        quantizer_dropout: fraction of training items coded with a random number of levels.
        commitment_weight: β of the quantizer's commitment term.
        causal: causal convolutions (streaming-friendly) instead of centred ones.
        cosine: search and emit l2-normalised codes (direction only). Off by default: each level
            then codes a residual's magnitude as well as its direction (EnCodec's Euclidean RVQ).
        standardize_latent: standardise each latent channel with running statistics (batch
            norm without affine terms) before quantization. Without it the encoder's latent
            starts as a large shared offset with tiny variation, and the codebooks collapse
            onto a few codes (measured: 0.2% code usage after 600 steps); it plays the role of
            matching the codes to the latent's running mean and variance (Huh et al. 2023).
    """

    sample_rate: int = 24000
    channels: int = 16
    strides: tuple[int, ...] = field(default=(2, 4, 5, 8))
    latent_dim: int = 128
    codebook_size: int = 1024
    codebook_dim: int = 8
    num_quantizers: int = 8
    quantizer_dropout: float = 0.5
    commitment_weight: float = 0.25
    causal: bool = False
    cosine: bool = False
    standardize_latent: bool = True

    def __post_init__(self) -> None:
        for name in ("sample_rate", "channels", "latent_dim", "codebook_size", "codebook_dim",
                     "num_quantizers"):  # fmt: skip
            check(getattr(self, name) >= 1, name, "must be at least 1")
        check(len(self.strides) > 0 and min(self.strides) >= 1, "strides",
              "must be one or more factors of at least 1")  # fmt: skip
        check(0 <= self.quantizer_dropout <= 1, "quantizer_dropout", "must be in [0, 1]")
        check(self.commitment_weight >= 0, "commitment_weight", "must be 0 or more")


@dataclass
class CodecOutput:
    """What :meth:`AudioCodec.forward` returns.

    Attributes:
        x_hat: reconstruction ``[B, 1, T]`` (same length as the input).
        codes: ``[B, Q, T']`` int64.
        loss: the quantizer's auxiliary loss (scalar).
        metrics: quantizer telemetry.
    """

    x_hat: Tensor
    codes: Tensor
    loss: Tensor
    metrics: dict[str, Tensor]


class AudioCodec(nn.Module):
    """Waveform ``[B, 1, T]`` ↔ codes ``[B, Q, ceil(T / hop)]``.

    Attributes:
        name: registry name (``audio-24k`` for the shipped default).
        hop_length: samples per code frame.
        frame_rate: code frames per second.
    """

    def __init__(
        self, config: AudioCodecConfig = AudioCodecConfig(), name: str = "audio-custom"
    ) -> None:
        super().__init__()
        self.config, self.name = config, name
        c, causal = config.channels, config.causal
        widths = [c * 2**i for i in range(len(config.strides) + 1)]
        self.encoder = nn.Sequential(
            PaddedConv1d(1, c, 7, causal=causal),
            *(
                encoder_block(widths[i], widths[i + 1], s, causal)
                for i, s in enumerate(config.strides)
            ),
            nn.ELU(),
            PaddedConv1d(widths[-1], config.latent_dim, 3, causal=causal),
        )
        if config.standardize_latent:
            self.encoder.append(nn.BatchNorm1d(config.latent_dim, affine=False))
        self.quantizer = ResidualQuantizer(
            config.latent_dim,
            config.codebook_size,
            config.num_quantizers,
            quantizer_dropout=config.quantizer_dropout,
            codebook_dim=config.codebook_dim,
            cosine=config.cosine,
            kmeans_init=True,
            commitment_weight=config.commitment_weight,
        )
        self.decoder = nn.Sequential(
            PaddedConv1d(config.latent_dim, widths[-1], 7, causal=causal),
            *(
                decoder_block(widths[i + 1], widths[i], s, causal)
                for i, s in reversed(list(enumerate(config.strides)))
            ),
            nn.ELU(),
            PaddedConv1d(c, 1, 7, causal=causal),
        )

    @property
    def hop_length(self) -> int:
        return math.prod(self.config.strides)

    @property
    def frame_rate(self) -> float:
        return self.config.sample_rate / self.hop_length

    def bitrate(self, num_levels: int | None = None) -> float:
        """Bits per second before entropy coding with ``num_levels`` levels (default all)."""
        levels = num_levels or self.config.num_quantizers
        return self.frame_rate * levels * math.log2(self.config.codebook_size)

    def levels_for_bitrate(self, kbps: float) -> int:
        """The most levels whose raw bitrate does not exceed ``kbps`` (at least one)."""
        per_level = self.bitrate(1) / 1000
        return max(1, min(self.config.num_quantizers, int(kbps / per_level + 1e-9)))

    def _check(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"AudioCodec expects mono audio [B, 1, T], got {tuple(x.shape)}")
        return F.pad(x, (0, (-x.shape[-1]) % self.hop_length))

    def forward(self, x: Tensor) -> CodecOutput:
        """Training and evaluation pass on ``x [B, 1, T]``."""
        length = x.shape[-1]
        out = self.quantizer(self.encoder(self._check(x)))
        x_hat = self.decoder(out.z_q)
        return CodecOutput(x_hat[..., :length], out.codes, out.loss, out.metrics)

    def encode(self, x: Tensor, num_levels: int | None = None) -> Tensor:
        """Codes ``[B, n, ceil(T / hop)]`` for ``x [B, 1, T]`` using the first ``n`` levels."""
        return self.quantizer.encode(self.encoder(self._check(x)), num_levels)

    def decode(self, codes: Tensor) -> Tensor:
        """Waveform ``[B, 1, T' · hop]`` from codes ``[B, n, T']`` (any ``n`` ≤ levels)."""
        return self.decoder(self.quantizer.decode(codes))


@functools.lru_cache(maxsize=16)
def resampler(source: int, target: int) -> torchaudio.transforms.Resample:
    """torchaudio's windowed-sinc resampler between two rates (built once per pair)."""
    return torchaudio.transforms.Resample(source, target)


def resample(audio: Tensor, source_rate: int, target_rate: int) -> Tensor:
    """Resample ``[..., T]`` from ``source_rate`` to ``target_rate`` (torchaudio, windowed sinc)."""
    return audio if source_rate == target_rate else resampler(source_rate, target_rate)(audio)
