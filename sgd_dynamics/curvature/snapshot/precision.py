"""Whether a float32 snapshot can be vouched for: its per-sample loss factors against float64.

Every curvature matrix of a snapshot is built from the per-sample factors d_i = ∂f_i/∂z_i =
p_i - e_{y_i} (C numbers per sample; S_i = diag(p_i) - p_i p_iᵀ from the same p_i) and the
network's Jacobians. The loss is written so that d_i keeps its relative accuracy when a sample is
fitted (`operators.stable_loss`), but float32 still rounds θ and the forward pass: on logits of
size |z| the relative error of p_j is about |z|·6e-8, and a fitted sample's factor σ_i = Σ_{j≠y}
p_j carries it whole. And M ~ mean ‖d_i‖² leaves float32's normal range (below 1.2e-38) once
the samples are fitted to per-sample losses of about 1e-19.

`float32_error_estimate` measures this directly, at the cost of one float64 forward pass over the
samples: e_i = ‖d_i(float32) - d_i(float64)‖ / ‖d_i(float64)‖, weighted by each sample's share of
H_f (‖d_i‖) and of M (‖d_i‖², with e_i = 1 where ‖d_i‖² is below `M_UNDERFLOW`); the estimate is
the larger of the two weighted means. Above `FLOAT32_TOLERANCE` the snapshot is flagged
(`PrecisionWarning`, naming `spectral.dtype=float64`).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from ..operators.functional import FunctionalModel
from ..operators.products import CurvatureOperators
from ..operators.stable_loss import per_sample_cross_entropy

__all__ = [
    "FLOAT32_TOLERANCE",
    "M_UNDERFLOW",
    "PrecisionWarning",
    "float32_error_estimate",
    "check_float32",
]

# estimated relative error (to the norm of each matrix) above which float32 is not vouched for
FLOAT32_TOLERANCE = 1e-4

# ‖d_i‖² below this (float32's smallest normal number / 1e-4) leaves too few significant digits
# in M's products for FLOAT32_TOLERANCE
M_UNDERFLOW = torch.finfo(torch.float32).tiny / FLOAT32_TOLERANCE


class PrecisionWarning(RuntimeWarning):
    """A float32 snapshot whose estimated error exceeds `FLOAT32_TOLERANCE`."""


def _logit_factors(fm: FunctionalModel, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """d_i = ∂f_i/∂z_i (n, C) at θ, in fm's dtype."""
    with torch.enable_grad():
        logits = fm.logits(theta, x).detach().requires_grad_(True)
        (factors,) = torch.autograd.grad(per_sample_cross_entropy(logits, y).sum(), logits)
    return factors


def float32_error_estimate(ops: CurvatureOperators) -> float:
    """The estimated relative error of a snapshot of `ops` (module docstring), from its samples
    (all of them: summed over the processes under DDP).

    Args:
        ops: the snapshot's operators (any dtype; float64 gives ~1e-16).

    Returns:
        max(Σ w_i e_i / Σ w_i, Σ w_i² e'_i / Σ w_i²), w_i = ‖d_i(float64)‖; 0 when every w_i is 0.
    """
    fm = ops.fm
    reference = FunctionalModel(fm.model, torch.float64, fm.names)
    sums = torch.zeros(4, dtype=torch.float64, device=fm.device)
    with torch.no_grad():
        for x, y in ops.chunks():
            low = _logit_factors(fm, fm.theta, x, y).double()
            high = _logit_factors(reference, reference.theta, x.double(), y)
            weight = high.norm(dim=1)
            error = (low - high).norm(dim=1) / weight.clamp_min(torch.finfo(torch.float64).tiny)
            error = torch.where(torch.isfinite(error), error, torch.ones_like(error))
            m_error = torch.where(weight**2 < M_UNDERFLOW, torch.ones_like(error), error)
            sums += torch.stack(
                [
                    (weight * error).sum(),
                    weight.sum(),
                    (weight**2 * m_error).sum(),
                    (weight**2).sum(),
                ]
            )
    if ops.distributed is not None:
        ops.distributed.sum(sums)
    hf_share = float(sums[0] / sums[1]) if sums[1] > 0 else 0.0
    m_share = float(sums[2] / sums[3]) if sums[3] > 0 else (1.0 if sums[1] > 0 else 0.0)
    return max(hf_share, m_share)


def check_float32(ops: CurvatureOperators, diagnostics: dict[str, float]) -> None:
    """For a float32 snapshot: store `float32_error_estimate` and `float32_unvouched` (1.0 when
    above `FLOAT32_TOLERANCE`) in `diagnostics`, and warn (`PrecisionWarning`) when flagged."""
    if ops.fm.dtype != torch.float32:
        return
    estimate = float32_error_estimate(ops)
    flagged = not estimate <= FLOAT32_TOLERANCE
    diagnostics.update(float32_error_estimate=estimate, float32_unvouched=float(flagged))
    if flagged:
        warnings.warn(
            f"float32 cannot vouch for this snapshot: its per-sample loss factors differ from "
            f"float64's by {estimate:.1e} relative (tolerance {FLOAT32_TOLERANCE:.0e}; fitted "
            "samples with large logits or a vanishing M); measure with spectral.dtype=float64",
            PrecisionWarning,
            stacklevel=3,  # compute_spectra's caller
        )
