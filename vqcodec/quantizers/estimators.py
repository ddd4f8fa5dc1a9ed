"""Gradient estimators: how gradients pass through the non-differentiable code lookup.

Each estimator maps the encoder output ``z`` and its code ``q`` (both ``[N, d]``) to ``z_q``
whose *value* is exactly ``q`` (bit for bit, so ``decode(encode(z)) == forward(z).z_q``) and whose
gradient with respect to ``z`` is the estimator's. The code itself receives no gradient here;
codebooks learn through their own loss terms or EMA.
"""

from __future__ import annotations

from typing import Protocol

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
        zf, qf = z.float(), q.detach().float()
        z_norm = zf.detach().norm(dim=-1, keepdim=True).clamp_min(self.eps)
        q_norm = qf.norm(dim=-1, keepdim=True).clamp_min(self.eps)
        e_hat = zf.detach() / z_norm
        q_hat = qf / q_norm
        r = e_hat + q_hat
        r = r / r.norm(dim=-1, keepdim=True).clamp_min(self.eps)
        scale = q_norm / z_norm
        rotated = (
            zf
            - 2.0 * (zf * r).sum(-1, keepdim=True) * r
            + 2.0 * (zf * e_hat).sum(-1, keepdim=True) * q_hat
        )
        return _with_value(q, scale * rotated)

    def __repr__(self) -> str:
        return "RotationTrick()"


ESTIMATORS = {"rotation": RotationTrick, "straight_through": StraightThrough}


def make_estimator(estimator: str | GradientEstimator) -> GradientEstimator:
    """An estimator from its name (``"rotation"``, ``"straight_through"``) or an instance."""
    if isinstance(estimator, str):
        if estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}; choose from {sorted(ESTIMATORS)}")
        return ESTIMATORS[estimator]()
    return estimator
