"""The spectrum of M = Gᵀ G / n (and of M_b) from the small side, the n×n Gram matrix.

With G (n×P) the per-sample gradients and K = G Gᵀ / n:

- M and K have the same nonzero eigenvalues; an eigenvector u of K with eigenvalue λ > 0 maps to
  the unit eigenvector v = Gᵀ u / sqrt(n λ) of M. M's other P - rank eigenvalues are 0, with
  eigenvectors spanning null(G) = {v : G v = 0}.
- M_b = μμᵀ + c_b Σ = Gᵀ W G / n with W = c_b I + (1 - c_b) 11ᵀ/n (μ = Gᵀ1/n, Σ = M - μμᵀ), so
  its nonzero eigenvalues are those of W^½ K W^½, where W^½ = √c_b (I - 11ᵀ/n) + 11ᵀ/n.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from sgd_dynamics.threads import limit_threads

from .eigensolvers import block_eigsh
from .per_sample import GradientFactors

__all__ = ["GramSpectrum", "second_moment_from_gram", "minibatch_gram", "top_eigenvalues"]

logger = logging.getLogger("sgd_dynamics.curvature")

DENSE_GRAM_MAX = 400  # up to this n, a dense eigh of the n×n Gram matrix beats Lanczos
# Vectors per product with K in the block Lanczos solve: one product reads all n² entries of K
# whatever the block width, so blocks are nearly free; 16 was fastest on n = 5000, k = 15.
GRAM_BLOCK_SIZE = 16


@dataclass
class GramSpectrum:
    """Top of M from its Gram matrix.

    top: (k,) the k largest eigenvalues of M, descending (zeros beyond rank n).
    vectors: (P, k) orthonormal eigenvectors of M matching `top`.
    sample_vectors: (n, k') unit eigenvectors u of K matching `top` (k' = min(k, n)); they start
        the next solve on a nearby K (same samples, moved parameters).
    gram_values: (n,) all eigenvalues of K = G Gᵀ / n ascending (None when only the top was found).
    info: diagnostics (matvecs on K, residual, ...).
    """

    top: Tensor
    vectors: Tensor
    gram_values: Tensor | None
    info: dict[str, float]
    sample_vectors: Tensor | None = None


def _rank_threshold(values: Tensor, n: int) -> float:
    """Eigenvalues of the n×n K at or below 10·n·eps·max|λ| are numerically zero."""
    eps = torch.finfo(values.dtype).eps
    return 10.0 * n * eps * float(values.abs().max())


def _null_space_vectors(range_basis: Tensor, count: int, seed: int) -> Tensor:
    """`count` orthonormal vectors orthogonal to the orthonormal columns of range_basis (P×r)."""
    generator = torch.Generator(device=range_basis.device)
    generator.manual_seed(seed)
    size = range_basis.shape[0]
    x = torch.randn(
        size, count, dtype=range_basis.dtype, device=range_basis.device, generator=generator
    )
    for _ in range(2):
        x = x - range_basis @ (range_basis.T @ x)
        x, _ = torch.linalg.qr(x)
    return x


def second_moment_from_gram(
    factors: GradientFactors,
    k: int,
    *,
    all_values: bool = False,
    tol: float | None = None,
    seed: int = 0,
    on_failure: str = "warn",
    dense_threads: int | None = 1,
    gram: Tensor | None = None,
    x0: Tensor | None = None,
    check_steps: int | None = None,
) -> GramSpectrum:
    """k largest eigenpairs of M = Gᵀ G / n through K = G Gᵀ / n (n×n).

    all_values: compute all n eigenvalues of K (a dense `eigh` of K, also used for n <= 400);
    otherwise the top of K comes from `block_eigsh`.
    gram: K if already computed.
    x0: (n, j) starting vectors of the Lanczos solve on K (warm start: a previous snapshot's
        `sample_vectors` on the same samples); ignored when K is solved densely.
    check_steps: the Lanczos solve's multiplicity check (`block_eigsh`).
    Eigenvalues of K at or below 10·n·eps·λ_max count as zero: their eigenvectors of M are
    orthonormal vectors of null(G) rather than mapped ones.
    """
    n = factors.n_samples
    # K is symmetric by construction (to rounding for a dense G): no symmetrizing copy of n² numbers
    kernel = gram if gram is not None else factors.gram().div_(n)
    info: dict[str, float] = {}
    k_gram = min(k, n)
    all_pairs: tuple[Tensor, Tensor] | None = None

    def dense_pairs() -> tuple[Tensor, Tensor]:
        with limit_threads(dense_threads):
            values, vectors = torch.linalg.eigh(kernel)
        return values.flip(0), vectors.flip(1)  # descending

    if all_values or k_gram == n or n <= DENSE_GRAM_MAX:
        all_pairs = dense_pairs()
        top, u = all_pairs[0][:k_gram], all_pairs[1][:, :k_gram]
    else:
        result = block_eigsh(
            lambda v: kernel @ v,
            n,
            k_gram,
            "largest",
            tol=tol,
            dtype=kernel.dtype,
            device=kernel.device,
            seed=seed,
            on_failure=on_failure,
            check_steps=check_steps,
            name="M (Gram)",
            block_size=min(GRAM_BLOCK_SIZE, n),
            x0=x0 if x0 is not None and x0.shape[0] == n else None,
        )
        top, u = result.eigenvalues, result.eigenvectors
        info.update(
            mt_matvecs=float(result.matvecs),
            mt_iterations=float(result.iterations),
            mt_max_residual=result.max_residual,
            mt_converged=float(result.converged),
            mt_check_matvecs=float(result.check_matvecs),
            mt_check_rounds=float(result.check_rounds),
        )
    threshold = _rank_threshold(top, n)
    n_pos = int((top > threshold).sum())
    if n_pos < k and all_pairs is None:
        all_pairs = dense_pairs()  # rank below k: the null space needs the whole range of G
        top, u = all_pairs[0][:k_gram], all_pairs[1][:, :k_gram]
        threshold = _rank_threshold(top, n)
        n_pos = int((top > threshold).sum())
    vectors = factors.rmatmat(u[:, :n_pos]) / torch.sqrt(n * top[:n_pos])
    vectors, _ = _orthonormal_in_order(vectors)
    top_full = torch.zeros(k, dtype=kernel.dtype, device=kernel.device)
    top_full[:k_gram] = top
    if n_pos < k:
        assert all_pairs is not None
        values_desc, vectors_desc = all_pairs
        rank = int((values_desc > threshold).sum())
        range_basis = factors.rmatmat(vectors_desc[:, :rank]) / torch.sqrt(n * values_desc[:rank])
        range_basis, _ = _orthonormal_in_order(range_basis)
        vectors = torch.cat([vectors, _null_space_vectors(range_basis, k - n_pos, seed)], dim=1)
        logger.info("M has numerical rank %d < k = %d: completed with null-space vectors", rank, k)
    gram_values = all_pairs[0].flip(0) if all_pairs is not None else None
    return GramSpectrum(
        top=top_full, vectors=vectors, gram_values=gram_values, info=info, sample_vectors=u
    )


def _orthonormal_in_order(vectors: Tensor) -> tuple[Tensor, Tensor]:
    """QR with signs fixed so that nearly orthonormal columns change only by rounding."""
    if vectors.shape[1] == 0:
        return vectors, vectors.new_zeros(0, 0)
    q, r = torch.linalg.qr(vectors)
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1
    return q * signs, r * signs[:, None]


def minibatch_gram(kernel: Tensor, coefficient: float) -> Tensor:
    """W^½ K W^½ with W^½ = √c (I - 11ᵀ/n) + 11ᵀ/n: its eigenvalues are those of M_b (nonzero)."""
    root = math.sqrt(coefficient)
    left = root * kernel + (1.0 - root) * kernel.mean(dim=0, keepdim=True)
    return root * left + (1.0 - root) * left.mean(dim=1, keepdim=True)


def top_eigenvalues(
    matrix: Tensor,
    k: int,
    *,
    tol: float | None = None,
    seed: int = 0,
    on_failure: str = "warn",
    dense_threads: int | None = 1,
    name: str = "matrix",
    check_steps: int | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """k largest eigenvalues (descending) of a symmetric n×n matrix, zero-padded when k > n."""
    n = matrix.shape[0]
    k_small = min(k, n)
    if k_small == n or n <= DENSE_GRAM_MAX:
        with limit_threads(dense_threads):
            values = torch.linalg.eigvalsh(matrix).flip(0)[:k_small]
        info = {}
    else:
        result = block_eigsh(
            lambda v: matrix @ v,
            n,
            k_small,
            "largest",
            tol=tol,
            dtype=matrix.dtype,
            device=matrix.device,
            seed=seed,
            on_failure=on_failure,
            check_steps=check_steps,
            name=name,
        )
        values = result.eigenvalues
        info = {
            "matvecs": float(result.matvecs),
            "max_residual": result.max_residual,
            "converged": float(result.converged),
            "check_matvecs": float(result.check_matvecs),
        }
    out = torch.zeros(k, dtype=matrix.dtype, device=matrix.device)
    out[:k_small] = values
    return out, info
