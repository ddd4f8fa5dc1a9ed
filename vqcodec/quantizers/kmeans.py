"""k-means for codebook initialisation, searching only through ``nearest_code``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vqcodec.kernels import nearest_code


@torch.no_grad()
def kmeans(
    x: Tensor,
    num_clusters: int,
    iters: int = 10,
    cosine: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means on rows ``x [N, d]``, initialised from random rows.

    Clusters that lose all their points keep their previous centroid. With ``cosine`` the
    centroids are renormalised to unit length every iteration (spherical k-means).

    Args:
        x: ``[N, d]`` data; when ``N < num_clusters``, the initial rows are drawn with replacement.
        num_clusters: ``K``.
        iters: Lloyd iterations.
        cosine: spherical k-means on l2-normalised rows.
        generator: random source for the initial rows (CPU generator).

    Returns:
        centroids ``[K, d]`` (float32) and cluster sizes ``[K]`` (float32) from the last assignment.
    """
    x = x.float()
    if cosine:
        x = F.normalize(x, dim=-1)
    num_rows = x.shape[0]
    if num_rows >= num_clusters:
        start = torch.randperm(num_rows, generator=generator)[:num_clusters]
    else:
        start = torch.randint(num_rows, (num_clusters,), generator=generator)
    centroids = x[start.to(x.device)].clone()
    sizes = torch.zeros(num_clusters, device=x.device)
    for _ in range(iters):
        assignment = nearest_code(x, centroids, fast=True)  # initialisation: near-ties are harmless
        sizes = torch.bincount(assignment, minlength=num_clusters).float()
        sums = torch.zeros_like(centroids).index_add_(0, assignment, x)
        filled = sizes > 0
        centroids[filled] = sums[filled] / sizes[filled, None]
        if cosine:
            centroids = F.normalize(centroids, dim=-1)
    return centroids, sizes
