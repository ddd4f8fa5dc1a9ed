"""Gradient estimators: how gradients pass through the non-differentiable code lookup.

Each estimator maps the encoder output ``z`` and its code ``q`` (both ``[N, d]``) to ``z_q``
whose *value* is exactly ``q`` (bit for bit, so ``decode(encode(z)) == forward(z).z_q``) and whose
gradient with respect to ``z`` is the estimator's. The code itself receives no gradient here;
codebooks learn through their own loss terms or EMA.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor


class GradientEstimator(Protocol):
    """Callable ``(z [N, d], q [N, d]) -> z_q [N, d]``."""

    def __call__(self, z: Tensor, q: Tensor) -> Tensor: ...


def _with_value(value: Tensor, differentiable: Tensor) -> Tensor:
    # value + (f - sg(f)) equals value exactly (f - f == 0) and has f's gradient.
    return value.detach() + (differentiable - differentiable.detach())


class StraightThrough:
    """VQ-VAE's straight-through estimator: the gradient reaches ``z`` unchanged."""

    def __call__(self, z: Tensor, q: Tensor) -> Tensor:
        return _with_value(q, z)

    def __repr__(self) -> str:
        return "StraightThrough()"


class RotationTrick:
    """The rotation trick (Fifty et al., "Restructuring Vector Quantization with the Rotation
    Trick", ICLR 2025, arXiv 2410.06424).

    With ``ê = z/‖z‖``, ``q̂ = q/‖q‖``, ``r = (ê + q̂)/‖ê + q̂‖``, ``R = I − 2rrᵀ + 2q̂êᵀ`` and
    ``λ = ‖q‖/‖z‖`` (all treated as constants), the output is ``λ R z`` (numerically ``q``) and the
    gradient reaching ``z`` is ``λ Rᵀ g``. ``R`` is never formed: ``R z = z − 2(z·r)r + 2(z·ê)q̂``.

    Args:
        eps: guards the norms of zero vectors.
    """

    def __init__(self, eps: float = 1e-6) -> None:
        self.eps = eps

    def __call__(self, z: Tensor, q: Tensor) -> Tensor:
        return _Rotation.apply(z, q, self.eps)

    def __repr__(self) -> str:
        return "RotationTrick()"


class _Rotation(torch.autograd.Function):
    """Value ``q``, gradient ``λ Rᵀ g`` to ``z`` (none to ``q``), written out by hand.

    Autograd through the forward formula ``λ R z`` recorded some thirty small operations per
    call and their backward; here the forward is one copy and the backward about twenty, which
    matters for the host time of a training step (one call per residual level).
    ``Rᵀ g = g − 2(g·r)r + 2(g·q̂)ê``.
    """

    @staticmethod
    def forward(ctx, z: Tensor, q: Tensor, eps: float) -> Tensor:
        ctx.save_for_backward(z.detach(), q.detach())
        ctx.eps = eps
        # The value is q bit for bit, in float32 or wider (as z's float32 path would promote).
        return q.detach().to(torch.promote_types(q.dtype, torch.float32), copy=True)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        z, q = ctx.saved_tensors
        zf, qf, g = z.float(), q.float(), grad.float()
        z_norm = zf.norm(dim=-1, keepdim=True).clamp_min(ctx.eps)
        q_norm = qf.norm(dim=-1, keepdim=True).clamp_min(ctx.eps)
        e_hat, q_hat = zf / z_norm, qf / q_norm
        r = e_hat + q_hat
        r = r / r.norm(dim=-1, keepdim=True).clamp_min(ctx.eps)
        rotated = g - 2.0 * (g * r).sum(-1, keepdim=True) * r
        rotated = rotated + 2.0 * (g * q_hat).sum(-1, keepdim=True) * e_hat
        return (q_norm / z_norm * rotated).to(z.dtype), None, None


ESTIMATORS = {"rotation": RotationTrick, "straight_through": StraightThrough}


def make_estimator(estimator: str | GradientEstimator) -> GradientEstimator:
    """An estimator from its name (``"rotation"``, ``"straight_through"``) or an instance."""
    if isinstance(estimator, str):
        if estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}; choose from {sorted(ESTIMATORS)}")
        return ESTIMATORS[estimator]()
    return estimator
