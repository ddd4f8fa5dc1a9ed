"""The ``vqcodec::nearest_code`` custom op: the one search entry point of the package.

Its default implementation is the plain-torch reference (:mod:`vqcodec.kernels.reference`). On
CUDA the fused kernels are registered behind the same op: fast mode on Hopper GPUs uses the
Gluon kernel (:mod:`vqcodec.kernels.gluon_nearest_code`) for large problems and inside CUDA
graphs, everything else the Triton kernel
(:mod:`vqcodec.kernels.triton_nearest_code`); large exact searches take fp16 candidates
re-checked in float64 (:mod:`vqcodec.kernels.certified_nearest_code`), smaller ones three fp16
products of split operands (:mod:`vqcodec.kernels.split_nearest_code`); inputs none handles fall
back to the reference, so callers always get an answer. ``torch.compile`` sees one opaque node
(the fake implementation gives its shape), so the search never breaks a graph.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vqcodec.kernels.reference import check_shapes, nearest_code_reference


def _search_on_cpu(x: Tensor, codebook: Tensor, fast: bool) -> Tensor:
    return nearest_code_reference(x, codebook)


# Implementation per device type. Eager calls on plain tensors go straight to it: the custom-op
# dispatcher costs tens of microseconds of host time per call (about 100 us measured on the lent
# H100 machine's host), as much as a small search takes on the GPU.
_IMPLEMENTATIONS = {"cpu": _search_on_cpu}


@torch.library.custom_op("vqcodec::nearest_code", mutates_args=())
def _nearest_code_op(x: Tensor, codebook: Tensor, fast: bool) -> Tensor:
    return _search_on_cpu(x, codebook, fast)


@_nearest_code_op.register_fake
def _(x: Tensor, codebook: Tensor, fast: bool) -> Tensor:
    check_shapes(x, codebook)
    return x.new_empty(x.shape[:-1], dtype=torch.int64)


def _register_cuda_kernel() -> None:
    try:
        from vqcodec.kernels import certified_nearest_code as certified
        from vqcodec.kernels import split_nearest_code as split
        from vqcodec.kernels import triton_nearest_code as fused
    except ImportError:  # no Triton (CPU-only installs): the reference serves CUDA too
        return
    try:
        from vqcodec.kernels import gluon_nearest_code as hopper
    except ImportError:  # a Triton without Gluon: the Triton kernel serves Hopper too
        hopper = None

    @_nearest_code_op.register_kernel("cuda")
    def _search_on_cuda(x: Tensor, codebook: Tensor, fast: bool) -> Tensor:
        check_shapes(x, codebook)
        if not fused.supports(x, codebook):
            return nearest_code_reference(x, codebook)
        if fast:
            if hopper is not None and hopper.supports(x, codebook):
                if hopper.preferred(x, codebook):
                    return hopper.nearest_code_gluon(x, codebook)
            return fused.nearest_code_triton(x, codebook, fast=True)
        if certified.preferred(x, codebook):
            return certified.nearest_code_certified(x, codebook)
        return split.nearest_code_split(x, codebook)

    _IMPLEMENTATIONS["cuda"] = _search_on_cuda


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
    x, codebook = x.detach(), codebook.detach()
    implementation = _IMPLEMENTATIONS.get(x.device.type)
    if implementation is not None and _eager(x, codebook):
        return implementation(x, codebook, fast)
    return _nearest_code_op(x, codebook, fast)


def _eager(*tensors: Tensor) -> bool:
    """Plain tensors outside ``torch.compile`` and functorch transforms: nothing needs the op."""
    return (
        not torch.compiler.is_compiling()
        and not torch._C._are_functorch_transforms_active()
        and all(type(t) is Tensor for t in tensors)
    )
