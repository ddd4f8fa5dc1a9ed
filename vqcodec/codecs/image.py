"""A convolutional image codec and tokenizer (VQGAN-style residual blocks, arXiv 2012.09841)
with residual quantization, so one model serves several bitrates.

The blocks carry no normalisation layers: GroupNorm would make every output depend on the whole
image, and large images could then not be coded in tiles whose codes match whole-image codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vqcodec.codecs.audio import CodecOutput
from vqcodec.codecs.blocks import context_windows
from vqcodec.config import check
from vqcodec.quantizers import FiniteScalarQuantizer, ResidualQuantizer, SimVQ


@dataclass(frozen=True)
class ImageCodecConfig:
    """Architecture of :class:`ImageCodec`.

    Attributes:
        channels: width of each stage; every stage halves the resolution, so the grid is
            ``2 ** len(channels)`` times smaller than the image on each side.
        latent_dim: channels of the latent entering the quantizer.
        quantizer: ``vq`` (rotation-trick VQ, EMA codebooks, k-means init), ``simvq`` or ``fsq``.
        codebook_size: codes per residual level (for ``fsq``: the product of ``fsq_levels``).
        codebook_dim: lookup-space dimension of ``vq`` (None: ``latent_dim``).
        fsq_levels: FSQ's levels per dimension.
        num_quantizers: residual levels at the full bitrate.
        quantizer_dropout: fraction of training items coded with a random number of levels.
        commitment_weight: β of the commitment term (``vq``, ``simvq``).
        standardize_latent: standardise latent channels with running statistics (see
            :class:`~vqcodec.codecs.audio.AudioCodecConfig`).
        tile: side of the tiles (pixels, a multiple of the grid factor) that large images are
            coded in; each tile is computed with ``tile_context`` grid cells of context per side.
        tile_context: grid cells of context around each tile (covers the receptive field).
    """

    channels: tuple[int, ...] = field(default=(32, 64, 128, 128))
    latent_dim: int = 32
    quantizer: Literal["vq", "simvq", "fsq"] = "vq"
    codebook_size: int = 1024
    codebook_dim: int | None = None
    fsq_levels: tuple[int, ...] = field(default=(4, 4, 4, 4, 4))
    num_quantizers: int = 8
    quantizer_dropout: float = 0.5
    commitment_weight: float = 0.25
    standardize_latent: bool = True
    tile: int = 512
    tile_context: int = 4

    def __post_init__(self) -> None:
        check(len(self.channels) > 0 and min(self.channels) >= 1, "channels",
              "must be one or more widths of at least 1")  # fmt: skip
        for name in ("latent_dim", "codebook_size", "num_quantizers"):
            check(getattr(self, name) >= 1, name, "must be at least 1")
        check(self.codebook_dim is None or self.codebook_dim >= 1, "codebook_dim",
              "must be at least 1 (or null)")  # fmt: skip
        check(len(self.fsq_levels) > 0 and min(self.fsq_levels) >= 2, "fsq_levels",
              "must be one or more levels of at least 2")  # fmt: skip
        check(0 <= self.quantizer_dropout <= 1, "quantizer_dropout", "must be in [0, 1]")
        check(self.commitment_weight >= 0, "commitment_weight", "must be 0 or more")
        factor = 2 ** len(self.channels)
        check(self.tile >= factor and self.tile % factor == 0, "tile",
              f"must be a positive multiple of the grid factor {factor}")  # fmt: skip
        check(self.tile_context >= 0, "tile_context", "must be 0 or more")
        if self.quantizer == "fsq":
            size = math.prod(self.fsq_levels)
            required = f"must equal the product of fsq_levels {list(self.fsq_levels)}: {size}"
            check(size == self.codebook_size, "codebook_size", required)


class ResidualBlock2d(nn.Module):
    """``x + conv(silu(conv(silu(x))))``, 3×3 convolutions."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _quantizer(config: ImageCodecConfig) -> ResidualQuantizer:
    common = dict(quantizer_dropout=config.quantizer_dropout)
    if config.quantizer == "vq":
        return ResidualQuantizer(
            config.latent_dim,
            config.codebook_size,
            config.num_quantizers,
            codebook_dim=config.codebook_dim,
            kmeans_init=True,
            commitment_weight=config.commitment_weight,
            **common,
        )
    if config.quantizer == "simvq":
        return ResidualQuantizer(
            config.latent_dim,
            config.codebook_size,
            config.num_quantizers,
            factory=SimVQ,
            commitment_weight=config.commitment_weight,
            **common,
        )
    if config.quantizer == "fsq":
        size = math.prod(config.fsq_levels)  # equal to codebook_size (checked by the config)
        levels = config.fsq_levels
        return ResidualQuantizer(
            config.latent_dim,
            size,
            config.num_quantizers,
            factory=lambda dim, _size: FiniteScalarQuantizer(levels, dim=dim),
            **common,
        )
    raise ValueError(f"unknown quantizer {config.quantizer!r} (vq, simvq or fsq)")


class ImageCodec(nn.Module):
    """RGB images ``[B, 3, H, W]`` in ``[0, 1]`` ↔ codes ``[B, Q, ceil(H/f), ceil(W/f)]``.

    As a tokenizer: ``codes = model.encode(images)``, ``images = model.decode(codes)``, with
    :attr:`vocab_size` tokens per level and :meth:`grid_shape` positions.

    Attributes:
        name: registry name (``image`` for the shipped default).
        factor: the downsampling factor ``f`` per side.
        vocab_size: codes per level.
    """

    def __init__(self, config: ImageCodecConfig = ImageCodecConfig(), name: str = "image-custom"):
        super().__init__()
        self.config, self.name = config, name
        widths = list(config.channels)
        stages: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, padding=1)]
        for i, width in enumerate(widths):
            out = widths[min(i + 1, len(widths) - 1)]
            stages += [ResidualBlock2d(width), nn.Conv2d(width, out, 4, stride=2, padding=1)]
        stages += [ResidualBlock2d(widths[-1]), nn.SiLU()]
        stages += [nn.Conv2d(widths[-1], config.latent_dim, 3, padding=1)]
        if config.standardize_latent:
            stages.append(nn.BatchNorm2d(config.latent_dim, affine=False))
        self.encoder = nn.Sequential(*stages)
        self.quantizer = _quantizer(config)
        layers: list[nn.Module] = [nn.Conv2d(config.latent_dim, widths[-1], 3, padding=1)]
        layers.append(ResidualBlock2d(widths[-1]))
        for i in reversed(range(len(widths))):
            source = widths[min(i + 1, len(widths) - 1)]
            layers += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(source, widths[i], 3, padding=1),
                ResidualBlock2d(widths[i]),
            ]
        layers += [nn.SiLU(), nn.Conv2d(widths[0], 3, 3, padding=1)]
        self.decoder = nn.Sequential(*layers)

    @property
    def factor(self) -> int:
        return 2 ** len(self.config.channels)

    @property
    def vocab_size(self) -> int:
        return self.config.codebook_size

    def grid_shape(self, height: int, width: int) -> tuple[int, int]:
        """Code grid ``(h, w)`` for an image of ``height × width`` pixels."""
        return math.ceil(height / self.factor), math.ceil(width / self.factor)

    def bits_per_pixel(self, num_levels: int | None = None) -> float:
        """Bits per pixel before entropy coding with ``num_levels`` levels (default all)."""
        levels = num_levels or self.config.num_quantizers
        return levels * math.log2(self.config.codebook_size) / self.factor**2

    def levels_for_bpp(self, bpp: float) -> int:
        """The most levels whose raw rate does not exceed ``bpp`` (at least one)."""
        per_level = self.bits_per_pixel(1)
        return max(1, min(self.config.num_quantizers, int(bpp / per_level + 1e-9)))

    def _prepare(self, x: Tensor) -> Tensor:
        """Scale to ``[-1, 1]`` and pad (edge replication) to a multiple of the factor."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"ImageCodec expects RGB images [B, 3, H, W], got {tuple(x.shape)}")
        f = self.factor
        pad = (0, (-x.shape[-1]) % f, 0, (-x.shape[-2]) % f)
        return F.pad(x * 2 - 1, pad, mode="replicate") if any(pad) else x * 2 - 1

    def _finish(self, y: Tensor) -> Tensor:
        return (y + 1) / 2

    def forward(self, x: Tensor) -> CodecOutput:
        """Training and evaluation pass on ``x [B, 3, H, W]``; ``x_hat`` is not clamped."""
        height, width = x.shape[-2:]
        out = self.quantizer(self.encoder(self._prepare(x)))
        x_hat = self._finish(self.decoder(out.z_q))[..., :height, :width]
        return CodecOutput(x_hat, out.codes, out.loss, out.metrics)

    def encode(self, x: Tensor, num_levels: int | None = None) -> Tensor:
        """Codes ``[B, n, ceil(H/f), ceil(W/f)]`` from the first ``n = num_levels`` levels."""
        return self.quantizer.encode(self.encoder(self._prepare(x)), num_levels)

    def decode(self, codes: Tensor) -> Tensor:
        """Images ``[B, 3, h·f, w·f]`` in ``[0, 1]`` from codes ``[B, n, h, w]``."""
        return self._finish(self.decoder(self.quantizer.decode(codes))).clamp(0, 1)

    @torch.no_grad()
    def encode_tiled(self, x: Tensor, num_levels: int | None = None) -> Tensor:
        """:meth:`encode` in tiles of ``config.tile`` pixels with context: bounded memory."""
        f, cells, context = self.factor, self.config.tile // self.factor, self.config.tile_context
        padded = self._prepare(x)
        h, w = padded.shape[-2] // f, padded.shape[-1] // f
        rows = []
        for top, bottom, up, down in context_windows(h, cells, context):
            row = []
            for left, right, before, after in context_windows(w, cells, context):
                window = padded[..., up * f : down * f, before * f : after * f]
                codes = self.quantizer.encode(self.encoder(window), num_levels)
                row.append(codes[..., top - up : bottom - up, left - before : right - before])
            rows.append(torch.cat(row, dim=-1))
        return torch.cat(rows, dim=-2)

    @torch.no_grad()
    def decode_tiled(self, codes: Tensor) -> Tensor:
        """:meth:`decode` in tiles with context: images ``[B, 3, h·f, w·f]``."""
        f, cells, context = self.factor, self.config.tile // self.factor, self.config.tile_context
        h, w = codes.shape[-2:]
        rows = []
        for top, bottom, up, down in context_windows(h, cells, context):
            row = []
            for left, right, before, after in context_windows(w, cells, context):
                image = self.decode(codes[..., up:down, before:after])
                crop = image[..., (top - up) * f : (bottom - up) * f, (left - before) * f :]
                row.append(crop[..., : (right - left) * f])
            rows.append(torch.cat(row, dim=-1))
        return torch.cat(rows, dim=-2)
