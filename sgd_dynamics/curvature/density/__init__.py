"""Spectral densities of H_f, M and H_p (docs/densities.md).

- `measures`: spectral measures as weighted atoms, their Wasserstein-1 distance, smoothing.
- `densities`: the densities of the three operators, exact from all eigenvalues or estimated by
  stochastic Lanczos quadrature with known extremes merged in, and W1(H_p, -H_f).
"""

from .densities import (
    DensitySettings,
    OperatorDensity,
    Outliers,
    SpectralDensities,
    exact_densities,
    operator_measure,
    second_moment_measure,
    spectral_densities,
)
from .measures import SpectralMeasure, relative_w1, smoothed_density, symlog_grid

__all__ = [
    "DensitySettings",
    "Outliers",
    "OperatorDensity",
    "SpectralDensities",
    "spectral_densities",
    "exact_densities",
    "second_moment_measure",
    "operator_measure",
    "SpectralMeasure",
    "relative_w1",
    "smoothed_density",
    "symlog_grid",
]
