"""Solvers on symmetric operators given by their products, and on subspaces.

- `block_lanczos`: `block_eigsh`, extreme eigenpairs by thick-restart block Lanczos with its
  convergence and multiplicity checks.
- `rayleigh_ritz`: eigenpair estimates on a given subspace from known images A S.
- `lanczos_quadrature`: stochastic Lanczos quadrature, the spectral measure seen from probes.
- `angles`: principal angles between subspaces.
"""

from .angles import defined_cosines, principal_angles
from .block_lanczos import (
    ConvergenceError,
    ConvergenceWarning,
    EigResult,
    block_eigsh,
    default_tolerance,
)
from .lanczos_quadrature import Quadrature, lanczos_quadrature, random_probes
from .rayleigh_ritz import rayleigh_ritz

__all__ = [
    "block_eigsh",
    "EigResult",
    "ConvergenceWarning",
    "ConvergenceError",
    "default_tolerance",
    "rayleigh_ritz",
    "lanczos_quadrature",
    "random_probes",
    "Quadrature",
    "principal_angles",
    "defined_cosines",
]
