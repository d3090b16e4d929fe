"""All eigenvalues of the n×n Gram matrix K = G Gᵀ / n: M's exact spectrum (with P - n zeros).

G (n×P) holds the per-sample gradients g_i = ∇f_i as rows; M = Gᵀ G / n and K share their
nonzero eigenvalues. K comes from per-sample gradient factors (`per_sample.GradientFactors`:
layer by layer for networks of nn.Linear layers, never forming G) or, for any other model,
block by block from per-sample gradients of chunks of samples (G never held whole: the chunk
pairs (a, b), b >= a, recompute chunk b's gradients, about (n / chunk)² / 2 chunk passes).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .functional import FunctionalModel
from .gram import top_eigenvalues
from .per_sample import GradientFactors, per_sample_gradients

__all__ = ["gram_eigenvalues", "per_sample_gram"]


def per_sample_gram(
    fm: FunctionalModel, inputs: Tensor, targets: Tensor, chunk_size: int
) -> Tensor:
    """K = G Gᵀ / n (n, n) in fm.dtype, from per-sample gradients of pairs of chunks."""
    n = inputs.shape[0]
    kernel = torch.empty(n, n, dtype=fm.dtype, device=fm.device)
    starts = range(0, n, chunk_size)
    for a in starts:
        rows = slice(a, a + chunk_size)
        left = per_sample_gradients(fm, inputs[rows], targets[rows], chunk_size)
        for b in starts:
            if b < a:
                continue
            cols = slice(b, b + chunk_size)
            if b == a:
                right = left
            else:
                right = per_sample_gradients(fm, inputs[cols], targets[cols], chunk_size)
            block = left @ right.T
            kernel[rows, cols] = block
            if b != a:
                kernel[cols, rows] = block.T
    return kernel / n


def gram_eigenvalues(source: GradientFactors | Tensor, dense_threads: int | None = 1) -> Tensor:
    """All n eigenvalues of K, descending: `source` is K itself (n, n) or gradient factors."""
    if isinstance(source, GradientFactors):
        kernel = source.gram().div_(source.n_samples)
    else:
        kernel = source
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(f"the Gram matrix must be square (n, n), got {tuple(kernel.shape)}")
    values, _ = top_eigenvalues(kernel, kernel.shape[0], dense_threads=dense_threads, name="K")
    return values
