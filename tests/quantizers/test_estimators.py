"""Gradient estimators against their formulas (METHODS.md)."""

from __future__ import annotations

import torch

from vqcodec.quantizers import RotationTrick, StraightThrough


def explicit_rotation(e: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``R`` and ``λ`` for one vector pair, built as full matrices in float64."""
    e_hat, q_hat = e / e.norm(), q / q.norm()
    r = (e_hat + q_hat) / (e_hat + q_hat).norm()
    eye = torch.eye(e.numel(), dtype=e.dtype)
    rotation = eye - 2 * torch.outer(r, r) + 2 * torch.outer(q_hat, e_hat)
    return rotation, q.norm() / e.norm()


def test_rotation_trick_gradient_is_lambda_r_transpose_g() -> None:
    n, d = 6, 9
    z = torch.randn(n, d, dtype=torch.float64, requires_grad=True)
    q = torch.randn(n, d, dtype=torch.float64)
    g = torch.randn(n, d, dtype=torch.float64)
    out = RotationTrick()(z, q)
    (out * g).sum().backward()
    for i in range(n):
        rotation, lam = explicit_rotation(z[i].detach(), q[i])
        assert torch.allclose(rotation @ (z[i].detach() / z[i].norm()), q[i] / q[i].norm())
        expected = lam * rotation.T @ g[i]
        assert torch.allclose(z.grad[i], expected.float().double(), rtol=1e-5, atol=1e-6)


def test_rotation_trick_is_not_the_identity() -> None:
    # Guards the test above: a straight-through gradient would not match lambda R^T g.
    z = torch.randn(4, 5, requires_grad=True)
    q = torch.randn(4, 5)
    g = torch.randn(4, 5)
    (RotationTrick()(z, q) * g).sum().backward()
    assert not torch.allclose(z.grad, g, atol=1e-3)


def test_estimators_output_the_code_exactly() -> None:
    z, q = torch.randn(50, 8, requires_grad=True), torch.randn(50, 8)
    for estimator in (RotationTrick(), StraightThrough()):
        assert torch.equal(estimator(z, q), q)


def test_straight_through_passes_gradient_unchanged_and_none_to_the_code() -> None:
    z = torch.randn(10, 4, requires_grad=True)
    q = torch.randn(10, 4, requires_grad=True)
    g = torch.randn(10, 4)
    (StraightThrough()(z, q) * g).sum().backward()
    assert torch.equal(z.grad, g)
    assert q.grad is None or torch.count_nonzero(q.grad) == 0
