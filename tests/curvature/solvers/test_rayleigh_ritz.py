"""Rayleigh-Ritz extremes of H_p (hp_method="ritz") against explicit float64 matrices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sgd_dynamics.curvature import SpectraOptions, compute_spectra
from sgd_dynamics.curvature.solvers import rayleigh_ritz

from ..conftest import make_data, make_model
from ..references import residual_direct


def test_invariant_subspace_gives_exact_pairs() -> None:
    """On a basis spanning 6 eigenvectors (plus a dependent column), Ritz pairs are eigenpairs."""
    generator = torch.Generator().manual_seed(3)
    a = torch.randn(30, 30, generator=generator, dtype=torch.float64)
    a = a + a.T
    values, vectors = torch.linalg.eigh(a)
    chosen = [0, 4, 11, 17, 25, 29]
    basis = vectors[:, chosen] @ torch.randn(6, 6, generator=generator, dtype=torch.float64)
    basis = torch.cat([basis, basis[:, :2].sum(1, keepdim=True)], dim=1)
    result = rayleigh_ritz(basis, a @ basis, k=3)
    expected = values[chosen]
    np.testing.assert_allclose(result.eigenvalues[:3], expected.flip(0)[:3], rtol=1e-12)
    np.testing.assert_allclose(result.eigenvalues[3:], expected[:3], rtol=1e-12)
    assert float(result.residuals.max()) <= 1e-12
    x = result.eigenvectors
    assert torch.allclose(x.T @ x, torch.eye(6, dtype=torch.float64), atol=1e-12)


def test_rayleigh_ritz_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="basis and images"):
        rayleigh_ritz(torch.zeros(5, 2), torch.zeros(5, 3), k=1)


def test_hp_ritz_interlaces_and_reports_true_residuals(kind: str) -> None:
    """Ritz values of H_p lie inside its spectrum (Cauchy interlacing) and the reported
    residual is ||H_p x - θ x|| / max|θ| with H_p from the direct formula (1/n) Σ ∇²p_i / p_i."""
    model = make_model(kind)
    x, y = make_data(kind, n=8)
    k = 4
    s = compute_spectra(model, x, y, SpectraOptions(k=k, method="iterative", hp_method="ritz"))
    hp = residual_direct(model, x, y)
    exact = torch.linalg.eigvalsh(hp).numpy()
    scale = float(np.abs(exact).max())
    assert np.all(s.hp_top <= exact[::-1][:k] + 1e-10 * scale)
    assert np.all(s.hp_bottom >= exact[:k] - 1e-10 * scale)
    vectors = torch.cat([s.hp_top_vecs, s.hp_bottom_vecs], dim=1).double()
    values = torch.as_tensor(np.concatenate([s.hp_top, s.hp_bottom]))
    residuals = (hp @ vectors - vectors * values).norm(dim=0) / values.abs().max()
    assert abs(float(residuals.max()) - s.diagnostics["hp_max_residual"]) <= 1e-8
    assert s.diagnostics["hp_ritz"] == 1.0
    with pytest.raises(ValueError, match="hp_method"):
        compute_spectra(model, x, y, SpectraOptions(k=k, method="iterative", hp_method="exact"))
