"""A short learning run on synthetic clustered data: each learned quantizer ends with lower
quantisation error than it started with, and uses most of its codes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from vqcodec.quantizers import (
    ClusteredVectorQuantizer,
    GroupedQuantizer,
    GumbelQuantizer,
    Quantizer,
    ResidualQuantizer,
    SimVQ,
    VectorQuantizer,
)

DIM, CODES, CLUSTERS = 8, 32, 64


def clustered_data(generator: torch.Generator) -> Callable[[int], torch.Tensor]:
    """Draws ``[n, DIM, 1]`` batches from 64 Gaussian clusters (std 0.1) around random centres."""
    centres = torch.randn(CLUSTERS, DIM, generator=generator)

    def draw(n: int) -> torch.Tensor:
        which = torch.randint(CLUSTERS, (n,), generator=generator)
        rows = centres[which] + 0.1 * torch.randn(n, DIM, generator=generator)
        return rows[:, :, None]

    return draw


LEARNED: dict[str, Callable[[], Quantizer]] = {
    "vq_ema": lambda: VectorQuantizer(DIM, CODES),
    "vq_loss": lambda: VectorQuantizer(DIM, CODES, codebook_learning="loss"),
    "vq_kmeans": lambda: VectorQuantizer(DIM, CODES, kmeans_init=True),
    "cvq": lambda: ClusteredVectorQuantizer(DIM, CODES),
    "simvq": lambda: SimVQ(DIM, CODES),
    "residual": lambda: ResidualQuantizer(DIM, CODES, 2),
    "grouped": lambda: GroupedQuantizer(DIM, CODES, 2),
    "gumbel": lambda: GumbelQuantizer(DIM, CODES, kl_weight=0.0, commitment_weight=1.0),
}


def quantisation_error(quantizer: Quantizer, z: torch.Tensor) -> float:
    quantizer.eval()
    with torch.no_grad():
        error = float((quantizer(z).z_q - z).pow(2).mean())
    quantizer.train()
    return error


@pytest.mark.parametrize("name", sorted(LEARNED))
def test_learning_lowers_error_and_uses_the_codebook(name: str) -> None:
    draw = clustered_data(torch.Generator().manual_seed(1))
    quantizer = LEARNED[name]()
    held_out = draw(2048)
    start = quantisation_error(quantizer, held_out)
    params = [p for p in quantizer.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=1e-2) if params else None
    steps = 200
    for step in range(steps):
        if isinstance(quantizer, GumbelQuantizer):
            quantizer.anneal(step / steps)
        out = quantizer(draw(512))
        if optimiser is not None:
            optimiser.zero_grad()
            out.loss.backward()
            optimiser.step()
    end = quantisation_error(quantizer, held_out)
    quantizer.eval()
    usage = float(quantizer(held_out).metrics["code_usage"])
    print(f"{name}: error {start:.4f} -> {end:.4f}, usage {usage:.3f}")
    assert end < 0.5 * start
    assert usage >= 0.75
