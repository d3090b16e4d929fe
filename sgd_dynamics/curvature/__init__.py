"""Curvature engine: H_f, M, M_b, H_p of the cross-entropy of any classifier, their spectra, and
the principal angles between the top eigenspaces of H_f and M (definitions, conventions and
solver guarantees: docs/math.md).

Needs neither Lightning nor Hydra::

    from sgd_dynamics.curvature import SpectraOptions, compute_spectra, principal_angles
    options = SpectraOptions(k=15, method="auto", dtype=torch.float64)
    s = compute_spectra(model, inputs, targets, options)
    s.hf_top, s.mt_top, s.hp_top, s.hp_bottom, s.cosines, s.to_arrays()

The package by concept:

- `operators`: products with H_f, M, M_b and H_p; per-sample gradient factors; DDP sums.
- `solvers`: block Lanczos with its checks, Rayleigh-Ritz, Lanczos quadrature, principal angles.
- `gram`: M's spectrum through the n×n Gram matrix of the per-sample gradients.
- `density`: spectral densities of H_f, M and H_p.
- `snapshot`: `compute_spectra`, composing them into one `Spectra` (dense or iterative method).
- `options` (the settings, `SpectraOptions`, and the choices), `thresholds` (the size-steered
  choices), `progress` (progress lines of a long computation).

Progress and solver diagnostics go to the logger "sgd_dynamics.curvature".
"""

from .operators import (
    CurvatureOperators,
    FunctionalModel,
    RouteWarning,
    evaluation_mode,
    minibatch_coefficient,
)
from .options import SpectraOptions
from .snapshot import Spectra, compute_spectra
from .snapshot.precision import PrecisionWarning
from .solvers import ConvergenceError, ConvergenceWarning, EigResult, block_eigsh, principal_angles

__all__ = [
    "compute_spectra",
    "Spectra",
    "SpectraOptions",
    "principal_angles",
    "block_eigsh",
    "EigResult",
    "ConvergenceWarning",
    "ConvergenceError",
    "RouteWarning",
    "PrecisionWarning",
    "CurvatureOperators",
    "FunctionalModel",
    "evaluation_mode",
    "minibatch_coefficient",
]
