"""Quantizers side by side with vector-quantize-pytorch on the same synthetic data.

For each pair: final quantisation MSE on held-out data, code usage on held-out data, and the
median CPU time of one training step (forward, backward, optimiser step), after the same number
of steps with the same codebook size, the same optimiser and the same loss weights
(vector-quantize-pytorch's default commitment weight is 1.0, ours 0.25: both are set to 0.25,
except the loss-learned pair, where both use 1.0).

    python benchmarks/quantizers.py [--steps 300] [--batch 4096] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn
from vector_quantize_pytorch import FSQ, ResidualVQ, VectorQuantize
from vector_quantize_pytorch import SimVQ as ReferenceSimVQ

from vqcodec.quantizers import (
    ClusteredVectorQuantizer,
    FiniteScalarQuantizer,
    ResidualQuantizer,
    SimVQ,
    VectorQuantizer,
)

DIM, CODES, CLUSTERS = 32, 256, 1024


class Adapter(nn.Module):
    """Runs a quantizer on rows ``[N, D]`` and returns ``(z_q, indices, loss)``."""

    def __init__(self, quantizer: nn.Module, ours: bool) -> None:
        super().__init__()
        self.quantizer, self.ours = quantizer, ours

    def forward(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.ours:
            out = self.quantizer(rows[:, :, None])
            return out.z_q[:, :, 0], out.codes[:, 0, 0], out.loss
        result = self.quantizer(rows[None])
        z_q, indices = result[0][0], result[1][0]
        loss = result[2].sum() if len(result) > 2 else rows.new_zeros(())
        if indices.dim() > 1:
            indices = indices[..., 0]  # first residual level
        return z_q, indices, loss


PAIRS: dict[str, tuple[Callable[[], nn.Module], Callable[[], nn.Module]]] = {
    "VQ, EMA, rotation trick": (
        lambda: VectorQuantizer(DIM, CODES, decay=0.8),
        lambda: VectorQuantize(DIM, CODES, decay=0.8, rotation_trick=True, commitment_weight=0.25),
    ),
    "VQ, EMA, k-means init + dead codes": (
        lambda: VectorQuantizer(DIM, CODES, decay=0.8, kmeans_init=True),
        lambda: VectorQuantize(
            DIM,
            CODES,
            decay=0.8,
            kmeans_init=True,
            threshold_ema_dead_code=2,
            commitment_weight=0.25,
        ),
    ),
    "VQ, loss-learned codebook": (
        lambda: VectorQuantizer(DIM, CODES, codebook_learning="loss", commitment_weight=1.0),
        lambda: VectorQuantize(
            DIM, CODES, learnable_codebook=True, ema_update=False, rotation_trick=True
        ),
    ),
    "SimVQ": (lambda: SimVQ(DIM, CODES), lambda: ReferenceSimVQ(DIM, CODES)),
    "FSQ [8,8,4] (256 codes)": (
        lambda: FiniteScalarQuantizer([8, 8, 4], dim=DIM),
        lambda: FSQ([8, 8, 4], dim=DIM),
    ),
    "Residual VQ, 4 levels": (
        lambda: ResidualQuantizer(DIM, CODES, 4, decay=0.8),
        lambda: ResidualVQ(
            dim=DIM,
            codebook_size=CODES,
            num_quantizers=4,
            decay=0.8,
            rotation_trick=True,
            commitment_weight=0.25,
        ),
    ),
    "CVQ (no counterpart)": (lambda: ClusteredVectorQuantizer(DIM, CODES), None),
}


def make_data(seed: int) -> Callable[[int], torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(CLUSTERS, DIM, generator=generator)
    scales = torch.rand(CLUSTERS, 1, generator=generator) * 0.3 + 0.05

    def draw(n: int) -> torch.Tensor:
        which = torch.randint(CLUSTERS, (n,), generator=generator)
        return centres[which] + scales[which] * torch.randn(n, DIM, generator=generator)

    return draw


def run(module: nn.Module, ours: bool, steps: int, batch: int) -> tuple[float, float, float]:
    model = Adapter(module, ours)
    draw = make_data(seed=0)
    held_out = draw(16384)
    # The input passes through a learnable layer so the commitment term has something to train,
    # as in a real encoder; it starts as the identity.
    encoder = nn.Linear(DIM, DIM)
    nn.init.eye_(encoder.weight)
    nn.init.zeros_(encoder.bias)
    params = list(encoder.parameters()) + [p for p in module.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=1e-3)
    times = []
    for _ in range(steps):
        rows = draw(batch)
        start = time.perf_counter()
        h = encoder(rows)
        z_q, _, loss = model(h)
        total = loss + (z_q - rows).pow(2).mean()
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
        times.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        h = encoder(held_out)
        z_q, indices, _ = model(h)
        mse = float((z_q - h).pow(2).mean())
        usage = torch.unique(indices).numel() / (module.codebook_size if ours else CODES)
    return mse, usage, statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"data: {CLUSTERS} clusters in {DIM}-D, {CODES} codes, {args.steps} steps of {args.batch} rows, "
        f"{args.threads} CPU thread(s), torch {torch.__version__}"
    )
    print(
        "| quantizer | vqcodec MSE | vq-pytorch MSE | vqcodec usage | vq-pytorch usage | vqcodec ms/step | vq-pytorch ms/step |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, (ours_factory, theirs_factory) in PAIRS.items():
        torch.manual_seed(0)
        ours = run(ours_factory(), True, args.steps, args.batch)
        if theirs_factory is None:
            theirs = ("–", "–", "–")
        else:
            torch.manual_seed(0)
            theirs = tuple(f"{v:.4g}" for v in run(theirs_factory(), False, args.steps, args.batch))
        print(
            f"| {name} | {ours[0]:.4g} | {theirs[0]} | {ours[1]:.1%} | "
            f"{theirs[1] if theirs[1] == '–' else f'{float(theirs[1]):.1%}'} | {ours[2]:.2f} | {theirs[2]} |"
        )


if __name__ == "__main__":
    main()
