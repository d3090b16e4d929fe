"""H_p = M - H_f's k largest and k smallest eigenpairs in the iterative method.

hp_method="solve": a `block_eigsh` solve on H_p products (each one M and one H_f product).
hp_method="ritz": Rayleigh-Ritz estimates on span(top-k of H_f, top-k of M) instead of a third
solve (k extra H_f products; H_f on its own Ritz vectors comes from the Krylov relation): cheap,
but not converged eigenvalues; their relative residuals are in diagnostics["hp_max_residual"].
hp_method="none" skips H_p's extremes (NaN).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .eigensolvers import EigResult
from .operators import CurvatureOperators
from .options import SpectraOptions
from .ritz import rayleigh_ritz
from .snapshot_parts import snapshot_eigsh, solver_info


def _hp_ritz(ops: CurvatureOperators, hf: EigResult, mt_vecs: Tensor, k: int) -> EigResult:
    """Extremes of H_p = M - H_f by Rayleigh-Ritz on span(top of H_f, top of M).

    H_f on the H_f Ritz vectors comes from the solver's Krylov relation (no product); H_f on the
    M vectors costs one block of k products; M on both goes through M's route. Residuals are the
    true ones of the returned pairs (relative to the largest |Ritz value|): not a converged solve.
    """
    assert hf.images is not None
    mt_vecs = mt_vecs.to(device=ops.theta.device, dtype=ops.theta.dtype)
    basis = torch.cat([hf.eigenvectors, mt_vecs], dim=1)
    hf_images = torch.cat([hf.images, ops.hf(mt_vecs)], dim=1)
    # the basis holds at least k independent directions (H_f's orthonormal Ritz vectors)
    return rayleigh_ritz(basis, ops.m(basis) - hf_images, k)


def hp_extremes(
    ops: CurvatureOperators,
    hf: EigResult,
    mt_vecs: Tensor,
    x0: Tensor | None,
    k: int,
    options: SpectraOptions,
) -> tuple[EigResult | None, dict[str, float]]:
    """H_p's k largest then k smallest eigenpairs by `options.hp_method` ("none": None), with
    solver figures. hp_matvecs counts H_p products for "solve" (each one M and one H_f product)
    and the k H_f products of the Rayleigh-Ritz step for "ritz" (its 2k M products on the basis,
    through M's route, are not counted)."""
    if options.hp_method == "none":
        return None, {}
    if options.hp_method == "solve":
        hp = snapshot_eigsh(ops, "H_p", ops.hp, "both", x0, k, options)
        return hp, solver_info("hp", hp)
    hp = _hp_ritz(ops, hf, mt_vecs, k)
    info = solver_info("hp", hp)
    info.update(hp_matvecs=float(mt_vecs.shape[1]), hp_ritz=1.0)
    return hp, info


def hp_fields(hp: EigResult | None, k: int) -> dict[str, Tensor | None]:
    """hp_top, hp_bottom (NaN without H_p's extremes) and their eigenvectors from H_p's pairs."""
    if hp is None:
        nan = torch.full((k,), math.nan)
        return dict(hp_top=nan, hp_bottom=nan, hp_top_vecs=None, hp_bottom_vecs=None)
    values, vectors = hp.eigenvalues, hp.eigenvectors
    return dict(
        hp_top=values[:k],
        hp_bottom=values[k:],
        hp_top_vecs=vectors[:, :k],
        hp_bottom_vecs=vectors[:, k:],
    )
