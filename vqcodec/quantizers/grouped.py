"""Grouped (multi-codebook) quantization: channels split into groups, one codebook per group."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vqcodec.quantizers.base import Quantizer, QuantizerOutput
from vqcodec.quantizers.residual import QuantizerFactory
from vqcodec.quantizers.vector import VectorQuantizer


class GroupedQuantizer(Quantizer):
    """Split ``dim`` channels into ``num_codebooks`` equal groups and quantize each on its own.

    The code planes are the groups' planes side by side: ``codes [B, G·q, *spatial]`` where each
    group has ``q`` planes (1 for single-level quantizers).

    Args:
        dim: input channels ``D``, divisible by ``num_codebooks``.
        codebook_size: codes per group codebook ``K``.
        num_codebooks: number of groups ``G``.
        factory: builds one group's quantizer as ``factory(dim // G, codebook_size, **kwargs)``;
            default :class:`~vqcodec.quantizers.vector.VectorQuantizer`.
        **kwargs: passed to ``factory``.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        num_codebooks: int,
        *,
        factory: QuantizerFactory = VectorQuantizer,
        **kwargs: object,
    ) -> None:
        super().__init__()
        if num_codebooks < 1 or dim % num_codebooks:
            raise ValueError(f"dim ({dim}) must split into num_codebooks ({num_codebooks}) equal groups")
        self.dim = dim
        self.codebook_size = codebook_size
        self.num_codebooks = num_codebooks
        self.group_dim = dim // num_codebooks
        self.groups = nn.ModuleList(
            factory(self.group_dim, codebook_size, **kwargs) for _ in range(num_codebooks)
        )
        self.planes_per_group = self.groups[0].num_quantizers
        self.num_quantizers = num_codebooks * self.planes_per_group

    def forward(self, z: Tensor) -> QuantizerOutput:
        self._check_latent(z)
        parts = [group(chunk) for group, chunk in zip(self.groups, z.split(self.group_dim, dim=1))]
        metrics = {}
        for g, out in enumerate(parts):
            metrics.update({f"group{g}/{name}": value for name, value in out.metrics.items()})
        for name in ("code_usage", "perplexity"):
            metrics[name] = torch.stack([out.metrics[name] for out in parts]).mean()
        return QuantizerOutput(
            z_q=torch.cat([out.z_q for out in parts], dim=1),
            codes=torch.cat([out.codes for out in parts], dim=1),
            loss=torch.stack([out.loss for out in parts]).sum(),
            metrics=metrics,
        )

    def encode(self, z: Tensor) -> Tensor:
        self._check_latent(z)
        chunks = z.split(self.group_dim, dim=1)
        return torch.cat([group.encode(chunk) for group, chunk in zip(self.groups, chunks)], dim=1)

    def decode(self, codes: Tensor) -> Tensor:
        self._check_codes(codes)
        planes = codes.split(self.planes_per_group, dim=1)
        return torch.cat([group.decode(p) for group, p in zip(self.groups, planes)], dim=1)
