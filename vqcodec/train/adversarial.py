"""Adversarial training terms: hinge losses for the generator and the discriminator, and
feature matching (EnCodec, arXiv 2210.13438, section 3.4).

The codec is the generator. Each step, after the reconstruction update, the discriminator
learns to tell inputs from reconstructions; the codec's loss gains ``weight · hinge`` (make the
discriminator call the reconstruction real) and ``feature_matching · L1`` between the
discriminator's hidden activations on the input and on the reconstruction, each layer's
distance relative to the input's mean activation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vqcodec.train.discriminators import Judgement


@dataclass(frozen=True)
class AdversarialConfig:
    """Adversarial training; off (no discriminator is built) while ``weight`` is 0.

    Attributes:
        weight: weight of the codec's hinge loss against the discriminator.
        feature_matching: weight of the feature-matching distance.
        start_step: optimiser steps of reconstruction-only training before the discriminator
            trains and its terms enter the codec's loss.
        lr: the discriminator's AdamW learning rate (constant).
        betas: the discriminator's AdamW betas.
        width: the discriminator's first-layer channels (STFT filters for audio).
    """

    weight: float = 0.0
    feature_matching: float = 0.0
    start_step: int = 0
    lr: float = 1e-4
    betas: tuple[float, ...] = (0.5, 0.9)
    width: int = 32

    @property
    def enabled(self) -> bool:
        return self.weight > 0 or self.feature_matching > 0


def discriminator_hinge(real: list[Judgement], fake: list[Judgement]) -> Tensor:
    """``mean(relu(1 - D(x))) + mean(relu(1 + D(x̂)))``, averaged over sub-discriminators."""
    total = sum(
        F.relu(1 - r.logits.float()).mean() + F.relu(1 + f.logits.float()).mean()
        for r, f in zip(real, fake)
    )
    return total / len(real)


def generator_hinge(fake: list[Judgement]) -> Tensor:
    """``mean(relu(1 - D(x̂)))``, averaged over sub-discriminators."""
    return sum(F.relu(1 - f.logits.float()).mean() for f in fake) / len(fake)


def feature_matching(real: list[Judgement], fake: list[Judgement]) -> Tensor:
    """Mean over sub-discriminators and layers of ``|φ(x̂) − φ(x)|₁ / mean |φ(x)|``."""
    distances = [
        F.l1_loss(f.float(), r.float()) / r.float().abs().mean().clamp_min(1e-8)
        for rj, fj in zip(real, fake)
        for r, f in zip(rj.features, fj.features)
    ]
    return torch.stack(distances).mean()


def generator_terms(
    discriminator: nn.Module, x_hat: Tensor, x: Tensor, config: AdversarialConfig
) -> dict[str, Tensor]:
    """The codec's adversarial terms, weighted. ``discriminator`` is the bare module (not the
    data-parallel wrapper) with gradients off for its parameters: this pass trains the codec."""
    with torch.no_grad():
        real = discriminator(x)
    fake = discriminator(x_hat)
    return {
        "adversarial": config.weight * generator_hinge(fake),
        "feature_matching": config.feature_matching * feature_matching(real, fake),
    }


def discriminator_loss(discriminator: nn.Module, x_hat: Tensor, x: Tensor) -> Tensor:
    """The discriminator's hinge loss on a batch of inputs and (detached) reconstructions,
    judged in one pass."""
    judged = discriminator(torch.cat([x, x_hat.detach().to(x.dtype)]))
    n = x.shape[0]
    real = [Judgement(j.logits[:n], []) for j in judged]
    fake = [Judgement(j.logits[n:], []) for j in judged]
    return discriminator_hinge(real, fake)
