"""SimVQ (Zhu et al., "Addressing Representation Collapse in Vector Quantized Models with One
Linear Layer", arXiv 2411.02038).

The codebook ``C`` is frozen random; the codes used are ``Linear(C)``, so every step updates the
whole codebook through one shared linear layer instead of only the selected rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqcodec.kernels import nearest_code
from vqcodec.quantizers import distributed
from vqcodec.quantizers.base import RowQuantization, SingleLevelQuantizer
from vqcodec.quantizers.estimators import GradientEstimator, make_estimator
from vqcodec.quantizers.telemetry import UsageTracker, code_histogram, usage_metrics


class SimVQ(SingleLevelQuantizer):
    """A frozen random codebook passed through one learnable linear layer.

    Loss ``β‖sg(z_q) − z‖² + ‖z_q − sg(z)‖²``; the second term trains only the linear layer.

    Args:
        dim: input channels ``D`` (also the code dimension).
        codebook_size: number of codes ``K``.
        commitment_weight: β.
        estimator: gradient estimator (default the rotation trick).
        decay: EMA decay of the usage estimate behind the ``dead_codes`` metric.
        dead_code_threshold: share threshold (fraction of ``1/K``) for that metric; SimVQ replaces
            no codes, the metric is there to watch for collapse.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        *,
        commitment_weight: float = 0.25,
        estimator: str | GradientEstimator = "rotation",
        decay: float = 0.99,
        dead_code_threshold: float = 0.1,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.codebook_size = codebook_size
        self.commitment_weight = commitment_weight
        self.estimator = make_estimator(estimator)
        self.dead_code_threshold = dead_code_threshold
        self.register_buffer("frozen_codebook", torch.randn(codebook_size, dim) * dim**-0.5)
        self.codebook_transform = nn.Linear(dim, dim)
        self.usage = UsageTracker(codebook_size, decay)

    def effective_codebook(self) -> Tensor:
        """``Linear(C)``, the codes actually used, ``[K, D]``."""
        return self.codebook_transform(self.frozen_codebook)

    def _search(self, rows: Tensor, fast: bool) -> Tensor:
        with torch.no_grad():
            return nearest_code(rows, self.effective_codebook(), fast=fast)

    def quantize_rows(self, rows: Tensor) -> RowQuantization:
        indices = self._search(rows, fast=self.training)
        # Transform only the chosen rows: the gradient to the layer costs O(N·D²), not O(K·D²).
        q = self.decode_rows(indices)
        loss = self.commitment_weight * F.mse_loss(rows.float(), q.detach())
        loss = loss + F.mse_loss(q, rows.detach().float())
        z_q = self.estimator(rows, q)
        counts = code_histogram(indices, self.codebook_size)
        if self.training:
            counts = self._track_usage(counts)
        metrics = usage_metrics(counts)
        metrics["dead_codes"] = self.usage.dead_mask(self.dead_code_threshold).sum().float()
        return RowQuantization(z_q, indices, loss, metrics)

    def encode_rows(self, rows: Tensor) -> Tensor:
        return self._search(rows, fast=False)

    def decode_rows(self, indices: Tensor) -> Tensor:
        return self.codebook_transform(self.frozen_codebook[indices]).float()

    @torch.compiler.disable
    @torch.no_grad()
    def _track_usage(self, counts: Tensor) -> Tensor:
        counts = distributed.all_reduce_sum_(counts.clone())
        self.usage.update(counts)
        return counts
