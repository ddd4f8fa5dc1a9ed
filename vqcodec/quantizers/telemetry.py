"""Codebook telemetry: batch code usage, perplexity and a running usage estimate per code."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def code_histogram(indices: Tensor, codebook_size: int) -> Tensor:
    """Float32 count of each code in ``indices`` (any shape), ``[codebook_size]``."""
    # Not torch.bincount: on CUDA it reads the largest index back to the host, a stall in every
    # training step (found with torch.cuda.set_sync_debug_mode). Sums of ones are exact.
    flat = indices.reshape(-1)
    counts = torch.zeros(codebook_size, device=flat.device)
    return counts.index_add_(0, flat, torch.ones_like(flat, dtype=counts.dtype))


def usage_metrics(counts: Tensor) -> dict[str, Tensor]:
    """Telemetry from a code histogram ``[K]``.

    Returns:
        ``code_usage``: fraction of codes used at least once; ``perplexity``: exp of the entropy
        of the code distribution (``K`` when uniform, 1 when collapsed to one code).
    """
    probs = counts / counts.sum().clamp_min(1.0)
    entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum()
    return {
        "code_usage": (counts > 0).float().mean().detach(),
        "perplexity": entropy.exp().detach(),
    }


class UsageTracker(nn.Module):
    """Exponential moving average of each code's share of the assignments.

    The estimate is bias-corrected (as in Adam), so it is meaningful from the first step. A code
    is *dead* when its share falls under ``threshold / K``, a fraction of the uniform share; this
    does not depend on batch size, unlike an absolute count threshold.

    Args:
        codebook_size: number of codes ``K``.
        decay: EMA decay per training step.
    """

    def __init__(self, codebook_size: int, decay: float = 0.99) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        self.decay = decay
        self.register_buffer("ema_share", torch.zeros(codebook_size))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    def _correction(self) -> Tensor:
        return 1.0 - torch.pow(self.decay, self.steps)  # scalar base: no host-to-device copy

    def share(self) -> Tensor:
        """Estimated share of assignments per code ``[K]`` (uniform before any update)."""
        corrected = self.ema_share / self._correction().clamp_min(1e-12)
        return torch.where(self.steps > 0, corrected, 1.0 / self.codebook_size)

    @torch.no_grad()
    def update(self, counts: Tensor) -> None:
        """Fold in one step's code histogram ``[K]`` (already summed over processes)."""
        share = counts / counts.sum().clamp_min(1.0)
        self.ema_share.mul_(self.decay).add_(share, alpha=1.0 - self.decay)
        self.steps += 1

    def dead_mask(self, threshold: float) -> Tensor:
        """Bool ``[K]``: codes whose share is under ``threshold`` times the uniform share."""
        return self.share() < threshold / self.codebook_size

    @torch.no_grad()
    def revive(self, mask: Tensor) -> None:
        """Give the codes in ``mask`` a fresh uniform share, so they are not replaced at once."""
        # Before the first update the correction is 0 and share() reports uniform anyway.
        fresh = self._correction() / self.codebook_size
        self.ema_share.copy_(torch.where(mask, fresh, self.ema_share))  # no host sync
