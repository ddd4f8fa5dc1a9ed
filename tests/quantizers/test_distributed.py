"""Two CPU processes (gloo) with different data on each rank: every codebook, EMA statistic and
usage estimate stays bit-identical across ranks. A control run with the cross-process reduction
switched off shows that the check can fail."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from vqcodec.quantizers import (
    ClusteredVectorQuantizer,
    FiniteScalarQuantizer,
    GroupedQuantizer,
    GumbelQuantizer,
    ResidualQuantizer,
    SimVQ,
    VectorQuantizer,
    distributed,
)

WORLD = 2


class QuantizerBank(nn.Module):
    """A shared encoder feeding every quantizer, so DDP averages real gradients."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Conv1d(8, 8, 1)
        self.quantizers = nn.ModuleDict(
            {
                "vq_kmeans_ema_dead": VectorQuantizer(
                    8, 16, kmeans_init=True, decay=0.9, dead_code_threshold=0.5
                ),
                "vq_loss_dead": VectorQuantizer(
                    8, 16, codebook_learning="loss", dead_code_threshold=0.5
                ),
                "cvq": ClusteredVectorQuantizer(8, 16),
                "simvq": SimVQ(8, 16),
                "fsq": FiniteScalarQuantizer([5, 5, 5, 5, 3, 3, 3, 3]),
                "residual_dropout": ResidualQuantizer(8, 16, 3, quantizer_dropout=0.5, decay=0.9),
                "grouped": GroupedQuantizer(8, 16, 2),
                "gumbel": GumbelQuantizer(8, 16, dead_code_interval=2),
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        loss = h.new_zeros(())
        for quantizer in self.quantizers.values():
            out = quantizer(h)
            loss = loss + out.loss + (out.z_q - h).pow(2).mean()
        return loss


def _worker(rank: int, init_file: str, out_dir: str, synced: bool) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        if not synced:
            distributed.world_size = lambda: 1  # the control: no cross-process reduction
        torch.manual_seed(0)  # identical initial weights on every rank
        bank = QuantizerBank()
        # broadcast_buffers=False: DDP must not paper over drift by copying rank 0's buffers.
        model = DistributedDataParallel(bank, broadcast_buffers=False)
        optimiser = torch.optim.SGD(model.parameters(), lr=0.05)
        data = torch.Generator().manual_seed(1000 + rank)  # different data on every rank
        for _ in range(8):
            x = torch.randn(4, 8, 64, generator=data) * (1.0 + rank)
            loss = model(x)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        fingerprint = distributed.state_fingerprint(bank.quantizers)
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(fingerprint))
    finally:
        dist.destroy_process_group()


def _run(tmp_path: Path, synced: bool) -> tuple[dict[str, str], dict[str, str]]:
    out_dir = tmp_path / ("synced" if synced else "control")
    out_dir.mkdir()
    init_file = str(out_dir / "rendezvous")
    mp.spawn(_worker, args=(init_file, str(out_dir), synced), nprocs=WORLD, join=True)
    ranks = [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(WORLD)]
    return ranks[0], ranks[1]


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_codebook_state_is_identical_across_ranks(tmp_path: Path) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    rank0, rank1 = _run(tmp_path, synced=True)
    assert rank0.keys() == rank1.keys()
    differing = [name for name in rank0 if rank0[name] != rank1[name]]
    assert differing == []

    control0, control1 = _run(tmp_path, synced=False)
    drifted = {name.split(".")[0] for name in control0 if control0[name] != control1[name]}
    # Without reduction, the statistics that steer each learned codebook drift apart.
    assert {
        "vq_kmeans_ema_dead",
        "vq_loss_dead",
        "cvq",
        "simvq",
        "residual_dropout",
        "grouped",
        "gumbel",
    } <= drifted
