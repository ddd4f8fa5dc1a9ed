"""Nearest-code vector quantization (VQ-VAE, van den Oord et al., arXiv 1711.00937) with the
rotation trick (arXiv 2410.06424), EMA or loss-learned codebooks, k-means initialisation,
cosine lookup, a low-dimensional lookup space (DAC, arXiv 2306.06546) and dead-code replacement.
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
from vqcodec.quantizers.kmeans import kmeans
from vqcodec.quantizers.telemetry import UsageTracker, code_histogram, usage_metrics


class VectorQuantizer(SingleLevelQuantizer):
    """Nearest-code VQ with one codebook.

    The search runs in a ``codebook_dim``-dimensional lookup space (a linear projection of the
    ``dim`` input channels when the two differ), on l2-normalised vectors when ``cosine``.

    Args:
        dim: input channels ``D``.
        codebook_size: number of codes ``K``.
        codebook_dim: lookup-space dimension (default ``dim``: no projection).
        estimator: ``"rotation"`` (default), ``"straight_through"``, or a
            :class:`~vqcodec.quantizers.estimators.GradientEstimator`.
        codebook_learning: ``"ema"`` (codebook = EMA of assigned-feature means; no codebook loss)
            or ``"loss"`` (codebook is a parameter trained by ``‖sg(z) − e‖²``).
        decay: EMA decay of the codebook statistics and of the usage estimate.
        commitment_weight: β of the commitment term ``β‖z − sg(e)‖²``.
        kmeans_init: initialise the codebook by k-means on the first training batch.
        kmeans_iters: Lloyd iterations for that initialisation.
        cosine: search and quantize l2-normalised vectors.
        dead_code_threshold: a code whose running share of assignments falls under this fraction
            of the uniform share ``1/K`` is replaced by a random feature of the batch (0: never).

    Metrics: ``code_usage`` and ``perplexity`` of the batch's codes, and ``dead_codes``: in
    training, the codes replaced in this step (dead before the replacement); otherwise the codes
    now under the threshold.

    Codebook statistics are summed over processes when ``torch.distributed`` is initialised, and
    replacement features and k-means centroids come from rank 0, so every rank keeps the same
    codebook.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        *,
        codebook_dim: int | None = None,
        estimator: str | GradientEstimator = "rotation",
        codebook_learning: Literal["ema", "loss"] = "ema",
        decay: float = 0.99,
        commitment_weight: float = 0.25,
        kmeans_init: bool = False,
        kmeans_iters: int = 10,
        cosine: bool = False,
        dead_code_threshold: float = 0.1,
    ) -> None:
        super().__init__()
        if codebook_learning not in ("ema", "loss"):
            raise ValueError(
                f"codebook_learning must be 'ema' or 'loss', got {codebook_learning!r}"
            )
        self.dim = dim
        self.codebook_size = codebook_size
        self.codebook_dim = codebook_dim or dim
        self.estimator = make_estimator(estimator)
        self.codebook_learning = codebook_learning
        self.decay = decay
        self.commitment_weight = commitment_weight
        self.kmeans_iters = kmeans_iters
        self.cosine = cosine
        self.dead_code_threshold = dead_code_threshold

        projected = self.codebook_dim != dim
        self.project_in = nn.Linear(dim, self.codebook_dim) if projected else nn.Identity()
        self.project_out = nn.Linear(self.codebook_dim, dim) if projected else nn.Identity()

        codebook = torch.randn(codebook_size, self.codebook_dim)
        if codebook_learning == "loss":
            self.codebook = nn.Parameter(codebook)
        else:
            self.register_buffer("codebook", codebook)
            # EMA statistics start as "one vector at each code" so unused codes stay put.
            self.register_buffer("ema_count", torch.ones(codebook_size))
            self.register_buffer("ema_sum", codebook.clone())
        self.register_buffer("initialised", torch.tensor(not kmeans_init))
        self._known_initialised = not kmeans_init  # host copy of the flag once known to be set
        self.usage = UsageTracker(codebook_size, decay)

    # -- search -----------------------------------------------------------------------------

    def lookup_codebook(self) -> Tensor:
        """The codebook as searched and emitted, ``[K, codebook_dim]``."""
        return F.normalize(self.codebook, dim=-1) if self.cosine else self.codebook

    def _lookup_rows(self, rows: Tensor) -> Tensor:
        x = self.project_in(rows)
        return F.normalize(x, dim=-1) if self.cosine else x

    # -- the three row operations -------------------------------------------------------------

    def search_inputs(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """The lookup-space rows ``[N, d]`` and codebook ``[K, d]`` the search compares.

        In training mode this first runs the pending k-means initialisation. Exposed so that a
        :class:`~vqcodec.quantizers.GroupedQuantizer` can search all groups in one launch.
        """
        x = self._lookup_rows(rows)
        if self.training and not self._known_initialised:
            # Reading the flag waits for the GPU; once it is set, remember it on the host so
            # that training steps do not stall on it (one sync per level per step, measured).
            self._known_initialised = bool(self.initialised)
            if not self._known_initialised:
                self._kmeans_init(x)
                self._known_initialised = True
        return x, self.lookup_codebook()

    def quantize_rows(self, rows: Tensor) -> RowQuantization:
        x, codebook = self.search_inputs(rows)  # [N, d], [K, d]
        indices = nearest_code(x, codebook, fast=self.training)  # [N]; exact when codes are kept
        return self.quantize_searched(x, codebook, indices)

    def quantize_searched(self, x: Tensor, codebook: Tensor, indices: Tensor) -> RowQuantization:
        """Finish quantizing rows whose nearest codes are known (see :meth:`search_inputs`)."""
        q = codebook[indices]  # [N, d]; carries gradient to a loss-learned codebook
        loss = self.commitment_weight * F.mse_loss(x.float(), q.detach().float())
        if self.codebook_learning == "loss":
            loss = loss + F.mse_loss(q.float(), x.detach().float())
        z_q = self.project_out(self.estimator(x, q))

        counts = code_histogram(indices, self.codebook_size)
        if self.training:
            counts, dead = self._update_codebook(x.detach(), indices, counts)
        else:
            dead = self.usage.dead_mask(self.dead_code_threshold)
        metrics = usage_metrics(counts)
        metrics["dead_codes"] = dead.sum().float()
        return RowQuantization(z_q, indices, loss, metrics)

    def encode_rows(self, rows: Tensor) -> Tensor:
        return nearest_code(self._lookup_rows(rows), self.lookup_codebook())

    def decode_rows(self, indices: Tensor) -> Tensor:
        # The estimators' output equals the code exactly, so this matches forward's z_q.
        return self.project_out(self.lookup_codebook()[indices].float())

    # -- codebook learning (training mode only) -----------------------------------------------

    @torch.no_grad()
    def _update_codebook(self, x: Tensor, indices: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
        """Fold one batch into the codebook statistics; returns the all-process histogram
        ``[K]`` and the mask ``[K]`` of codes that were dead (and are now replaced)."""
        x = x.float()
        if self.codebook_learning == "ema":
            sums = torch.zeros_like(self.ema_sum).index_add_(0, indices, x)
            stats = distributed.all_reduce_sum_(torch.cat([counts[:, None], sums], dim=1))
            counts, sums = stats[:, 0], stats[:, 1:]
            self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
            self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            trusted = self.ema_count > 1e-5
            means = self.ema_sum / self.ema_count.clamp_min(1e-5)[:, None]
            self.codebook.copy_(torch.where(trusted[:, None], means, self.codebook))
        else:
            counts = distributed.all_reduce_sum_(counts.clone())
        self.usage.update(counts)
        dead = self.usage.dead_mask(self.dead_code_threshold)  # all False at threshold 0
        if x.shape[0] == 0:  # nothing to replace them with
            return counts, torch.zeros_like(dead)
        if self.dead_code_threshold > 0:
            self._replace_dead_codes(x, dead)
        return counts, dead

    def _replace_dead_codes(self, x: Tensor, dead: Tensor) -> None:
        # Fixed-size, mask-based updates: counting the dead codes on the host would stall every
        # training step until the GPU (and, under DDP, every other process) caught up. One
        # candidate is drawn per code and only dead codes take theirs. Rank 0 draws; everyone
        # receives the same candidates.
        dead = dead[:, None]  # [K, 1]
        picks = torch.randint(x.shape[0], (self.codebook_size,), device=x.device)
        replacement = distributed.broadcast_from_main_(x[picks].contiguous())  # [K, d]
        # .data: a loss-learned codebook may be saved for backward (cosine lookup); dead rows
        # carry (almost) no gradient this step, and the next step sees the new values.
        codebook = self.codebook.data
        codebook.copy_(torch.where(dead, replacement.to(codebook.dtype), codebook))
        if self.codebook_learning == "ema":
            # Reset the EMA statistics with the code (EnCodec's bug was to keep them, so the
            # revived code was pulled straight back to its old place).
            fair_count = self.ema_count.sum() / self.codebook_size
            self.ema_count.copy_(torch.where(dead[:, 0], fair_count, self.ema_count))
            self.ema_sum.copy_(torch.where(dead, replacement * fair_count, self.ema_sum))
        self.usage.revive(dead[:, 0])

    @torch.compiler.disable
    @torch.no_grad()
    def _kmeans_init(self, x: Tensor) -> None:
        centroids, sizes = kmeans(x, self.codebook_size, self.kmeans_iters, cosine=self.cosine)
        centroids = distributed.broadcast_from_main_(centroids.contiguous())
        sizes = distributed.broadcast_from_main_(sizes.contiguous())
        self.codebook.data.copy_(centroids)
        if self.codebook_learning == "ema":
            self.ema_count.copy_(sizes.clamp_min(1.0))
            self.ema_sum.copy_(centroids * self.ema_count[:, None])
        self.initialised.fill_(True)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # A loaded state may carry an uninitialised codebook: read the flag again next time.
        self._known_initialised = False
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
