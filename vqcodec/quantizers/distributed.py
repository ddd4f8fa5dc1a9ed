"""Keeping codebook statistics identical on every process.

Every function is a no-op when ``torch.distributed`` is not initialised or has one process, so
the same quantizer code runs on a laptop, one GPU and many. Callers must invoke them in the same
order on every rank (they are collectives); quantizers only do so in training mode, from state
that is itself identical on every rank.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import Tensor

_alone = False  # inside this_process_only()


def world_size() -> int:
    """Number of processes in the default group (1 when not distributed or alone)."""
    if not _alone and dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


@contextmanager
def this_process_only() -> Iterator[None]:
    """Inside, this process acts as if it were the only one: no collectives, and it counts as
    the main process. For work that one process does while the others wait (benchmarks time one
    GPU's training steps this way inside a multi-GPU job); the processes' codebooks diverge.
    """
    global _alone
    before, _alone = _alone, True
    try:
        yield
    finally:
        _alone = before


def is_main_process() -> bool:
    """True on rank 0, or when not distributed."""
    return world_size() == 1 or dist.get_rank() == 0


def all_reduce_sum_(tensor: Tensor) -> Tensor:
    """Sum ``tensor`` in place over all processes and return it."""
    if world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_from_main_(tensor: Tensor) -> Tensor:
    """Overwrite ``tensor`` in place with rank 0's value and return it."""
    if world_size() > 1:
        dist.broadcast(tensor, src=0)
    return tensor


def all_gather_stacked(tensor: Tensor) -> Tensor:
    """``[world_size, *tensor.shape]``: every process's ``tensor``, in rank order."""
    if world_size() == 1:
        return tensor.unsqueeze(0)
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.stack(parts)


def state_fingerprint(module: torch.nn.Module) -> dict[str, str]:
    """SHA-256 of every parameter and buffer, by name: equal dicts mean bit-identical state.

    Used to check that processes agree (compare the dicts gathered from every rank).
    """
    import hashlib

    fingerprint = {}
    for name, tensor in module.state_dict().items():
        data = tensor.detach().cpu().contiguous().reshape(-1)
        digest = hashlib.sha256(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
        fingerprint[name] = f"{data.dtype}:{tuple(data.shape)}:{digest.hexdigest()}"
    return fingerprint
