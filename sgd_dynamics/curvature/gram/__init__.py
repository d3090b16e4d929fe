"""The Gram route: M = Gᵀ G / n through the n×n Gram matrix K = G Gᵀ / n of the per-sample
gradients (G: n×P), the smaller eigenproblem when n < P.

- `spectrum`: M's (and M_b's) top eigenpairs and exact spectrum from K.
- `assembly`: K from gradient factors or from the samples, on one process or assembled across
  DDP processes.
"""

from .assembly import per_sample_gram, snapshot_gram
from .spectrum import GramSpectrum, gram_eigenvalues, second_moment_from_gram, top_eigenvalues

__all__ = [
    "GramSpectrum",
    "second_moment_from_gram",
    "top_eigenvalues",
    "gram_eigenvalues",
    "snapshot_gram",
    "per_sample_gram",
]
