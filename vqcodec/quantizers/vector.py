"""Nearest-code vector quantization (VQ-VAE, van den Oord et al., arXiv 1711.00937) with the
rotation trick (arXiv 2410.06424), EMA or loss-learned codebooks, k-means initialisation,
cosine lookup, a low-dimensional lookup space (DAC, arXiv 2306.06546) and dead-code replacement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqcodec.kernels import nearest_code
from vqcodec.quantizers import distributed
from vqcodec.quantizers.base import QuantizerOutput, RowQuantization, SingleLevelQuantizer, to_rows
from vqcodec.quantizers.estimators import GradientEstimator, make_estimator
from vqcodec.quantizers.kmeans import kmeans
from vqcodec.quantizers.telemetry import (
    UsageTracker,
    bias_correction,
    code_histogram,
    corrected_share,
    step_share,
    usage_metrics,
)


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

    def quantize_searched(
        self, x: Tensor, codebook: Tensor, indices: Tensor, *, update_codebook: bool = True
    ) -> RowQuantization:
        """Finish quantizing rows whose nearest codes are known (see :meth:`search_inputs`).

        In training, ``update_codebook=False`` leaves the codebook statistics (and the metrics,
        which come from them) to a later :func:`update_codebooks` call that folds several
        quantizers' batches in at once.
        """
        q = codebook[indices]  # [N, d]; carries gradient to a loss-learned codebook
        loss = self.commitment_weight * F.mse_loss(x.float(), q.detach().float())
        if self.codebook_learning == "loss":
            loss = loss + F.mse_loss(q.float(), x.detach().float())
        z_q = self.project_out(self.estimator(x, q))
        if not self.training:
            metrics = usage_metrics(code_histogram(indices, self.codebook_size))
            metrics["dead_codes"] = self.usage.dead_mask(self.dead_code_threshold).sum().float()
        elif update_codebook:
            metrics = update_codebooks([self], [x.detach()], [indices])[0]
        else:
            metrics = {}
        return RowQuantization(z_q, indices, loss, metrics)

    def forward_deferring_update(self, z: Tensor) -> tuple[QuantizerOutput, Tensor, Tensor]:
        """Training forward that leaves the codebook update to :func:`update_codebooks`.

        Returns the output (without metrics), and the lookup-space rows ``[N, d]`` and their
        codes ``[N]`` to pass to :func:`update_codebooks` afterwards.
        """
        self._check_latent(z)
        rows, batch_shape = to_rows(z)
        x, codebook = self.search_inputs(rows)
        indices = nearest_code(x, codebook, fast=True)
        out = self.quantize_searched(x, codebook, indices, update_codebook=False)
        return self.output_from_rows(out, batch_shape), x.detach(), indices

    def encode_rows(self, rows: Tensor) -> Tensor:
        return nearest_code(self._lookup_rows(rows), self.lookup_codebook())

    def decode_rows(self, indices: Tensor) -> Tensor:
        # The estimators' output equals the code exactly, so this matches forward's z_q.
        return self.project_out(self.lookup_codebook()[indices].float())

    # -- k-means initialisation (first training batch) ---------------------------------------

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

    def update_settings(self) -> tuple:
        """What must match for :func:`update_codebooks` to update quantizers together."""
        return (
            self.codebook_size,
            self.codebook_dim,
            self.codebook_learning,
            self.decay,
            self.usage.decay,
            self.dead_code_threshold,
            self.codebook.dtype,
            self.codebook.device,
        )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # A loaded state may carry an uninitialised codebook: read the flag again next time.
        self._known_initialised = False
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def updates_together(quantizers: Sequence[nn.Module]) -> bool:
    """Whether :func:`update_codebooks` can update these quantizers in one go: all plain
    :class:`VectorQuantizer` with the same codebook shape and learning settings."""
    return all(type(q) is VectorQuantizer for q in quantizers) and (
        len({q.update_settings() for q in quantizers}) == 1
    )


@torch.no_grad()
def update_codebooks(
    quantizers: Sequence[VectorQuantizer], xs: Sequence[Tensor], indices: Sequence[Tensor]
) -> list[dict[str, Tensor]]:
    """Fold one training batch into the codebook statistics of several quantizers at once.

    The quantizers (residual levels or groups; :func:`updates_together` must hold) are updated
    as a stack: one all-reduce of the statistics and one broadcast of the replacement
    candidates for all of them, and each step's arithmetic once for the stack instead of once
    per quantizer (the per-step host work of a small codec is mostly such launches).

    For each quantizer: EMA of the all-process code counts and sums, codebook = trusted EMA
    means; running usage update; dead codes (share under ``dead_code_threshold / K``) replaced
    by a random row of the batch drawn on rank 0, their EMA statistics reset with them.

    Args:
        quantizers: ``L`` quantizers.
        xs: each one's lookup-space rows ``[N, d]`` (one ``N`` for all).
        indices: each one's nearest codes ``[N]``.

    Returns:
        Per quantizer: ``code_usage`` and ``perplexity`` of the all-process batch codes, and
        ``dead_codes``, the codes replaced in this step.
    """
    first = quantizers[0]
    levels, size, decay = len(quantizers), first.codebook_size, first.decay
    x = torch.stack(xs).float()  # [L, N, d]
    rows, dim = x.shape[1], x.shape[2]
    # Code k of quantizer l is bin l·K + k: one histogram (and one sum) for the whole stack.
    offsets = torch.arange(levels, device=x.device)[:, None] * size
    bins = (torch.stack(indices) + offsets).reshape(-1)
    counts = code_histogram(bins, levels * size)  # [L·K]
    codebooks = [q.codebook.data for q in quantizers]  # .data: a learned codebook is a Parameter
    codebook = torch.stack(codebooks)  # [L, K, d]
    ema = first.codebook_learning == "ema"
    if ema:
        sums = x.new_zeros(levels * size, dim).index_add_(0, bins, x.reshape(-1, dim))
        stats = distributed.all_reduce_sum_(torch.cat([counts[:, None], sums], dim=1))
        stats = stats.view(levels, size, 1 + dim)
        counts, sums = stats[..., 0], stats[..., 1:]  # [L, K], [L, K, d]
        ema_count = torch.stack([q.ema_count for q in quantizers]).lerp_(counts, 1 - decay)
        ema_sum = torch.stack([q.ema_sum for q in quantizers]).lerp_(sums, 1 - decay)
        means = ema_sum / ema_count.clamp_min(1e-5)[..., None]
        codebook = torch.where((ema_count > 1e-5)[..., None], means, codebook)
    else:
        counts = distributed.all_reduce_sum_(counts).view(levels, size)
    usage, usage_decay = [q.usage for q in quantizers], first.usage.decay
    ema_share = torch.stack([u.ema_share for u in usage]).lerp_(step_share(counts), 1 - usage_decay)
    steps = torch.stack([u.steps for u in usage]) + 1  # [L]
    share = corrected_share(ema_share, steps, usage_decay)
    dead = share < first.dead_code_threshold / size  # [L, K]
    if rows == 0:  # nothing to replace dead codes with
        dead = torch.zeros_like(dead)
    elif first.dead_code_threshold > 0:
        # Fixed-size, mask-based updates: counting the dead codes on the host would stall every
        # training step until the GPU (and, under DDP, every other process) caught up. One
        # candidate is drawn per code and only dead codes take theirs. Rank 0 draws; everyone
        # receives the same candidates.
        picks = torch.randint(rows, (levels, size, 1), device=x.device).expand(-1, -1, dim)
        replacement = distributed.broadcast_from_main_(torch.gather(x, 1, picks))  # [L, K, d]
        codebook = torch.where(dead[..., None], replacement.to(codebook.dtype), codebook)
        if ema:
            # Reset the EMA statistics with the code (EnCodec's bug was to keep them, so the
            # revived code was pulled straight back to its old place).
            fair_count = ema_count.sum(-1, keepdim=True) / size  # [L, 1]
            ema_count = torch.where(dead, fair_count, ema_count)
            ema_sum = torch.where(dead[..., None], replacement * fair_count[..., None], ema_sum)
        # A fresh uniform share, so a revived code is not replaced again at once.
        fresh = bias_correction(steps, usage_decay)[:, None] / size
        ema_share = torch.where(dead, fresh, ema_share)
    # Write back. A loss-learned codebook may be saved for backward (cosine lookup); its dead
    # rows carry (almost) no gradient this step, and the next step sees the new values.
    targets = [codebooks, [u.ema_share for u in usage], [u.steps for u in usage]]
    sources = [codebook, ema_share, steps]
    if ema:
        targets += [[q.ema_count for q in quantizers], [q.ema_sum for q in quantizers]]
        sources += [ema_count, ema_sum]
    for target, source in zip(targets, sources):
        torch._foreach_copy_(target, list(source.unbind(0)))
    metrics = usage_metrics(counts)  # [L] each
    metrics["dead_codes"] = dead.sum(-1).float()
    return [{name: value[level] for name, value in metrics.items()} for level in range(levels)]
