"""Rayleigh-Ritz on a given subspace: eigenpair estimates of an operator from known images.

`rayleigh_ritz(basis, images, k)` takes S (P×m) and A S (P×m), orthonormalizes S (dropping
directions that are numerically in the span of the others), solves the small symmetric problem
Uᵀ A U y = θ y and returns the k largest and k smallest Ritz pairs (θ, U y) with their true
relative residuals ||A U y - θ U y|| / scale. No product with A is made: the caller supplies A S.

Used for the extremes of H_p = M - H_f on span(top of H_f, top of M), where H_f S comes mostly
from the H_f solver's Krylov relation and M S from the per-sample gradient factors. The estimates
are Ritz values of a subspace, not converged eigenvalues: the residuals say how far they are.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .block_lanczos import EigResult

__all__ = ["rayleigh_ritz"]

INVARIANT_TOL = 1e-12  # residuals all below it: the subspace was invariant ("converged")


def rayleigh_ritz(
    basis: Tensor, images: Tensor, k: int, scale: float | None = None, drop_tol: float = 1e-3
) -> EigResult:
    """The k largest (descending) then k smallest (ascending) Ritz pairs of A on span(basis).

    Args:
        basis: (P, m) any columns S.
        images: (P, m) A S for a symmetric A.
        k: Ritz pairs at each end.
        scale: the norm used for relative residuals (default: the largest |Ritz value|).
        drop_tol: singular values of S (columns scaled to unit norm) below drop_tol · their maximum
            are dropped as numerically dependent directions.

    Returns:
        An `EigResult` (matvecs 0; converged means every residual <= INVARIANT_TOL, i.e. the
        subspace was invariant), whose `residuals` are exact relative residuals of the returned
        pairs and `images` A applied to them. With m' < 2k independent directions, the two ends
        share Ritz pairs.

    Raises:
        ValueError: when basis and images are not both (P, m).
    """
    if basis.shape != images.shape or basis.ndim != 2:
        raise ValueError(
            f"basis and images must both be (P, m), got {tuple(basis.shape)} and "
            f"{tuple(images.shape)}"
        )
    norms = basis.norm(dim=0).clamp_min(torch.finfo(basis.dtype).tiny)
    s, a_s = basis / norms, images / norms
    u, sigma, vh = torch.linalg.svd(s.to(torch.float64), full_matrices=False)
    keep = sigma > drop_tol * sigma[0]
    transform = (vh[keep].T / sigma[keep]).to(basis.dtype)  # U = S · transform, orthonormal
    q = u[:, keep].to(basis.dtype)
    a_q = a_s @ transform
    projected = (q.T @ a_q).to(torch.float64)
    projected = 0.5 * (projected + projected.T)
    theta, y = torch.linalg.eigh(projected)
    m = theta.shape[0]
    kk = min(k, m)
    idx = torch.cat([torch.arange(m - 1, m - 1 - kk, -1), torch.arange(kk)]).to(theta.device)
    y_sel = y[:, idx].to(basis.dtype)
    vectors = q @ y_sel
    vec_images = a_q @ y_sel
    values = theta[idx].to(basis.dtype)
    norm = scale if scale is not None else float(theta.abs().max())
    residuals = (vec_images - vectors * values).norm(dim=0) / (norm if norm > 0 else 1.0)
    invariant = bool(residuals.max() <= INVARIANT_TOL) if residuals.numel() else True
    # (eigenvalues, eigenvectors, residuals, scale, iterations, matvecs, restarts, converged, tol):
    # no products, iterations or restarts, the images were given
    result = EigResult(values, vectors, residuals, norm, 0, 0, 0, invariant, INVARIANT_TOL)
    result.images = vec_images
    return result
