"""Checking that data-parallel replicas agree: parameters and every quantizer's state.

Under data parallelism each process holds a copy of the model. DDP keeps the parameters equal by
averaging gradients, but a quantizer's codebook statistics (k-means initialisation, EMA sums,
usage estimates, dead-code replacement, CVQ anchors) change outside autograd; they stay equal only
because the quantizers reduce over processes and make random choices on rank 0. This check proves
it at run time: every process hashes its state, rank 0's hashes are compared with everyone's,
and the first disagreement stops the run with the names of the tensors that differ.

Other buffers (batch-norm running statistics) are left out on purpose: each process updates them
from its own batch, and DDP copies rank 0's values to every process before each forward pass,
which is the standard DDP behaviour and what gets exported.
"""

from __future__ import annotations

import torch.distributed as dist
from torch import nn

from vqcodec.quantizers import Quantizer
from vqcodec.quantizers.distributed import state_fingerprint, world_size


class ReplicaDriftError(RuntimeError):
    """Processes hold different parameters or quantizer state."""


def replica_fingerprint(model: nn.Module) -> dict[str, str]:
    """SHA-256 of every parameter and of every buffer inside a quantizer, by name."""
    quantizer_prefixes = tuple(
        f"{name}." for name, module in model.named_modules() if isinstance(module, Quantizer)
    )
    parameters = {name for name, _ in model.named_parameters()}
    return {
        name: digest
        for name, digest in state_fingerprint(model).items()
        if name in parameters or name.startswith(quantizer_prefixes)
    }


def check_replicas_agree(model: nn.Module) -> int:
    """Raise :class:`ReplicaDriftError` unless every process's fingerprint equals rank 0's.

    A collective: call it at the same point on every process. Returns the number of tensors
    compared (all of them when not distributed, where the check trivially passes).
    """
    fingerprint = replica_fingerprint(model)
    if world_size() == 1:
        return len(fingerprint)
    gathered: list[dict[str, str] | None] = [None] * world_size()
    dist.all_gather_object(gathered, fingerprint)
    reference = gathered[0]
    for rank, other in enumerate(gathered[1:], start=1):
        differing = sorted(
            name
            for name in reference.keys() | other.keys()
            if reference.get(name) != other.get(name)
        )
        if differing:
            shown = ", ".join(differing[:5]) + (
                f" and {len(differing) - 5} more" if len(differing) > 5 else ""
            )
            raise ReplicaDriftError(f"process {rank} disagrees with process 0 on {shown}")
    return len(fingerprint)
