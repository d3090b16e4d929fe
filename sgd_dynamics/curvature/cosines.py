"""The principal-angle cosines of a snapshot, where they are defined."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from .angles import principal_angles


def defined_cosines(
    hf_top: Tensor, mt_top: Tensor, hf_vecs: Tensor, mt_vecs: Tensor, rel_zero: float
) -> np.ndarray:
    """Principal-angle cosines (k,) between the top eigenspaces of H_f and M, NaN where undefined.

    M's eigenvectors beyond its numerical rank r (eigenvalues <= rel_zero · λ_1(M)) and H_f's
    eigenvectors of non-positive eigenvalues (<= rel_zero · max|λ(H_f)|) are arbitrary vectors of
    a degenerate or non-top eigenspace, so the cosines are those between span(hf_vecs[:, :a]) and
    span(mt_vecs[:, :r]), a = the number of positive H_f eigenvalues among the k: min(a, r)
    values, then NaN up to k.
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
