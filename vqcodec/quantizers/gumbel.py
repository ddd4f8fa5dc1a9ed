"""The stochastic quantizer of HQA (Williams et al., "Hierarchical Quantized Autoencoders",
NeurIPS 2020, arXiv 2002.08111).

Posterior ``q(k|z) = softmax(−d_k)`` with ``d_k = ‖z − e_k‖²``. In training the output is the soft
mixture ``Σ y_k e_k`` of a Gumbel-softmax relaxed sample ``y`` whose temperature is annealed;
at inference codes are the argmax (deterministic, for files) or a sample from ``q``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqcodec.kernels import nearest_code
from vqcodec.quantizers import distributed
from vqcodec.quantizers.base import RowQuantization, SingleLevelQuantizer, zero_loss
from vqcodec.quantizers.telemetry import UsageTracker, code_histogram, usage_metrics


class GumbelQuantizer(SingleLevelQuantizer):
    """HQA's stochastic quantizer.

    Loss: ``kl_weight · KL(q ‖ Uniform) + commitment_weight · Σ_k q_k d_k``, each averaged over
    positions (``KL = log K − H[q]``; the second term is a probability-weighted commitment with no
    stop-gradient, training encoder and codebook). HQA divides both by the reconstruction
    target's element count; that normalisation belongs to the codec, which knows the target.

    Every ``dead_code_interval`` training steps, if the least-used code has under
    ``dead_code_ratio`` of the most-used code's running usage, it is overwritten by the most-used
    code plus N(0, 0.01²) noise (drawn on rank 0, so every process agrees).

    The full ``N×K`` logits are needed for the relaxed sample, so training materialises them;
    argmax inference goes through ``nearest_code`` and does not.

    Args:
        dim: input channels ``D`` (also the code dimension).
        codebook_size: number of codes ``K``.
        temperature_start: Gumbel-softmax temperature at the start of training (HQA: 0.667).
        temperature_end: temperature at the end (HQA: 0.001).
        kl_weight: weight of the KL term (HQA: 0.001).
        commitment_weight: weight of the probability-weighted commitment (HQA: 0.001).
        inference: ``"argmax"`` (deterministic) or ``"sample"`` (the paper's behaviour).
        decay: EMA decay of the usage estimate.
        dead_code_interval: steps between least-used-code checks (0: never).
        dead_code_ratio: replace the least-used code when its usage is under this fraction of the
            most-used code's.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        *,
        temperature_start: float = 0.667,
        temperature_end: float = 0.001,
        kl_weight: float = 1e-3,
        commitment_weight: float = 1e-3,
        inference: Literal["argmax", "sample"] = "argmax",
        decay: float = 0.99,
        dead_code_interval: int = 20,
        dead_code_ratio: float = 0.03,
    ) -> None:
        super().__init__()
        if inference not in ("argmax", "sample"):
            raise ValueError(f"inference must be 'argmax' or 'sample', got {inference!r}")
        self.dim = dim
        self.codebook_size = codebook_size
        self.temperature_start = temperature_start
        self.temperature_end = temperature_end
        self.temperature = temperature_start
        self.kl_weight = kl_weight
        self.commitment_weight = commitment_weight
        self.inference = inference
        self.dead_code_interval = dead_code_interval
        self.dead_code_ratio = dead_code_ratio
        self.codebook = nn.Parameter(torch.randn(codebook_size, dim) * dim**-0.5)
        self.usage = UsageTracker(codebook_size, decay)

    def anneal(self, progress: float) -> float:
        """Temperature schedule hook: set the temperature for training ``progress`` in [0, 1]
        (linear from ``temperature_start`` to ``temperature_end``, as in HQA) and return it."""
        progress = min(max(progress, 0.0), 1.0)
        self.temperature = self.temperature_start + progress * (
            self.temperature_end - self.temperature_start
        )
        return self.temperature

    def squared_distances(self, rows: Tensor) -> Tensor:
        """``d [N, K]`` in float32."""
        x, codebook = rows.float(), self.codebook.float()
        return (
            x.pow(2).sum(-1, keepdim=True) - 2.0 * x @ codebook.T + codebook.pow(2).sum(-1)
        ).clamp_min(0.0)

    def quantize_rows(self, rows: Tensor) -> RowQuantization:
        if not self.training:
            indices = self.encode_rows(rows)
            z_q = self.decode_rows(indices)
            loss = zero_loss(rows)
        else:
            self._maybe_replace_least_used_code()
            distances = self.squared_distances(rows)  # [N, K]
            log_probs = F.log_softmax(-distances, dim=-1)
            probs = log_probs.exp()
            kl = (math.log(self.codebook_size) + (probs * log_probs).sum(-1)).mean()
            commitment = (probs * distances).sum(-1).mean()
            loss = self.kl_weight * kl + self.commitment_weight * commitment
            soft = F.gumbel_softmax(-distances, tau=self.temperature, hard=False)  # [N, K]
            z_q = soft @ self.codebook.float()
            indices = distances.detach().argmin(dim=-1)
        counts = code_histogram(indices, self.codebook_size)
        if self.training:
            counts = self._track_usage(counts)
        metrics = usage_metrics(counts)
        metrics["temperature"] = torch.tensor(self.temperature)
        return RowQuantization(z_q, indices, loss, metrics)

    def encode_rows(self, rows: Tensor) -> Tensor:
        if self.inference == "argmax":
            return nearest_code(rows, self.codebook)
        probs = F.softmax(-self.squared_distances(rows), dim=-1)
        return torch.multinomial(probs, 1).squeeze(-1)

    def decode_rows(self, indices: Tensor) -> Tensor:
        return self.codebook[indices].float()

    @torch.compiler.disable
    @torch.no_grad()
    def _track_usage(self, counts: Tensor) -> Tensor:
        counts = distributed.all_reduce_sum_(counts.clone())
        self.usage.update(counts)
        return counts

    @torch.compiler.disable
    @torch.no_grad()
    def _maybe_replace_least_used_code(self) -> None:
        # Runs before the step's forward: replacing a code after it was used would modify a
        # tensor that autograd saved for the backward pass.
        steps, interval = int(self.usage.steps), self.dead_code_interval
        if interval <= 0 or steps == 0 or steps % interval:
            return
        share = self.usage.share()
        most_used, least_used = int(share.argmax()), int(share.argmin())
        if share[least_used] >= self.dead_code_ratio * share[most_used]:
            return
        noise = distributed.broadcast_from_main_(0.01 * torch.randn_like(self.codebook[0]))
        self.codebook[least_used] = self.codebook[most_used] + noise
        revived = torch.zeros_like(share, dtype=torch.bool)
        revived[least_used] = True
        self.usage.revive(revived)
