"""The ``vqcodec::nearest_code`` custom op: the one search entry point of the package.

Its default implementation is the plain-torch reference (:mod:`vqcodec.kernels.reference`);
device kernels register behind the same op and fall back to the reference for inputs they do not
handle. ``torch.compile`` sees one opaque node (the fake implementation gives its shape), so the
search never breaks a graph.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vqcodec.kernels.reference import check_shapes, nearest_code_reference


@torch.library.custom_op("vqcodec::nearest_code", mutates_args=())
def _nearest_code_op(x: Tensor, codebook: Tensor) -> Tensor:
    return nearest_code_reference(x, codebook)


@_nearest_code_op.register_fake
def _(x: Tensor, codebook: Tensor) -> Tensor:
    check_shapes(x, codebook)
    return x.new_empty(x.shape[:-1], dtype=torch.int64)


def nearest_code(x: Tensor, codebook: Tensor) -> Tensor:
    """Index of the nearest codebook row (squared L2) for every row of ``x``.

    This is the one search entry point of the package. It dispatches through the
    ``vqcodec::nearest_code`` custom op, so ``torch.compile`` treats it as a single opaque node
    and device-specific kernels can be registered behind it.

    Args:
        x: ``[N, D]`` rows, or ``[G, N, D]`` for ``G`` independent groups.
        codebook: ``[K, D]``, or ``[G, K, D]`` for batched groups.

    Returns:
        int64 indices of shape ``[N]`` (or ``[G, N]``); ties go to the lowest index.
    """
    # Indices carry no gradient; detaching keeps autograd from asking the op for a formula.
    return _nearest_code_op(x.detach(), codebook.detach())
