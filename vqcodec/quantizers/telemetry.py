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
    """Telemetry from code histograms ``[..., K]`` (one per leading index).

    Returns:
        ``code_usage``: fraction of codes used at least once; ``perplexity``: exp of the entropy
        of the code distribution (``K`` when uniform, 1 when collapsed to one code); each of
        shape ``[...]`` (scalars for one histogram ``[K]``).
    """
    probs = step_share(counts)
    entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum(-1)
    return {
        "code_usage": (counts > 0).float().mean(-1).detach(),
        "perplexity": entropy.exp().detach(),
    }


def step_share(counts: Tensor) -> Tensor:
    """Each code's share of one step's assignments, ``[..., K]`` from histograms ``[..., K]``."""
    return counts / counts.sum(-1, keepdim=True).clamp_min(1.0)


def bias_correction(steps: Tensor, decay: float) -> Tensor:
    """``1 − decay^steps``: divides an EMA started at zero into an unbiased estimate."""
    return 1.0 - torch.pow(decay, steps)  # scalar base: no host-to-device copy


def corrected_share(ema_share: Tensor, steps: Tensor, decay: float) -> Tensor:
    """Estimated share per code ``[..., K]`` from the EMA ``[..., K]`` after ``steps [...]``
    updates; uniform before the first update."""
    codebook_size = ema_share.shape[-1]
    steps = steps[..., None]
    corrected = ema_share / bias_correction(steps, decay).clamp_min(1e-12)
    return torch.where(steps > 0, corrected, 1.0 / codebook_size)


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

    def share(self) -> Tensor:
        """Estimated share of assignments per code ``[K]`` (uniform before any update)."""
        return corrected_share(self.ema_share, self.steps, self.decay)

    @torch.no_grad()
    def update(self, counts: Tensor) -> None:
        """Fold in one step's code histogram ``[K]`` (already summed over processes)."""
        self.ema_share.lerp_(step_share(counts), 1.0 - self.decay)
        self.steps += 1

    def dead_mask(self, threshold: float) -> Tensor:
        """Bool ``[K]``: codes whose share is under ``threshold`` times the uniform share."""
        return self.share() < threshold / self.codebook_size

    @torch.no_grad()
    def revive(self, mask: Tensor) -> None:
        """Give the codes in ``mask`` a fresh uniform share, so they are not replaced at once."""
        # Before the first update the correction is 0 and share() reports uniform anyway.
        fresh = bias_correction(self.steps, self.decay) / self.codebook_size
        self.ema_share.copy_(torch.where(mask, fresh, self.ema_share))  # no host sync
