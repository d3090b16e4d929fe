"""Principal angles between two subspaces of R^P, and a snapshot's cosines where defined."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["principal_angles", "defined_cosines"]


def principal_angles(basis_u: Tensor | np.ndarray, basis_v: Tensor | np.ndarray) -> np.ndarray:
    """Cosines of the principal angles between span(U) and span(V), descending.

    The bases are orthonormalized by QR; the cosines are the singular values of Qᵤᵀ Qᵥ, clipped
    to [0, 1].

    Args:
        basis_u: U (P, k), any basis (tensor or array).
        basis_v: V (P, l), any basis with the same P.

    Returns:
        (min(k, l),) float64 numpy cosines, descending.

    Raises:
        ValueError: for bases that are not 2-D with the same P, or have no column.
    """
    u = torch.as_tensor(np.asarray(basis_u) if not isinstance(basis_u, Tensor) else basis_u)
    v = torch.as_tensor(np.asarray(basis_v) if not isinstance(basis_v, Tensor) else basis_v)
    if u.ndim != 2 or v.ndim != 2 or u.shape[0] != v.shape[0]:
        raise ValueError(
            f"principal_angles needs two (P, k) bases with the same P, got shapes "
            f"{tuple(u.shape)} and {tuple(v.shape)}"
        )
    if min(u.shape[1], v.shape[1]) == 0:
        raise ValueError("principal_angles needs bases with at least one column")
    v = v.to(device=u.device)
    dtype = torch.promote_types(u.dtype, v.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float64
    qu, _ = torch.linalg.qr(u.to(dtype))
    qv, _ = torch.linalg.qr(v.to(dtype))
    cosines = torch.linalg.svdvals(qu.T @ qv).clamp(0.0, 1.0)
    return cosines.detach().cpu().to(torch.float64).numpy()


def defined_cosines(
    hf_top: Tensor, mt_top: Tensor, hf_vecs: Tensor, mt_vecs: Tensor, rel_zero: float
) -> np.ndarray:
    """Principal-angle cosines between the top eigenspaces of H_f and M, NaN where undefined.

    M's eigenvectors beyond its numerical rank r (eigenvalues <= rel_zero · λ_1(M)) and H_f's
    eigenvectors of non-positive eigenvalues (<= rel_zero · max|λ(H_f)|) are arbitrary vectors of
    a degenerate or non-top eigenspace, so the cosines are those between span(hf_vecs[:, :a]) and
    span(mt_vecs[:, :r]), a = the number of positive H_f eigenvalues among the k.

    Args:
        hf_top, mt_top: (k,) top eigenvalues of H_f and M, descending.
        hf_vecs, mt_vecs: (P, k) their orthonormal eigenvectors.
        rel_zero: the relative threshold below which an eigenvalue counts as zero.

    Returns:
        (k,) float64 numpy: min(a, r) cosines, descending, then NaN.
    """
    k = hf_vecs.shape[1]
    out = np.full(k, np.nan)
    mt_max = float(mt_top.max()) if mt_top.numel() else 0.0
    rank = int((mt_top > rel_zero * mt_max).sum()) if mt_max > 0 else 0
    hf_scale = float(hf_top.abs().max()) if hf_top.numel() else 0.0
    positive = int((hf_top > rel_zero * hf_scale).sum()) if hf_scale > 0 else 0
    if rank and positive:
        cos = principal_angles(hf_vecs[:, :positive], mt_vecs[:, :rank])
        out[: len(cos)] = cos
    return out
