"""The ``vqcodec::nearest_code`` custom op: the one search entry point of the package.

Its default implementation is the plain-torch reference (:mod:`vqcodec.kernels.reference`). On
CUDA the fused Triton kernel (:mod:`vqcodec.kernels.triton_nearest_code`) is registered behind
the same op and falls back to the reference for inputs it does not handle, so callers always get
an answer. ``torch.compile`` sees one opaque node (the fake implementation gives its shape), so
the search never breaks a graph.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vqcodec.kernels.reference import check_shapes, nearest_code_reference


@torch.library.custom_op("vqcodec::nearest_code", mutates_args=())
def _nearest_code_op(x: Tensor, codebook: Tensor, fast: bool) -> Tensor:
    return nearest_code_reference(x, codebook)


@_nearest_code_op.register_fake
def _(x: Tensor, codebook: Tensor, fast: bool) -> Tensor:
    check_shapes(x, codebook)
    return x.new_empty(x.shape[:-1], dtype=torch.int64)


def _register_cuda_kernel() -> None:
    try:
        from vqcodec.kernels import triton_nearest_code as fused
    except ImportError:  # no Triton (CPU-only installs): the reference serves CUDA too
        return

    @_nearest_code_op.register_kernel("cuda")
    def _(x: Tensor, codebook: Tensor, fast: bool) -> Tensor:
        check_shapes(x, codebook)
        if fused.supports(x, codebook):
            return fused.nearest_code_triton(x, codebook, fast)
        return nearest_code_reference(x, codebook)


if torch.cuda.is_available():
    _register_cuda_kernel()


def nearest_code(x: Tensor, codebook: Tensor, fast: bool = False) -> Tensor:
    """Index of the nearest codebook row (squared L2) for every row of ``x``.

    Args:
        x: ``[N, D]`` rows, or ``[G, N, D]`` for ``G`` independent groups (one launch).
        codebook: ``[K, D]``, or ``[G, K, D]`` for batched groups.
        fast: on CUDA, allow bf16 tensor-core products (a near-tie may pick the second-nearest
            code). The default, exact, picks a nearest code up to float32 rounding; use it
            wherever codes are written to files. The CPU reference is always exact.

    Returns:
        int64 indices of shape ``[N]`` (or ``[G, N]``); ties go to the lowest index.
    """
    # Indices carry no gradient; detaching keeps autograd from asking the op for a formula.
    return _nearest_code_op(x.detach(), codebook.detach(), fast)
