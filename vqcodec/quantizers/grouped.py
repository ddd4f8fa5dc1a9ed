"""Grouped (multi-codebook) quantization: channels split into groups, one codebook per group.

When every group is a :class:`~vqcodec.quantizers.VectorQuantizer` with codebooks of one shape
(the default), all groups are searched in a single batched ``nearest_code`` launch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vqcodec.kernels import nearest_code
from vqcodec.quantizers.base import Quantizer, QuantizerOutput, to_rows
from vqcodec.quantizers.residual import QuantizerFactory
from vqcodec.quantizers.vector import VectorQuantizer, update_codebooks, updates_together


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
            raise ValueError(
                f"dim ({dim}) must split into num_codebooks ({num_codebooks}) equal groups"
            )
        self.dim = dim
        self.codebook_size = codebook_size
        self.num_codebooks = num_codebooks
        self.group_dim = dim // num_codebooks
        self.groups = nn.ModuleList(
            factory(self.group_dim, codebook_size, **kwargs) for _ in range(num_codebooks)
        )
        self.planes_per_group = self.groups[0].num_quantizers
        self.num_quantizers = num_codebooks * self.planes_per_group
        self.batched_search = (
            all(type(g) is VectorQuantizer for g in self.groups)
            and len({(g.codebook_size, g.codebook_dim) for g in self.groups}) == 1
        )

    def _search_all(self, z: Tensor, fast: bool) -> tuple[list, Tensor, tuple[int, ...]]:
        """One launch for every group: per-group search inputs, indices ``[G, N]``, batch shape."""
        rows, batch_shape = to_rows(z)
        inputs = [
            g.search_inputs(r) for g, r in zip(self.groups, rows.split(self.group_dim, dim=1))
        ]
        xs = torch.stack([x for x, _ in inputs])  # [G, N, d]
        codebooks = torch.stack([c for _, c in inputs])  # [G, K, d]
        return inputs, nearest_code(xs, codebooks, fast=fast), batch_shape

    def _forward_batched(self, z: Tensor) -> list[QuantizerOutput]:
        inputs, indices, batch_shape = self._search_all(z, fast=self.training)
        # In training, the groups' codebook updates happen together, as one stacked update.
        together = self.training and updates_together(self.groups)
        parts = []
        for g, ((x, codebook), group) in enumerate(zip(inputs, self.groups)):
            out = group.quantize_searched(x, codebook, indices[g], update_codebook=not together)
            parts.append(group.output_from_rows(out, batch_shape))
        if together:
            xs = [x.detach() for x, _ in inputs]
            for part, metrics in zip(parts, update_codebooks(self.groups, xs, indices.unbind(0))):
                part.metrics = metrics
        return parts

    def forward(self, z: Tensor) -> QuantizerOutput:
        self._check_latent(z)
        if self.batched_search:
            parts = self._forward_batched(z)
        else:
            chunks = z.split(self.group_dim, dim=1)
            parts = [group(chunk) for group, chunk in zip(self.groups, chunks)]
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
        if self.batched_search:
            _, indices, batch_shape = self._search_all(z, fast=False)  # [G, N]
            return indices.reshape(-1, *batch_shape).movedim(0, 1)
        chunks = z.split(self.group_dim, dim=1)
        return torch.cat([group.encode(chunk) for group, chunk in zip(self.groups, chunks)], dim=1)

    def decode(self, codes: Tensor) -> Tensor:
        self._check_codes(codes)
        planes = codes.split(self.planes_per_group, dim=1)
        return torch.cat([group.decode(p) for group, p in zip(self.groups, planes)], dim=1)
