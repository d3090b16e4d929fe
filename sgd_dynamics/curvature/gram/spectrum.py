"""The spectrum of M = Gᵀ G / n (and of M_b) from the small side, the n×n Gram matrix.

With G (n×P) the per-sample gradients and K = G Gᵀ / n:

- M and K have the same nonzero eigenvalues; an eigenvector u of K with eigenvalue λ > 0 maps to
  the unit eigenvector v = Gᵀ u / sqrt(n λ) of M. M's other P - rank eigenvalues are 0, with
  eigenvectors spanning null(G) = {v : G v = 0}.
- M's exact spectrum: all n eigenvalues of K (`gram_eigenvalues`) and P - n zeros.
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

from ..operators.per_sample import GradientFactors
from ..solvers.block_lanczos import EigResult, block_eigsh
from ..thresholds import DENSE_GRAM_MAX, GRAM_BLOCK_SIZE, gram_solved_densely

__all__ = [
    "GramSpectrum",
    "second_moment_from_gram",
    "minibatch_gram",
    "top_eigenvalues",
    "gram_eigenvalues",
    "DENSE_GRAM_MAX",
    "GRAM_BLOCK_SIZE",
]

logger = logging.getLogger("sgd_dynamics.curvature")

# the figures of the Lanczos solves on K kept in the diagnostics (M: mt_*; M_b: mb_*)
_GRAM_FIGURES = (
    "matvecs",
    "iterations",
    "max_residual",
    "converged",
    "check_matvecs",
    "check_rounds",
)
_MINIBATCH_FIGURES = ("matvecs", "max_residual", "converged", "check_matvecs")


@dataclass
class GramSpectrum:
    """Top of M from its Gram matrix.

    Attributes:
        top: (k,) the k largest eigenvalues of M, descending (zeros beyond rank n).
        vectors: (P, k) orthonormal eigenvectors of M matching `top`.
        sample_vectors: (n, k') unit eigenvectors u of K matching `top` (k' = min(k, n)); they start
            the next solve on a nearby K (same samples, moved parameters).
        gram_values: (n,) all eigenvalues of K = G Gᵀ / n ascending (None when only the top was
            found).
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


def _lanczos_top(
    matrix: Tensor,
    k: int,
    *,
    tol: float | None,
    seed: int,
    on_failure: str,
    check_steps: int | None,
    name: str,
    block_size: int | None = None,
    x0: Tensor | None = None,
) -> EigResult:
    """k largest eigenpairs of a symmetric n×n matrix by `block_eigsh` on `matrix @ v`."""
    return block_eigsh(
        lambda v: matrix @ v,
        matrix.shape[0],
        k,
        "largest",
        tol=tol,
        dtype=matrix.dtype,
        device=matrix.device,
        seed=seed,
        on_failure=on_failure,
        check_steps=check_steps,
        name=name,
        block_size=block_size,
        x0=x0,
    )


def _solver_figures(
    result: EigResult, names: tuple[str, ...], prefix: str = ""
) -> dict[str, float]:
    """The named figures of a solve (matvecs, iterations, max_residual, ...) as floats."""
    return {f"{prefix}{name}": float(getattr(result, name)) for name in names}


def _dense_pairs(kernel: Tensor, dense_threads: int | None) -> tuple[Tensor, Tensor]:
    """All eigenpairs of K, descending."""
    with limit_threads(dense_threads):
        values, vectors = torch.linalg.eigh(kernel)
    return values.flip(0), vectors.flip(1)


def _mapped(factors: GradientFactors, u: Tensor, values: Tensor) -> Tensor:
    """Orthonormalised Gᵀ u / sqrt(n λ), (P, j), for j eigenpairs (λ, u) of K (j may be 0: every
    per-sample gradient 0, as when float32 rounds a fitted sample's gradient to 0)."""
    if u.shape[1] == 0:
        return u.new_zeros(factors.n_params, 0)
    vectors = factors.rmatmat(u) / torch.sqrt(factors.n_samples * values)
    return _orthonormal_in_order(vectors)[0]


def _mapped_vectors(
    factors: GradientFactors,
    values: Tensor,
    u: Tensor,
    k: int,
    seed: int,
    all_pairs: tuple[Tensor, Tensor] | None,
) -> Tensor:
    """Unit eigenvectors v = Gᵀ u / sqrt(n λ) of M (P, k) for K's eigenpairs (λ, u) above the
    rank threshold, completed with orthonormal vectors of null(G) when fewer than k are."""
    n = factors.n_samples
    threshold = _rank_threshold(values, n)
    n_pos = int((values > threshold).sum())
    vectors = _mapped(factors, u[:, :n_pos], values[:n_pos])
    if n_pos >= k:
        return vectors
    assert all_pairs is not None  # a rank below k has all of K's eigenpairs computed
    values_desc, vectors_desc = all_pairs
    rank = int((values_desc > threshold).sum())
    range_basis = _mapped(factors, vectors_desc[:, :rank], values_desc[:rank])
    logger.debug(
        "M has rank %d on these samples, fewer than k = %d: its last %d eigenvalues are 0",
        rank,
        k,
        k - n_pos,
    )
    return torch.cat([vectors, _null_space_vectors(range_basis, k - n_pos, seed)], dim=1)


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

    Eigenvalues of K at or below 10·n·eps·λ_max count as zero: their eigenvectors of M are
    orthonormal vectors of null(G) rather than mapped ones.

    Args:
        factors: the per-sample gradient factors of G (n×P).
        k: eigenpairs of M.
        all_values: compute all n eigenvalues of K (a dense `eigh` of K, also used when
            `thresholds.gram_solved_densely`); otherwise the top of K comes from `block_eigsh`.
        tol, seed, on_failure, check_steps: of the Lanczos solve on K (`block_eigsh`).
        dense_threads: thread limit of a dense eigendecomposition of K (None: no limit).
        gram: K if already computed.
        x0: (n, j) starting vectors of the Lanczos solve on K (warm start: a previous snapshot's
            `sample_vectors` on the same samples); ignored when K is solved densely.

    Returns:
        A `GramSpectrum`: M's top eigenpairs, K's eigenvectors, K's eigenvalues with
        `all_values`, and the solve's figures.
    """
    n = factors.n_samples
    # K is symmetric by construction (to rounding for a dense G): no symmetrizing copy of n² numbers
    kernel = gram if gram is not None else factors.gram().div_(n)
    info: dict[str, float] = {}
    k_gram = min(k, n)
    all_pairs: tuple[Tensor, Tensor] | None = None
    if all_values or gram_solved_densely(n, k):
        all_pairs = _dense_pairs(kernel, dense_threads)
        top, u = all_pairs[0][:k_gram], all_pairs[1][:, :k_gram]
    else:
        result = _lanczos_top(
            kernel,
            k_gram,
            tol=tol,
            seed=seed,
            on_failure=on_failure,
            check_steps=check_steps,
            name="M (Gram)",
            block_size=min(GRAM_BLOCK_SIZE, n),
            x0=x0 if x0 is not None and x0.shape[0] == n else None,
        )
        top, u = result.eigenvalues, result.eigenvectors
        info = _solver_figures(result, _GRAM_FIGURES, prefix="mt_")
    if int((top > _rank_threshold(top, n)).sum()) < k and all_pairs is None:
        all_pairs = _dense_pairs(kernel, dense_threads)  # rank below k: the whole range of G
        top, u = all_pairs[0][:k_gram], all_pairs[1][:, :k_gram]
    vectors = _mapped_vectors(factors, top, u, k, seed, all_pairs)
    top_full = torch.zeros(k, dtype=kernel.dtype, device=kernel.device)
    top_full[:k_gram] = top
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
    """The Gram side of M_b: W^½ K W^½ with W^½ = √c (I - 11ᵀ/n) + 11ᵀ/n.

    Args:
        kernel: K = G Gᵀ / n (n, n).
        coefficient: c = c_b (`minibatch_coefficient`).

    Returns:
        (n, n) matrix whose nonzero eigenvalues are those of M_b.
    """
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
    """k largest eigenvalues of a symmetric n×n matrix: a dense eigh when
    `thresholds.gram_solved_densely`, else a Lanczos solve.

    Args:
        matrix: (n, n) symmetric.
        k: eigenvalues wanted (may exceed n).
        tol, seed, on_failure, check_steps: of the Lanczos solve (`block_eigsh`).
        dense_threads: thread limit of the dense eigh (None: no limit).
        name: the matrix's name in log lines and messages.

    Returns:
        ((k,) eigenvalues descending, zero-padded beyond n; the Lanczos solve's figures, empty
        after a dense eigh).
    """
    n = matrix.shape[0]
    k_small = min(k, n)
    if gram_solved_densely(n, k):
        with limit_threads(dense_threads):
            values = torch.linalg.eigvalsh(matrix).flip(0)[:k_small]
        info = {}
    else:
        result = _lanczos_top(
            matrix,
            k_small,
            tol=tol,
            seed=seed,
            on_failure=on_failure,
            check_steps=check_steps,
            name=name,
        )
        values = result.eigenvalues
        info = _solver_figures(result, _MINIBATCH_FIGURES)
    out = torch.zeros(k, dtype=matrix.dtype, device=matrix.device)
    out[:k_small] = values
    return out, info


def gram_eigenvalues(source: GradientFactors | Tensor, dense_threads: int | None = 1) -> Tensor:
    """All n eigenvalues of K = G Gᵀ / n: M's nonzero spectrum (M has P - n more zeros).

    Args:
        source: K itself (n, n), or the per-sample gradient factors of G.
        dense_threads: thread limit of the eigendecomposition (None: no limit).

    Returns:
        (n,) eigenvalues, descending.

    Raises:
        ValueError: when K is not square.
    """
    if isinstance(source, GradientFactors):
        kernel = source.gram().div_(source.n_samples)
    else:
        kernel = source
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(f"the Gram matrix must be square (n, n), got {tuple(kernel.shape)}")
    values, _ = top_eigenvalues(kernel, kernel.shape[0], dense_threads=dense_threads, name="K")
    return values
