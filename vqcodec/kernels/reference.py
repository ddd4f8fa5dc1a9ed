"""The plain-torch nearest-code search: the specification every other implementation matches.

* distance is squared L2, accumulated in float32 whatever the input dtype;
* ties go to the lowest code index;
* memory stays bounded: rows are processed in chunks so that no more than
  ``_MAX_CHUNK_ELEMENTS`` distances exist at once (never the full ``N x K`` matrix for large
  inputs).

It runs on any device. Quantizers never call it directly: they call
:func:`vqcodec.kernels.nearest_code`, the dispatching op.
"""

from __future__ import annotations

import torch
from torch import Tensor

# About 64 MiB of float32 distances per chunk: bounded memory without tiny, slow chunks.
_MAX_CHUNK_ELEMENTS = 1 << 24


def nearest_code_reference(x: Tensor, codebook: Tensor) -> Tensor:
    """Index of the nearest codebook row for every row of ``x`` (plain torch, any device).

    Args:
        x: ``[N, D]`` or batched ``[G, N, D]`` float tensor (float32, bfloat16 or float16).
        codebook: ``[K, D]``, or ``[G, K, D]`` when ``x`` is batched.

    Returns:
        ``[N]`` (or ``[G, N]``) int64 indices into the codebook; ties go to the lowest index.
    """
    check_shapes(x, codebook)
    if x.dim() == 2:
        return _nearest_rows(x, codebook)
    return torch.stack([_nearest_rows(x[g], codebook[g]) for g in range(x.shape[0])])


def _nearest_rows(x: Tensor, codebook: Tensor) -> Tensor:
    num_rows, num_codes = x.shape[0], codebook.shape[0]
    out = torch.empty(num_rows, dtype=torch.int64, device=x.device)
    if num_rows == 0:
        return out
    codes = codebook.float()
    # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2. The ||x||^2 term is constant per row and cannot
    # change the argmin, so it is dropped; the rest is one float32 matrix product per chunk.
    half_norms = 0.5 * codes.pow(2).sum(dim=1)  # [K]
    chunk = max(1, _MAX_CHUNK_ELEMENTS // max(num_codes, 1))
    for start in range(0, num_rows, chunk):
        rows = x[start : start + chunk].float()
        # Disable TF32 so CUDA matches the CPU result: TF32 products can reorder near-ties.
        with _full_float32_matmul():
            scores = rows @ codes.T - half_norms  # [n, K]; maximise x.c - ||c||^2 / 2
        # argmax returns the first maximal index, which is the lowest-index tie rule.
        out[start : start + chunk] = scores.argmax(dim=1)
    return out


class _full_float32_matmul:
    """Context manager that turns off TF32 for CUDA matrix products inside it."""

    def __enter__(self) -> None:
        self._saved = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False

    def __exit__(self, *exc: object) -> None:
        torch.backends.cuda.matmul.allow_tf32 = self._saved


def check_shapes(x: Tensor, codebook: Tensor) -> None:
    if x.dim() not in (2, 3) or codebook.dim() != x.dim():
        raise ValueError(
            f"nearest_code expects x [N, D] with codebook [K, D], or x [G, N, D] with codebook "
            f"[G, K, D]; got x {tuple(x.shape)} and codebook {tuple(codebook.shape)}"
        )
    if x.shape[-1] != codebook.shape[-1]:
        raise ValueError(
            f"x has {x.shape[-1]} features per row but the codebook has {codebook.shape[-1]}"
        )
    if x.dim() == 3 and x.shape[0] != codebook.shape[0]:
        raise ValueError(f"x has {x.shape[0]} groups but the codebook has {codebook.shape[0]}")
    if codebook.shape[-2] == 0:
        raise ValueError("the codebook is empty")
    if not (x.is_floating_point() and codebook.is_floating_point()):
        raise TypeError(f"nearest_code needs float inputs, got {x.dtype} and {codebook.dtype}")
