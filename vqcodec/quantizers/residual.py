"""Residual vector quantization (SoundStream, arXiv 2107.03312) with quantizer dropout for
variable bitrate (DAC, arXiv 2306.06546).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from vqcodec.quantizers.base import Quantizer, QuantizerOutput
from vqcodec.quantizers.vector import VectorQuantizer, update_codebooks, updates_together

QuantizerFactory = Callable[..., Quantizer]


class ResidualQuantizer(Quantizer):
    """A stack of quantizers, each quantizing what the previous ones left: ``r_0 = z``,
    ``q_i = Q_i(r_{i−1})``, ``r_i = r_{i−1} − q_i``, ``z_q = Σ q_i``.

    Gradients flow through ``r_i`` as in EnCodec, so with straight-through levels the stack as a
    whole passes the gradient to ``z`` unchanged.

    Quantizer dropout: in training, a ``quantizer_dropout`` fraction of the batch items keep only
    the first ``n ~ U{1..Q}`` levels in ``z_q`` (the decoder learns every bitrate). Every level
    still runs on every item, so each level's statistics see its true input distribution and all
    processes run the same collectives; only the contributions to ``z_q`` are masked.

    Args:
        dim: input channels ``D``.
        codebook_size: codes per level ``K``.
        num_quantizers: number of levels ``Q``.
        quantizer_dropout: fraction of batch items that get a random number of levels.
        factory: builds one level as ``factory(dim, codebook_size, **kwargs)``; default
            :class:`~vqcodec.quantizers.vector.VectorQuantizer`.
        **kwargs: passed to ``factory``.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        num_quantizers: int,
        *,
        quantizer_dropout: float = 0.0,
        factory: QuantizerFactory = VectorQuantizer,
        **kwargs: object,
    ) -> None:
        super().__init__()
        if num_quantizers < 1:
            raise ValueError(f"num_quantizers must be at least 1, got {num_quantizers}")
        if not 0.0 <= quantizer_dropout <= 1.0:
            raise ValueError(f"quantizer_dropout must be in [0, 1], got {quantizer_dropout}")
        self.dim = dim
        self.codebook_size = codebook_size
        self.num_quantizers = num_quantizers
        self.quantizer_dropout = quantizer_dropout
        self.levels = nn.ModuleList(
            factory(dim, codebook_size, **kwargs) for _ in range(num_quantizers)
        )
        for level in self.levels:
            if (
                level.dim != dim
                or level.codebook_size != codebook_size
                or level.num_quantizers != 1
            ):
                raise ValueError(
                    "each residual level must map dim channels to one plane of codebook_size codes"
                )

    def _levels_kept(self, batch: int, device: torch.device) -> Tensor:
        """Per item, how many levels contribute to ``z_q`` ``[B]``."""
        kept = torch.full((batch,), self.num_quantizers, device=device)
        if self.training and self.quantizer_dropout > 0:
            dropped = torch.rand(batch, device=device) < self.quantizer_dropout
            random_levels = torch.randint(1, self.num_quantizers + 1, (batch,), device=device)
            kept = torch.where(dropped, random_levels, kept)
        return kept

    def forward(self, z: Tensor) -> QuantizerOutput:
        self._check_latent(z)
        kept = self._levels_kept(z.shape[0], z.device)
        mask_shape = (z.shape[0],) + (1,) * (z.dim() - 1)
        residual, z_q, loss = (
            z,
            torch.zeros_like(z, dtype=torch.float32),
            z.new_zeros((), dtype=torch.float32),
        )
        # Plain VQ levels leave their codebook updates to one stacked update after the loop
        # (each level's update only affects its own later steps): one all-reduce per step
        # instead of one per level, and far fewer launches.
        together = self.training and updates_together(self.levels)
        codes, level_metrics, searched = [], [], []
        for i, level in enumerate(self.levels):
            if together:
                out, x, indices = level.forward_deferring_update(residual)
                searched.append((x, indices))
            else:
                out = level(residual)
            residual = residual - out.z_q
            z_q = z_q + out.z_q * (kept > i).reshape(mask_shape)
            loss = loss + out.loss
            codes.append(out.codes)
            level_metrics.append(out.metrics)
        if together:
            xs, indices = zip(*searched)
            level_metrics = update_codebooks(self.levels, xs, indices)
        metrics = {
            f"level{i}/{name}": value
            for i, values in enumerate(level_metrics)
            for name, value in values.items()
        }
        for name in ("code_usage", "perplexity"):
            per_level = [metrics[f"level{i}/{name}"] for i in range(self.num_quantizers)]
            metrics[name] = torch.stack(per_level).mean()
        return QuantizerOutput(z_q, torch.cat(codes, dim=1), loss, metrics)

    def encode(self, z: Tensor, num_levels: int | None = None) -> Tensor:
        """Codes ``[B, n, *spatial]`` from the first ``n = num_levels`` levels (default all)."""
        self._check_latent(z)
        n = self.num_quantizers if num_levels is None else num_levels
        if not 1 <= n <= self.num_quantizers:
            raise ValueError(f"num_levels must be in 1..{self.num_quantizers}, got {n}")
        residual, codes = z, []
        for level in self.levels[:n]:
            level_codes = level.encode(residual)
            residual = residual - level.decode(level_codes)
            codes.append(level_codes)
        return torch.cat(codes, dim=1)

    def decode(self, codes: Tensor) -> Tensor:
        """``z_q`` from codes of the first ``n ≤ Q`` levels ``[B, n, *spatial]``."""
        self._check_codes(codes, max_planes=self.num_quantizers)
        z_q = None
        for i in range(codes.shape[1]):
            part = self.levels[i].decode(codes[:, i : i + 1])
            z_q = part.float() if z_q is None else z_q + part
        return z_q
