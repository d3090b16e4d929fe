"""block_eigsh on explicit symmetric matrices, against torch.linalg.eigh."""

from __future__ import annotations

import warnings

import pytest
import torch

from sgd_dynamics.curvature import ConvergenceError, ConvergenceWarning, block_eigsh

from .references import subspace_cosines


def spectrum_matrix(size: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A symmetric matrix with a few outliers at both ends and a bulk, like a Hessian."""
    gen = torch.Generator().manual_seed(seed)
    values = torch.cat(
        [
            torch.linspace(2.0, 10.0, 8, dtype=torch.float64),
            -torch.linspace(1.0, 4.0, 6, dtype=torch.float64),
            0.3 * torch.randn(size - 14, generator=gen, dtype=torch.float64),
        ]
    )
    q, _ = torch.linalg.qr(torch.randn(size, size, generator=gen, dtype=torch.float64))
    return ((q * values) @ q.T).to(dtype)


def reference(matrix: torch.Tensor, k: int, which: str) -> tuple[torch.Tensor, torch.Tensor]:
    values, vectors = torch.linalg.eigh(matrix.double())
    top = torch.arange(values.numel() - 1, values.numel() - 1 - k, -1)
    bottom = torch.arange(k)
    idx = {"largest": top, "smallest": bottom, "both": torch.cat([top, bottom])}[which]
    return values[idx], vectors[:, idx]


@pytest.mark.parametrize("which", ["largest", "smallest", "both"])
@pytest.mark.parametrize("block_size", [1, 3])
def test_extreme_eigenpairs_match_eigh(which: str, block_size: int) -> None:
    a = spectrum_matrix(300)
    k = 5
    result = block_eigsh(lambda v: a @ v, 300, k, which, tol=1e-10, block_size=block_size)
    values, vectors = reference(a, k, which)
    assert result.converged
    assert result.eigenvalues.shape == values.shape
    assert float(((result.eigenvalues - values).abs() / values.abs()).max()) <= 1e-6
    x = result.eigenvectors
    assert torch.allclose(x.T @ x, torch.eye(x.shape[1], dtype=x.dtype), atol=1e-10)
    halves = [slice(0, k), slice(k, 2 * k)] if which == "both" else [slice(0, k)]
    for part in halves:
        assert float(subspace_cosines(x[:, part], vectors[:, part]).min()) >= 1 - 1e-3
    true_residuals = (a @ x - x * result.eigenvalues).norm(dim=0) / result.scale
    assert float(true_residuals.max()) <= 1e-9
    assert result.max_residual <= 1e-10
    assert result.matvecs == result.iterations * block_size


def test_warm_start_needs_fewer_products() -> None:
    a = spectrum_matrix(400, seed=1)
    gen = torch.Generator().manual_seed(5)
    noise = torch.randn(400, 400, generator=gen, dtype=torch.float64)
    nearby = a + 1e-4 * (noise + noise.T)
    first = block_eigsh(lambda v: a @ v, 400, 6, "largest", tol=1e-10)
    cold = block_eigsh(lambda v: nearby @ v, 400, 6, "largest", tol=1e-10)
    warm = block_eigsh(lambda v: nearby @ v, 400, 6, "largest", tol=1e-10, x0=first.eigenvectors)
    assert warm.converged and cold.converged
    assert warm.matvecs < cold.matvecs
    assert torch.allclose(warm.eigenvalues, cold.eigenvalues, rtol=1e-9, atol=0)


def test_rank_deficient_operator() -> None:
    """A PSD operator of rank 3 < k: the null directions come back with eigenvalue 0."""
    gen = torch.Generator().manual_seed(2)
    g = torch.randn(3, 200, generator=gen, dtype=torch.float64)
    result = block_eigsh(lambda v: g.T @ (g @ v), 200, 6, "largest", tol=1e-10)
    ref = torch.linalg.eigvalsh(g @ g.T).flip(0)
    assert result.converged
    assert torch.allclose(result.eigenvalues[:3], ref, rtol=1e-10)
    assert float(result.eigenvalues[3:].abs().max()) <= 1e-10 * float(ref[0])
    x = result.eigenvectors
    assert torch.allclose(x.T @ x, torch.eye(6, dtype=x.dtype), atol=1e-10)


def test_small_operator_is_solved_densely() -> None:
    a = spectrum_matrix(20)
    result = block_eigsh(lambda v: a @ v, 20, 4, "both")
    values, _ = reference(a, 4, "both")
    assert torch.allclose(result.eigenvalues, values, rtol=1e-12)
    assert result.matvecs == 20


def test_float32() -> None:
    a = spectrum_matrix(300, dtype=torch.float32)
    result = block_eigsh(lambda v: a @ v, 300, 5, "largest", dtype=torch.float32)
    values, _ = reference(a, 5, "largest")
    assert result.eigenvectors.dtype == torch.float32
    assert float(((result.eigenvalues.double() - values).abs() / values.abs()).max()) <= 1e-4


def test_not_converged_warns_or_raises() -> None:
    a = spectrum_matrix(300)
    with pytest.warns(ConvergenceWarning, match="tolerance"):
        result = block_eigsh(lambda v: a @ v, 300, 5, "largest", tol=1e-14, max_matvecs=12)
    assert not result.converged and result.matvecs <= 12
    with pytest.raises(ConvergenceError):
        block_eigsh(
            lambda v: a @ v, 300, 5, "largest", tol=1e-14, max_matvecs=12, on_failure="raise"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        block_eigsh(
            lambda v: a @ v, 300, 5, "largest", tol=1e-14, max_matvecs=12, on_failure="ignore"
        )


def test_bad_arguments() -> None:
    a = spectrum_matrix(50)
    with pytest.raises(ValueError, match="which"):
        block_eigsh(lambda v: a @ v, 50, 3, "middle")
    with pytest.raises(ValueError, match="k must"):
        block_eigsh(lambda v: a @ v, 50, 51)
    with pytest.raises(ValueError, match="x0"):
        block_eigsh(lambda v: a @ v, 50, 3, x0=torch.zeros(49, 3, dtype=torch.float64))
