"""block_eigsh on explicit symmetric matrices, against torch.linalg.eigh."""

from __future__ import annotations

import warnings

import pytest
import torch

from sgd_dynamics.curvature import ConvergenceError, ConvergenceWarning, block_eigsh

from ..references import subspace_cosines


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
    assert (result.matvecs - result.check_matvecs) % block_size == 0
    assert result.check_rounds == 1 and result.check_matvecs > 0


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


def repeated_matrix(
    size: int,
    top: list[tuple[float, int]],
    bottom: list[tuple[float, int]],
    seed: int = 0,
    spread: float = 0.0,
    rotate: bool = True,
) -> torch.Tensor:
    """Q diag(λ) Qᵀ with the given (value, multiplicity) clusters at both ends and a bulk in
    [-0.5, 0.5]; each cluster's copies are spread by a relative `spread` (0: exact copies).
    rotate=False: Q = I, a diagonal matrix, whose products add no rounding across an
    eigenspace, so a Krylov space keeps exactly as many directions of it as its start had."""
    gen = torch.Generator().manual_seed(seed)
    values = []
    for value, copies in top + bottom:
        values.append(value * (1 + spread * torch.linspace(0, 1, copies, dtype=torch.float64)))
    head = torch.cat(values)
    bulk = torch.rand(size - head.numel(), generator=gen, dtype=torch.float64) - 0.5
    values = torch.cat([head, bulk])
    if not rotate:
        return torch.diag(values)
    q, _ = torch.linalg.qr(torch.randn(size, size, generator=gen, dtype=torch.float64))
    return (q * values) @ q.T


@pytest.mark.parametrize("rotate", [True, False])
@pytest.mark.parametrize("block_size", [None, 1, 3])
@pytest.mark.parametrize("copies", [2, 9, 15])
def test_repeated_eigenvalues_are_all_found(copies: int, block_size: int | None, rotate) -> None:
    """An eigenvalue repeated more often than the block size: every copy is returned, and
    `converged` is only claimed after the multiplicity check."""
    a = repeated_matrix(400, [(5.0, copies), (4.0, 3)], [(-3.0, copies)], rotate=rotate)
    k = copies + 2
    for which in ("largest", "smallest", "both"):
        result = block_eigsh(lambda v: a @ v, 400, k, which, block_size=block_size)
        values, _ = reference(a, k, which)
        assert result.converged and result.check_rounds >= 1
        assert float((result.eigenvalues - values).abs().max()) <= 1e-8 * 5.0, which
        x = result.eigenvectors
        assert torch.allclose(x.T @ x, torch.eye(x.shape[1], dtype=x.dtype), atol=1e-8)
        residuals = (a @ x - x * result.eigenvalues).norm(dim=0) / 5.0
        assert float(residuals.max()) <= 1e-7


@pytest.mark.parametrize("rotate", [True, False])
@pytest.mark.parametrize("spread", [1e-8, 1e-6, 1e-4, 1e-3])
def test_near_repeated_eigenvalues_are_all_found(spread: float, rotate: bool) -> None:
    a = repeated_matrix(400, [(5.0, 9), (4.0, 3)], [], spread=spread, rotate=rotate)
    result = block_eigsh(lambda v: a @ v, 400, 12, "largest")
    values, _ = reference(a, 12, "largest")
    assert result.converged
    assert float((result.eigenvalues - values).abs().max()) <= 1e-8 * 5.0


def test_without_the_check_copies_are_missed_with_it_they_are_found() -> None:
    """The failure the check exists for: a 9-fold top eigenvalue just above a dense spectrum
    (diagonal: no rounding mixes the copies). Without the check the solver converges on fewer
    copies; with it every copy is returned, from every random start tried."""
    values = torch.cat([torch.ones(9), torch.linspace(0.99, 0.0, 391)]).double()
    a = torch.diag(values)
    blind = block_eigsh(lambda v: a @ v, 400, 12, "largest", check_steps=0)
    assert blind.converged and blind.check_rounds == 0
    assert int((blind.eigenvalues > 0.995).sum()) < 9
    for seed in range(3):
        result = block_eigsh(lambda v: a @ v, 400, 12, "largest", seed=seed)
        assert result.converged and result.check_rounds >= 2
        assert torch.allclose(result.eigenvalues, values[:12], rtol=1e-8, atol=0)


def test_gram_route_finds_every_copy() -> None:
    """M through K = G Gᵀ / n solved by Lanczos (n > DENSE_GRAM_MAX) with an eigenvalue of
    multiplicity 20, more than the Gram solver's block of 16."""
    from sgd_dynamics.curvature.gram.spectrum import DENSE_GRAM_MAX, second_moment_from_gram
    from sgd_dynamics.curvature.operators.per_sample import DenseGradients

    n, p = DENSE_GRAM_MAX + 50, 500
    gen = torch.Generator().manual_seed(4)
    u, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(p, n, generator=gen, dtype=torch.float64))
    singular = torch.cat([torch.full((20,), 3.0), torch.linspace(2.0, 0.1, n - 20)])
    g = (u * singular) @ v.T  # (n, P), K = G Gᵀ / n has eigenvalue 9 / n with multiplicity 20
    spectrum = second_moment_from_gram(DenseGradients(g), 25)
    expected = torch.linalg.eigvalsh(g.T @ g / n).flip(0)[:25]
    assert torch.allclose(spectrum.top, expected, rtol=1e-8, atol=0)
    assert spectrum.info["mt_converged"] == 1.0
