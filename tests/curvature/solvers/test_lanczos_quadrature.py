"""Lanczos quadrature: Gauss quadrature of the probes' spectral measure, and its deflation."""

from __future__ import annotations

import numpy as np
import torch

from sgd_dynamics.curvature.solvers import lanczos_quadrature


def test_quadrature_is_gauss_quadrature() -> None:
    """q steps integrate polynomials of degree <= 2q - 1 exactly: Σ τ_j θ_j^d = vᵀ A^d v."""
    generator = torch.Generator().manual_seed(3)
    a = torch.randn(30, 30, generator=generator, dtype=torch.float64)
    a = (a + a.T) / 6
    probes = torch.randn(30, 3, generator=generator, dtype=torch.float64)
    q = 5
    quad = lanczos_quadrature(lambda v: a @ v, probes, q)
    unit = probes / probes.norm(dim=0)
    power = unit.clone()
    for degree in range(2 * q):
        moments = (unit * power).sum(0).numpy()
        assert np.allclose((quad.weights * quad.nodes**degree).sum(1), moments, atol=1e-12)
        power = a @ power
    assert quad.products == q and np.all(quad.steps == q)


def test_deflated_quadrature_stays_in_the_complement() -> None:
    """Deflating the top-3 eigenvectors: nodes within the other eigenvalues' range, and a
    full Krylov space (q = P - 3) reproduces their measure exactly."""
    generator = torch.Generator().manual_seed(4)
    basis, _ = torch.linalg.qr(torch.randn(12, 12, generator=generator, dtype=torch.float64))
    values = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.1, 0.2, 0.3, 0.5, 1.0, 5.0, 7.0, 9.0])
    values = values.double()
    a = basis @ torch.diag(values) @ basis.T
    probes = torch.randn(12, 2, generator=generator, dtype=torch.float64)
    quad = lanczos_quadrature(lambda v: a @ v, probes, 9, deflate=basis[:, -3:])
    used = quad.weights > 1e-14
    assert quad.nodes[used].min() >= -2.0 - 1e-10 and quad.nodes[used].max() <= 1.0 + 1e-10
    for row in range(2):
        kept = quad.weights[row] > 1e-14
        assert np.allclose(np.sort(quad.nodes[row][kept]), values[:9].numpy(), atol=1e-10)
