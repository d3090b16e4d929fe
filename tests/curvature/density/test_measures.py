"""Spectral measures: the smoothed density of an atom."""

from __future__ import annotations

import numpy as np
import pytest

from sgd_dynamics.curvature.density import (
    SpectralMeasure,
    smoothed_density,
)


def test_smoothed_density_of_one_atom_is_a_gaussian_in_t() -> None:
    measure = SpectralMeasure(np.array([2.0]), np.array([1.0]))
    grid, density = smoothed_density(measure, linthresh=0.5, width=0.2, points=2001)
    t = np.arcsinh(grid / 0.5)
    expected = np.exp(-0.5 * ((t - np.arcsinh(4.0)) / 0.2) ** 2) / (0.2 * np.sqrt(2 * np.pi))
    assert np.allclose(density * np.hypot(grid, 0.5), expected)
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-6)
