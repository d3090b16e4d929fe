"""compute_spectra: iterative against dense, chunk independence, warm start, model state, arrays."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
from torch import nn

from sgd_dynamics.curvature import SpectraOptions, compute_spectra

from ..conftest import make_data, make_model
from ..references import subspace_cosines

EIG_TOL = 1e-6
COS_TOL = 1e-3


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


def assert_iterative_matches_dense(it, dense) -> None:
    for name in ("hf_top", "mt_top", "hp_top", "hp_bottom"):
        assert rel(getattr(it, name), getattr(dense, name)) <= EIG_TOL, name
    for name in ("hf_vecs", "mt_vecs"):
        cos = subspace_cosines(getattr(it, name), getattr(dense, name))
        assert float(cos.min()) >= 1 - COS_TOL, name
    assert np.max(np.abs(it.cosines - dense.cosines)) <= COS_TOL
    assert it.hf_all is None and it.mt_all is None and it.hp_all is None


@pytest.mark.parametrize("m_route", ["auto", "operator", "dense"])
def test_iterative_matches_dense_on_tiny_networks(kind: str, m_route: str) -> None:
    model = make_model(kind)
    x, y = make_data(kind, n=8)
    dense = compute_spectra(model, x, y, SpectraOptions(k=4, method="dense"))
    it = compute_spectra(model, x, y, SpectraOptions(k=4, method="iterative", m_route=m_route))
    assert dense.method == "dense" and it.method == "iterative"
    assert it.m_route == (
        "linear"
        if m_route == "auto" and kind != "cnn"
        else "dense"
        if m_route != "operator"
        else "operator"
    )
    assert_iterative_matches_dense(it, dense)
    assert it.diagnostics["hf_converged"] == 1.0 and it.diagnostics["hp_converged"] == 1.0
    assert it.diagnostics["hf_max_residual"] <= 1e-8
    if m_route == "operator":  # Hutchinson estimate
        assert abs(it.trace_mt - dense.trace_mt) <= 5 * it.trace_mt_stderr
    else:
        assert abs(it.trace_mt - dense.trace_mt) <= 1e-10 * dense.trace_mt


def test_iterative_matches_dense_gauss10_sized_mlp() -> None:
    """The Gauss-10-sized case: 20-32-10 ReLU MLP (P = 1002), n = 100, k = 15."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 10))
    x, y = torch.randn(100, 20), torch.randint(0, 10, (100,))
    dense = compute_spectra(model, x, y, SpectraOptions(k=15, method="auto"), batch_size=5)
    it = compute_spectra(model, x, y, SpectraOptions(k=15, method="iterative"), batch_size=5)
    assert dense.method == "dense" and dense.n_params == 1002
    assert_iterative_matches_dense(it, dense)
    assert rel(it.mb_top, dense.mb_top) <= EIG_TOL
    # M has rank <= n = 100: exactly P - n zero eigenvalues in the dense spectrum
    assert np.count_nonzero(dense.mt_all == 0.0) >= 1002 - 100
    # the Hutchinson estimate of tr(H_f) is within a few standard errors
    assert abs(it.trace_hf - dense.trace_hf) <= 5 * it.trace_hf_stderr


def test_results_do_not_depend_on_chunk_size() -> None:
    model = make_model("mlp_tanh")
    x, y = make_data("mlp_tanh", n=9)
    ref = compute_spectra(model, x, y, SpectraOptions(k=4, method="dense"), batch_size=2)
    for chunk in (1, 4):
        s = compute_spectra(
            model, x, y, SpectraOptions(k=4, method="dense", chunk_size=chunk), batch_size=2
        )
        for name in ("hf_all", "mt_all", "hp_all", "mb_top", "cosines"):
            assert rel(getattr(s, name), getattr(ref, name)) <= 1e-10, name
    it_ref = compute_spectra(
        model, x, y, SpectraOptions(k=4, method="iterative", m_route="operator")
    )
    it = compute_spectra(
        model, x, y, SpectraOptions(k=4, method="iterative", m_route="operator", chunk_size=2)
    )
    for name in ("hf_top", "mt_top", "hp_top", "hp_bottom"):
        assert rel(getattr(it, name), getattr(it_ref, name)) <= 1e-10, name


def test_warm_start_needs_fewer_products() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 10)).double()
    x, y = torch.randn(100, 20, dtype=torch.float64), torch.randint(0, 10, (100,))
    first = compute_spectra(
        model, x, y, SpectraOptions(k=5, method="iterative", m_route="operator")
    )
    nearby = copy.deepcopy(model)
    with torch.no_grad():
        for p in nearby.parameters():
            p.add_(1e-3 * torch.randn_like(p))
    cold = compute_spectra(
        nearby, x, y, SpectraOptions(k=5, method="iterative", m_route="operator")
    )
    warm = compute_spectra(
        nearby, x, y, SpectraOptions(k=5, method="iterative", m_route="operator"), warm_start=first
    )
    for key in ("hf_matvecs", "mt_matvecs", "hp_matvecs"):
        assert warm.diagnostics[key] < cold.diagnostics[key], key
    for name in ("hf_top", "mt_top", "hp_top", "hp_bottom"):
        assert rel(getattr(warm, name), getattr(cold, name)) <= 1e-9
    with pytest.raises(ValueError, match="warm_start"):
        compute_spectra(
            make_model("mlp_relu"),
            *make_data("mlp_relu", 5),
            SpectraOptions(k=2, method="iterative"),
            warm_start=first,
        )


def test_float32_agrees_with_float64() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 10))
    x, y = torch.randn(100, 20), torch.randint(0, 10, (100,))
    ref = compute_spectra(model, x, y, SpectraOptions(k=5, method="dense"))
    for method in ("dense", "iterative"):
        s = compute_spectra(model, x, y, SpectraOptions(k=5, method=method, dtype=torch.float32))
        assert s.dtype == "float32" and s.hf_vecs.dtype == torch.float32
        for name in ("hf_top", "mt_top", "hp_top", "hp_bottom"):
            assert rel(getattr(s, name), getattr(ref, name)) <= 1e-4, (method, name)


class _Stateful(nn.Module):
    """Batch norm, dropout, a frozen layer and a submodule whose mode differs from its parent."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.5))
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@pytest.mark.parametrize("method", ["dense", "iterative"])
def test_model_state_is_left_untouched(method: str) -> None:
    torch.manual_seed(0)
    model = _Stateful()  # float32
    model.body[0].weight.requires_grad_(False)
    with torch.no_grad():
        model.body[1].running_mean.normal_()
        model.body[1].running_var.uniform_(0.5, 2.0)
    model.train()
    model.head.eval()
    model.head.weight.grad = torch.ones_like(model.head.weight)
    before = copy.deepcopy(model.state_dict())
    flags = {name: m.training for name, m in model.named_modules()}
    requires = {name: p.requires_grad for name, p in model.named_parameters()}
    x, y = torch.randn(10, 4), torch.randint(0, 3, (10,))
    s = compute_spectra(model, x, y, SpectraOptions(k=3, method=method, dtype=torch.float64))
    assert s.hf_vecs.dtype == torch.float64
    after = model.state_dict()
    for name, value in before.items():
        assert after[name].dtype == value.dtype and torch.equal(after[name], value), name
    assert {name: m.training for name, m in model.named_modules()} == flags
    assert {name: p.requires_grad for name, p in model.named_parameters()} == requires
    assert torch.equal(model.head.weight.grad, torch.ones_like(model.head.weight))
    assert model.body[0].weight.grad is None
    # curvature is measured in eval mode: deterministic despite dropout, matches a manual eval
    with torch.no_grad():
        logits = copy.deepcopy(model).double().eval()(x.double())
    assert s.loss == pytest.approx(float(nn.functional.cross_entropy(logits, y)), rel=1e-12)
    again = compute_spectra(model, x, y, SpectraOptions(k=3, method=method, dtype=torch.float64))
    assert np.array_equal(again.hf_top, s.hf_top)


def test_works_under_no_grad_and_inference_mode() -> None:
    model = make_model("mlp_tanh")
    x, y = make_data("mlp_tanh", n=6)
    ref = compute_spectra(model, x, y, SpectraOptions(k=3, method="iterative"))
    with torch.no_grad():
        quiet = compute_spectra(model, x, y, SpectraOptions(k=3, method="iterative"))
    with torch.inference_mode():
        x_inf, y_inf = x.clone(), y.clone()
        inferred = compute_spectra(model, x_inf, y_inf, SpectraOptions(k=3, method="dense"))
    assert np.allclose(quiet.hf_top, ref.hf_top, rtol=1e-12)
    assert rel(inferred.hf_top, ref.hf_top) <= 1e-6


def test_to_arrays() -> None:
    model = make_model("mlp_relu")
    x, y = make_data("mlp_relu", n=6)
    dense = compute_spectra(
        model, x, y, SpectraOptions(k=3, method="dense"), batch_size=2
    ).to_arrays()
    it = compute_spectra(model, x, y, SpectraOptions(k=3, method="iterative")).to_arrays()
    common = {
        "hf_top",
        "mt_top",
        "hp_top",
        "hp_bottom",
        "cosines",
        "trace_hf",
        "trace_mt",
        "trace_hp",
        "grad_norm",
        "loss",
        "accuracy",
        "n_samples",
        "n_params",
    }
    assert common <= set(dense) and common <= set(it)
    assert {"hf_all", "mt_all", "hp_all", "mb_top", "trace_mb"} <= set(dense)
    assert not {"hf_all", "mt_all", "hp_all", "mb_top"} & set(it)
    assert {"hf_matvecs", "hf_max_residual", "hp_matvecs"} <= set(it)
    for arrays in (dense, it):
        assert all(isinstance(v, np.ndarray) and v.dtype == np.float64 for v in arrays.values())
        assert arrays["hf_top"].shape == (3,) and arrays["loss"].shape == ()
        assert int(arrays["n_params"]) == 51 and int(arrays["n_samples"]) == 6
    assert dense["hf_all"].shape == (51,)
    assert dense["trace_hp"] == pytest.approx(dense["trace_mt"] - dense["trace_hf"])


def test_progress_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    model = make_model("mlp_relu")
    x, y = make_data("mlp_relu", n=5)
    with caplog.at_level(logging.DEBUG, logger="sgd_dynamics.curvature"):
        compute_spectra(model, x, y, SpectraOptions(k=2, method="auto"))
    assert any("dense method" in r.getMessage() for r in caplog.records)
