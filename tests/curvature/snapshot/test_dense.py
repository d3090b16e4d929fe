"""Dense H_f, M, H_p, M_b against independent float64 references (relative error <= 1e-10)."""

from __future__ import annotations

import pytest
import torch

from sgd_dynamics.curvature import SpectraOptions, compute_spectra
from sgd_dynamics.curvature.operators import CurvatureOperators, FunctionalModel
from sgd_dynamics.curvature.snapshot.dense import hessian_matrix, second_moment_matrix

from ..conftest import make_data, make_model
from ..references import (
    mean_loss_hessian,
    minibatch_moment_enumerated,
    per_sample_gradient_loop,
    rel_error,
    residual_direct,
    second_moment,
)

TOL = 1e-10


@pytest.fixture
def problem(kind: str):
    model = make_model(kind)
    x, y = make_data(kind, n=7)
    return model, x, y


def test_dense_matrices_match_references(problem) -> None:
    model, x, y = problem
    fm = FunctionalModel(model, torch.float64)
    ops = CurvatureOperators(fm, x, y, chunk_size=3)
    h_ref = mean_loss_hessian(model, x, y)
    m_ref = second_moment(model, x, y)
    assert rel_error(hessian_matrix(ops), h_ref) <= TOL
    assert rel_error(second_moment_matrix(fm, x, y, chunk_size=2), m_ref) <= TOL


def test_identity_with_direct_residual(problem) -> None:
    """H_f = M - H_p with H_p = (1/n) Σ ∇²p_i / p_i computed directly."""
    model, x, y = problem
    h_ref = mean_loss_hessian(model, x, y)
    hp_direct = residual_direct(model, x, y)
    assert rel_error(second_moment(model, x, y) - hp_direct, h_ref) <= TOL
    fm = FunctionalModel(model, torch.float64)
    ops = CurvatureOperators(fm, x, y)
    ours = second_moment_matrix(fm, x, y, chunk_size=7) - hessian_matrix(ops)
    assert rel_error(ours, hp_direct) <= TOL


def test_dense_spectra_match_reference_spectra(problem) -> None:
    model, x, y = problem
    k = 5
    s = compute_spectra(model, x, y, SpectraOptions(k=k, method="dense"), batch_size=3)
    h_ref = mean_loss_hessian(model, x, y)
    m_ref = second_moment(model, x, y)
    hp_ref = residual_direct(model, x, y)
    for ours, ref in ((s.hf_all, h_ref), (s.mt_all, m_ref), (s.hp_all, hp_ref)):
        ref_values = torch.linalg.eigvalsh(ref)
        assert ours.shape == (ref.shape[0],)
        assert rel_error(torch.as_tensor(ours), ref_values) <= TOL
    assert rel_error(torch.as_tensor(s.hf_top), torch.linalg.eigvalsh(h_ref).flip(0)[:k]) <= TOL
    assert rel_error(torch.as_tensor(s.hp_bottom), torch.linalg.eigvalsh(hp_ref)[:k]) <= TOL
    # eigenvectors: H v = λ v with the reference matrices, orthonormal
    for vecs, top, ref in ((s.hf_vecs, s.hf_top, h_ref), (s.mt_vecs, s.mt_top, m_ref)):
        top = torch.as_tensor(top)
        assert rel_error(ref @ vecs, vecs * top) <= 1e-9
        assert torch.allclose(vecs.T @ vecs, torch.eye(k, dtype=vecs.dtype), atol=1e-10)
    # exact traces and ||μ||
    assert abs(s.trace_hf - float(torch.trace(h_ref))) <= TOL * float(h_ref.abs().max()) * 100
    assert abs(s.trace_mt - float(torch.trace(m_ref))) <= TOL * float(torch.trace(m_ref))
    g = per_sample_gradient_loop(model, x, y)
    assert abs(s.grad_norm - float(g.mean(0).norm())) <= TOL * float(g.mean(0).norm())


@pytest.mark.parametrize("b", [1, 2, 4, 7])
def test_minibatch_moment_matches_subset_enumeration(b: int) -> None:
    model = make_model("mlp_tanh")
    x, y = make_data("mlp_tanh", n=7)
    ref = minibatch_moment_enumerated(model, x, y, b)
    ops = CurvatureOperators(FunctionalModel(model, torch.float64), x, y, chunk_size=4)
    eye = torch.eye(ops.n_params, dtype=torch.float64)
    assert rel_error(ops.mb(eye, b), ref) <= TOL
    ref_top = torch.linalg.eigvalsh(ref).flip(0)[:4]
    for method in ("dense", "iterative"):
        s = compute_spectra(model, x, y, SpectraOptions(k=4, method=method), batch_size=b)
        assert rel_error(torch.as_tensor(s.mb_top), ref_top) <= 1e-9
        assert abs(s.trace_mb - float(torch.trace(ref))) <= 1e-9 * float(torch.trace(ref))


def test_minibatch_endpoints() -> None:
    """M_1 = M and M_n = μμᵀ."""
    model = make_model("mlp_relu")
    x, y = make_data("mlp_relu", n=6)
    ops = CurvatureOperators(FunctionalModel(model, torch.float64), x, y)
    eye = torch.eye(ops.n_params, dtype=torch.float64)
    g = per_sample_gradient_loop(model, x, y)
    assert rel_error(ops.mb(eye, 1), g.T @ g / 6) <= TOL
    assert rel_error(ops.mb(eye, 6), torch.outer(g.mean(0), g.mean(0))) <= TOL


def test_more_samples_than_parameters() -> None:
    """n > P: M's spectrum from the P×P matrix rather than the Gram matrix."""
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    model = model.double()
    x = torch.randn(40, 2, dtype=torch.float64)
    y = torch.randint(0, 2, (40,))
    s = compute_spectra(model, x, y, SpectraOptions(k=3, method="dense"))
    assert s.n_params == 17
    m_ref = second_moment(model, x, y)
    assert rel_error(torch.as_tensor(s.mt_all), torch.linalg.eigvalsh(m_ref)) <= TOL
    hp_ref = residual_direct(model, x, y)
    assert rel_error(torch.as_tensor(s.hp_all), torch.linalg.eigvalsh(hp_ref)) <= TOL


@pytest.mark.parametrize("method", ["dense", "iterative"])
def test_k_above_the_rank_of_m(method: str) -> None:
    """k > n >= rank(M): the top of M ends in zeros with orthonormal null-space eigenvectors."""
    model = make_model("mlp_tanh")
    x, y = make_data("mlp_tanh", n=4)
    k = 7
    s = compute_spectra(model, x, y, SpectraOptions(k=k, method=method))
    m_ref = second_moment(model, x, y)
    ref = torch.linalg.eigvalsh(m_ref).flip(0)[:k]
    top = torch.as_tensor(s.mt_top)
    assert float((top - ref).abs().max()) <= 1e-12 * float(ref[0])
    assert torch.all(top[4:] == 0)
    vecs = s.mt_vecs
    assert torch.allclose(vecs.T @ vecs, torch.eye(k, dtype=vecs.dtype), atol=1e-10)
    assert rel_error(m_ref @ vecs, vecs * top) <= 1e-9
