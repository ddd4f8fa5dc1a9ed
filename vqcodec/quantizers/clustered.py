"""Online clustered codebook (Zheng & Vedaldi, "Online Clustered Codebook", ICCV 2023,
arXiv 2307.15139).

Each training step every code moves towards an anchor feature of the batch, by an amount set by
its running usage: unused codes jump onto the data, well-used codes barely move. The reference
sorts all K distances to find anchors; here the closest feature to each code is one call of
``nearest_code`` with the roles of codes and features swapped.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqcodec.kernels import nearest_code
from vqcodec.quantizers import distributed
from vqcodec.quantizers.base import RowQuantization, SingleLevelQuantizer
from vqcodec.quantizers.estimators import GradientEstimator, make_estimator
from vqcodec.quantizers.telemetry import UsageTracker, code_histogram, usage_metrics


class ClusteredVectorQuantizer(SingleLevelQuantizer):
    """CVQ: a loss-learned codebook with usage-weighted pulls towards anchor features.

    Per step, with ``γ = decay``: ``N_k ← γ N_k + (1 − γ)·share_k`` (share of the batch's
    assignments, summed over processes), ``α_k = exp(−N_k·K·10/(1 − γ) − 1e-3)`` and
    ``e_k ← (1 − α_k) e_k + α_k a_k``.

    Args:
        dim: input channels ``D``.
        codebook_size: number of codes ``K``.
        codebook_dim: lookup-space dimension (default ``dim``).
        decay: ``γ``.
        commitment_weight: β of ``β‖z − sg(e)‖²``; the codebook term ``‖sg(z) − e‖²`` has weight 1.
        anchor: ``"closest"`` (the batch feature nearest each code, over all processes) or
            ``"random"`` (a random batch feature, drawn on rank 0).
        estimator: gradient estimator (default the rotation trick).
        dead_code_threshold: share threshold (fraction of ``1/K``) for the ``dead_codes`` metric.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        *,
        codebook_dim: int | None = None,
        decay: float = 0.99,
        commitment_weight: float = 0.25,
        anchor: Literal["closest", "random"] = "closest",
        estimator: str | GradientEstimator = "rotation",
        dead_code_threshold: float = 0.1,
    ) -> None:
        super().__init__()
        if anchor not in ("closest", "random"):
            raise ValueError(f"anchor must be 'closest' or 'random', got {anchor!r}")
        self.dim = dim
        self.codebook_size = codebook_size
        self.codebook_dim = codebook_dim or dim
        self.decay = decay
        self.commitment_weight = commitment_weight
        self.anchor = anchor
        self.estimator = make_estimator(estimator)
        self.dead_code_threshold = dead_code_threshold
        projected = self.codebook_dim != dim
        self.project_in = nn.Linear(dim, self.codebook_dim) if projected else nn.Identity()
        self.project_out = nn.Linear(self.codebook_dim, dim) if projected else nn.Identity()
        # The reference initialises uniformly in ±1/K; the pulls move codes onto the data.
        bound = 1.0 / codebook_size
        self.codebook = nn.Parameter(
            torch.empty(codebook_size, self.codebook_dim).uniform_(-bound, bound)
        )
        # N_k of the paper: a raw EMA from zero, as in the reference, so fresh codes pull hard.
        self.register_buffer("anchor_usage", torch.zeros(codebook_size))
        self.usage = UsageTracker(codebook_size, decay)

    def quantize_rows(self, rows: Tensor) -> RowQuantization:
        x = self.project_in(rows)
        indices = nearest_code(x, self.codebook, fast=self.training)
        q = self.codebook[indices]
        loss = self.commitment_weight * F.mse_loss(x.float(), q.detach().float())
        loss = loss + F.mse_loss(q.float(), x.detach().float())
        z_q = self.project_out(self.estimator(x, q))
        counts = code_histogram(indices, self.codebook_size)
        if self.training:
            counts = self._pull_towards_anchors(x.detach().float(), counts)
        metrics = usage_metrics(counts)
        metrics["dead_codes"] = self.usage.dead_mask(self.dead_code_threshold).sum().float()
        return RowQuantization(z_q, indices, loss, metrics)

    def encode_rows(self, rows: Tensor) -> Tensor:
        return nearest_code(self.project_in(rows), self.codebook)

    def decode_rows(self, indices: Tensor) -> Tensor:
        return self.project_out(self.codebook[indices].float())

    @torch.compiler.disable
    @torch.no_grad()
    def _pull_towards_anchors(self, x: Tensor, counts: Tensor) -> Tensor:
        counts = distributed.all_reduce_sum_(counts.clone())
        self.usage.update(counts)
        share = counts / counts.sum().clamp_min(1.0)
        self.anchor_usage.mul_(self.decay).add_(share, alpha=1 - self.decay)
        exponent = self.anchor_usage * self.codebook_size * 10.0 / (1.0 - self.decay) + 1e-3
        alpha = torch.exp(-exponent)[:, None]  # [K, 1]
        anchors = self._anchors(x)
        codebook = self.codebook.detach().float()
        self.codebook.copy_((1.0 - alpha) * codebook + alpha * anchors)
        return counts

    def _anchors(self, x: Tensor) -> Tensor:
        """One anchor feature per code ``[K, d]``, identical on every process."""
        codebook = self.codebook.detach().float()
        if x.shape[0] == 0:
            return codebook
        if self.anchor == "random":
            picks = torch.randint(x.shape[0], (self.codebook_size,), device=x.device)
            return distributed.broadcast_from_main_(x[picks].contiguous())
        nearest = nearest_code(codebook, x, fast=True)  # [K]: the closest batch feature per code
        local = x[nearest]
        distance = (local - codebook).pow(2).sum(-1)
        # The closest over all processes; ties go to the lowest rank.
        all_features = distributed.all_gather_stacked(local)  # [W, K, d]
        best_rank = distributed.all_gather_stacked(distance).argmin(dim=0)  # [K]
        return all_features[best_rank, torch.arange(self.codebook_size, device=x.device)]
