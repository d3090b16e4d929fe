"""Curvature engine: H_f, M, M_b, H_p of the cross-entropy of any classifier, their spectra, and
the principal angles between the top eigenspaces of H_f and M (definitions, conventions and
solver guarantees: docs/math.md).

Needs neither Lightning nor Hydra::

    from sgd_dynamics.curvature import compute_spectra, principal_angles
    s = compute_spectra(model, inputs, targets, k=15, method="auto", dtype=torch.float64)
    s.hf_top, s.mt_top, s.hp_top, s.hp_bottom, s.cosines, s.to_arrays()

Progress and solver diagnostics go to the logger "sgd_dynamics.curvature".
"""

from .angles import principal_angles
from .eigensolvers import ConvergenceError, ConvergenceWarning, EigResult, block_eigsh
from .functional import FunctionalModel, evaluation_mode
from .operators import CurvatureOperators, minibatch_coefficient
from .options import SpectraOptions
from .spectra import RouteWarning, Spectra, compute_spectra

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
    "CurvatureOperators",
    "FunctionalModel",
    "evaluation_mode",
    "minibatch_coefficient",
]
