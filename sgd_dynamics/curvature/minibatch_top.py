"""The k largest eigenvalues of the mini-batch second moment M_b = c M + (1 - c) μμᵀ.

From the Gram side of M (when the snapshot formed K = G Gᵀ / n) or from the P×P matrix M (dense
method); c = `operators.minibatch_coefficient(n, b)`. Without either, the iterative method
solves on M_b's products (iterative_snapshot.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .dense import eigenvalues
from .gram import minibatch_gram, top_eigenvalues
from .operators import CurvatureOperators
from .options import SpectraOptions


def minibatch_top_from_gram(
    gram: Tensor, c: float, options: SpectraOptions
) -> tuple[Tensor, dict[str, float]]:
    """(k,) largest eigenvalues of M_b = c M + (1 - c) μμᵀ, descending, from the Gram side
    W^½ K W^½ (`gram` = K, formed by the snapshot), and the solver figures."""
    matrix, settings = minibatch_gram(gram, c), options.gram_solver_settings()
    values, info = top_eigenvalues(matrix, options.k, name="M_b (Gram)", **settings)
    return values, {f"mb_{key}": value for key, value in info.items()}


def minibatch_top_from_moment(
    ops: CurvatureOperators, moment: Tensor, c: float, options: SpectraOptions
) -> Tensor:
    """(k,) largest eigenvalues of M_b = c M + (1 - c) μμᵀ from the P×P matrix M (dense)."""
    mu = ops.mean_gradient
    matrix = c * moment + (1.0 - c) * torch.outer(mu, mu)
    return eigenvalues(matrix, options.dense_threads)[-options.k :].flip(0)
