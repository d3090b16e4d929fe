"""Principal angles between two subspaces of R^P."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["principal_angles"]


def principal_angles(basis_u: Tensor | np.ndarray, basis_v: Tensor | np.ndarray) -> np.ndarray:
    """Cosines of the principal angles between span(U) and span(V), descending.

    U (P×k) and V (P×l) are any bases (orthonormalized here by QR); the cosines are the singular
    values of Qᵤᵀ Qᵥ, clipped to [0, 1]: min(k, l) values, float64 numpy.
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
