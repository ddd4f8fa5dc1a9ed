"""The interface every quantizer shares: ``Quantizer`` and ``QuantizerOutput``.

Quantizers take channel-first latents ``z`` of shape ``[B, D, *spatial]`` (any number of spatial
dims, including none) and return integer codes of shape ``[B, Q, *spatial]``, where ``Q`` is the
number of code planes (``num_quantizers``): residual levels or parallel groups.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass
class QuantizerOutput:
    """What a quantizer's ``forward`` returns.

    Attributes:
        z_q: quantized latent, same shape as the input ``z``; gradients reach ``z``.
        codes: int64 indices ``[B, Q, *spatial]``.
        loss: scalar auxiliary loss (commitment, codebook, KL terms; zero when there is none).
        metrics: detached scalar tensors for telemetry (``code_usage``, ``perplexity``, ...).
    """

    z_q: Tensor
    codes: Tensor
    loss: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class RowQuantization:
    """A single-level quantizer's result on flattened rows ``[N, D]`` (internal)."""

    z_q: Tensor  # [N, D]
    indices: Tensor  # [N] int64
    loss: Tensor  # scalar
    metrics: dict[str, Tensor]


class Quantizer(nn.Module, ABC):
    """Base class of all quantizers.

    Attributes:
        dim: channels of the latent entering the quantizer.
        codebook_size: number of codes per code plane.
        num_quantizers: number of code planes ``Q`` in ``codes`` (residual levels or groups).
    """

    dim: int
    codebook_size: int
    num_quantizers: int = 1

    @abstractmethod
    def forward(self, z: Tensor) -> QuantizerOutput:
        """Quantize ``z [B, D, *spatial]`` (training and evaluation)."""

    @abstractmethod
    def encode(self, z: Tensor) -> Tensor:
        """Codes ``[B, Q, *spatial]`` (int64) for ``z [B, D, *spatial]``."""

    @abstractmethod
    def decode(self, codes: Tensor) -> Tensor:
        """Quantized latent ``[B, D, *spatial]`` for ``codes [B, Q, *spatial]``."""

    def _check_latent(self, z: Tensor) -> None:
        if z.dim() < 2 or z.shape[1] != self.dim:
            raise ValueError(
                f"{type(self).__name__} expects z of shape [B, {self.dim}, *spatial], "
                f"got {tuple(z.shape)}"
            )

    def _check_codes(self, codes: Tensor, max_planes: int | None = None) -> None:
        planes = self.num_quantizers if max_planes is None else max_planes
        if codes.dim() < 2 or codes.is_floating_point() or codes.is_complex():
            raise ValueError(
                f"{type(self).__name__} expects integer codes [B, Q, *spatial], "
                f"got {codes.dtype} {tuple(codes.shape)}"
            )
        ok = codes.shape[1] <= planes if max_planes is not None else codes.shape[1] == planes
        if not ok:
            raise ValueError(
                f"{type(self).__name__} has {self.num_quantizers} code planes, "
                f"got codes with {codes.shape[1]}"
            )


def to_rows(z: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """Flatten ``z [B, D, *spatial]`` to rows ``[B * prod(spatial), D]``.

    Returns:
        The rows and the ``(B, *spatial)`` shape needed to undo the flattening.
    """
    batch_shape = (z.shape[0], *z.shape[2:])
    return z.movedim(1, -1).reshape(-1, z.shape[1]), batch_shape


def from_rows(rows: Tensor, batch_shape: tuple[int, ...]) -> Tensor:
    """Inverse of :func:`to_rows`: ``[N, D]`` back to ``[B, D, *spatial]``."""
    return rows.reshape(*batch_shape, rows.shape[-1]).movedim(-1, 1)


class SingleLevelQuantizer(Quantizer):
    """A quantizer with one code per position, defined by three operations on rows.

    Subclasses implement :meth:`quantize_rows`, :meth:`encode_rows` and :meth:`decode_rows`;
    this class does the reshaping between ``[B, D, *spatial]`` and ``[N, D]``.
    """

    num_quantizers = 1

    @abstractmethod
    def quantize_rows(self, rows: Tensor) -> RowQuantization:
        """Quantize rows ``[N, D]``, updating codebook statistics in training mode."""

    @abstractmethod
    def encode_rows(self, rows: Tensor) -> Tensor:
        """Indices ``[N]`` for rows ``[N, D]``."""

    @abstractmethod
    def decode_rows(self, indices: Tensor) -> Tensor:
        """Rows ``[N, D]`` for indices ``[N]``."""

    def forward(self, z: Tensor) -> QuantizerOutput:
        self._check_latent(z)
        rows, batch_shape = to_rows(z)
        return self.output_from_rows(self.quantize_rows(rows), batch_shape)

    @staticmethod
    def output_from_rows(out: RowQuantization, batch_shape: tuple[int, ...]) -> QuantizerOutput:
        """The :class:`QuantizerOutput` of rows quantized from a latent of ``batch_shape``."""
        codes = out.indices.reshape(batch_shape).unsqueeze(1)
        return QuantizerOutput(from_rows(out.z_q, batch_shape), codes, out.loss, out.metrics)

    def encode(self, z: Tensor) -> Tensor:
        self._check_latent(z)
        rows, batch_shape = to_rows(z)
        return self.encode_rows(rows).reshape(batch_shape).unsqueeze(1)

    def decode(self, codes: Tensor) -> Tensor:
        self._check_codes(codes)
        indices = codes[:, 0]
        batch_shape = tuple(indices.shape)
        return from_rows(self.decode_rows(indices.reshape(-1).long()), batch_shape)


def zero_loss(like: Tensor) -> Tensor:
    """A scalar float32 zero on ``like``'s device (for quantizers with no auxiliary loss)."""
    return torch.zeros((), device=like.device, dtype=torch.float32)
