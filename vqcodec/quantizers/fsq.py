"""Finite Scalar Quantization (Mentzer et al., "Finite Scalar Quantization: VQ-VAE Made Simple",
ICLR 2024, arXiv 2309.15505).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from vqcodec.quantizers.base import RowQuantization, SingleLevelQuantizer, zero_loss
from vqcodec.quantizers.telemetry import code_histogram, usage_metrics


class FiniteScalarQuantizer(SingleLevelQuantizer):
    """Bounded rounding per dimension onto a fixed grid; implicit codebook of ``∏ levels`` codes.

    Per dimension with ``L`` levels: ``half = (L − 1)(1 − eps)/2``, ``offset = 0.5`` for even
    ``L`` else 0, ``shift = atanh(offset/half)``, ``f(z) = tanh(z + shift)·half − offset``, rounded
    with a straight-through gradient and divided by ``⌊L/2⌋``. The bounding and rounding always
    run in float32, also under bf16 autocast (bf16 cannot represent every grid point).

    Args:
        levels: levels per dimension, e.g. ``[8, 5, 5, 5]`` for 1,000 codes; every ``L ≥ 3``
            (the paper recommends ``L ≥ 5``).
        dim: input channels; when it differs from ``len(levels)``, linear projections map into
            and out of the grid space.
        eps: the shrink of the bound (the paper's 1e-3).
    """

    def __init__(
        self, levels: Sequence[int] = (8, 5, 5, 5), *, dim: int | None = None, eps: float = 1e-3
    ) -> None:
        super().__init__()
        levels = [int(level) for level in levels]
        if not levels or min(levels) < 2:
            raise ValueError(f"FSQ needs at least one dimension and every level >= 3, got {levels}")
        self.levels = levels
        self.eps = eps
        self.grid_dim = len(levels)
        self.dim = dim or self.grid_dim
        self.codebook_size = int(torch.tensor(levels).prod())
        projected = self.dim != self.grid_dim
        self.project_in = nn.Linear(self.dim, self.grid_dim) if projected else nn.Identity()
        self.project_out = nn.Linear(self.grid_dim, self.dim) if projected else nn.Identity()
        level_tensor = torch.tensor(levels, dtype=torch.float64)
        half = (level_tensor - 1) * (1 - eps) / 2
        offset = torch.where(level_tensor % 2 == 0, 0.5, 0.0)
        if torch.any(offset >= half):
            # Even L needs offset/half < 1 for atanh; with the paper's (1 - eps) that fails at L=2.
            raise ValueError(f"levels {levels} with eps={eps}: every level must be at least 3")
        basis = torch.cumprod(torch.tensor([1] + levels[:-1], dtype=torch.int64), dim=0)
        # Derived constants: non-persistent, so checkpoints hold only the levels (in config).
        self.register_buffer("_half", half.float(), persistent=False)
        self.register_buffer("_offset", offset.float(), persistent=False)
        self.register_buffer("_shift", torch.atanh(offset / half).float(), persistent=False)
        self.register_buffer("_half_width", (level_tensor // 2).float(), persistent=False)
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.int64), persistent=False)
        self.register_buffer("_basis", basis, persistent=False)

    def bound_and_round(self, x: Tensor) -> Tensor:
        """Grid values ``[N, len(levels)]`` in float32, with straight-through rounding."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            bounded = torch.tanh(x.float() + self._shift) * self._half - self._offset
            # round(b) + (b - sg(b)): exactly the grid value, with the identity gradient.
            rounded = bounded.round().detach() + (bounded - bounded.detach())
            return rounded / self._half_width

    def grid_to_indices(self, grid: Tensor) -> Tensor:
        """Indices ``[N]`` for grid values ``[N, len(levels)]``."""
        digits = (grid * self._half_width + self._half_width).round().long()
        return (digits * self._basis).sum(dim=-1)

    def indices_to_grid(self, indices: Tensor) -> Tensor:
        """Grid values ``[N, len(levels)]`` (float32) for indices ``[N]``."""
        digits = (indices[:, None] // self._basis) % self._levels
        return (digits.float() - self._half_width) / self._half_width

    def quantize_rows(self, rows: Tensor) -> RowQuantization:
        grid = self.bound_and_round(self.project_in(rows))
        indices = self.grid_to_indices(grid.detach())
        metrics = usage_metrics(code_histogram(indices, self.codebook_size))
        return RowQuantization(self.project_out(grid), indices, zero_loss(rows), metrics)

    def encode_rows(self, rows: Tensor) -> Tensor:
        return self.grid_to_indices(self.bound_and_round(self.project_in(rows)))

    def decode_rows(self, indices: Tensor) -> Tensor:
        return self.project_out(self.indices_to_grid(indices))
