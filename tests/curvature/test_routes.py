"""The fast route for M (layer-wise factors) can never disagree with the definition of M:
unmodelled uses of a weight send M to the general route, and the per-snapshot self-check catches
what the tracing misses. Also the two reproductions of issue 13 at their original sizes, and the
cosines and standard errors conventions."""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sgd_dynamics.curvature import RouteWarning, SpectraOptions, compute_spectra
from sgd_dynamics.curvature.operators import per_sample

from .conftest import make_data, make_model
from .references import second_moment


class Reuse(nn.Module):
    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.enc, self.head = nn.Linear(d, d), nn.Linear(d, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.enc(x))
        h = torch.tanh(F.linear(h, self.enc.weight))
        return self.head(h)


class MatmulReuse(Reuse):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.enc(x))
        return self.head(torch.tanh(h @ self.enc.weight.T))


def rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


def reuse_problem(cls=Reuse, d: int = 8, n: int = 12):
    torch.manual_seed(0)
    model = cls(d).double()
    x, y = torch.randn(n, d, dtype=torch.float64), torch.randint(0, 3, (n,))
    return model, x, y


@pytest.mark.parametrize("cls", [Reuse, MatmulReuse])
def test_weight_used_outside_its_layer_takes_the_general_route(
    cls, caplog: pytest.LogCaptureFixture
) -> None:
    model, x, y = reuse_problem(cls)
    with caplog.at_level(logging.INFO, logger="sgd_dynamics.curvature"):
        s = compute_spectra(model, x, y, SpectraOptions(k=4, method="iterative"), batch_size=3)
    assert s.m_route != "linear"
    assert any("enc.weight used by" in r.getMessage() for r in caplog.records)
    expected = torch.linalg.eigvalsh(second_moment(model, x, y)).flip(0)[:4].numpy()
    assert rel(s.mt_top, expected) <= 1e-9
    with pytest.raises(ValueError, match="m_route='linear' does not apply.*enc.weight used by"):
        compute_spectra(model, x, y, SpectraOptions(k=4, method="iterative", m_route="linear"))


def test_self_check_catches_what_the_tracing_misses(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the tracing disabled the factors are wrong for this model: the self-check must
    notice (one probe against jvp/vjp), warn, and switch to the general route."""
    model, x, y = reuse_problem()
    dense = compute_spectra(model, x, y, SpectraOptions(k=4, method="dense"), batch_size=3)
    monkeypatch.setattr(
        per_sample._ParameterUseTracer,
        "__torch_function__",
        lambda self, func, types, args=(), kwargs=None: func(*args, **(kwargs or {})),
    )
    blind = compute_spectra(model, x, y, SpectraOptions(k=4, method="iterative", self_check=False))
    assert blind.m_route == "linear" and rel(blind.mt_top, dense.mt_top) > 1e-3  # wrong
    with pytest.warns(RouteWarning, match="disagree with jvp/vjp"):
        s = compute_spectra(model, x, y, SpectraOptions(k=4, method="iterative"), batch_size=3)
    assert s.m_route == "operator" and s.diagnostics["m_self_check"] > 1e-3
    for name in ("mt_top", "hp_top", "hp_bottom", "mb_top"):
        assert rel(getattr(s, name), getattr(dense, name)) <= 1e-8, name


def test_self_check_passes_on_a_plain_mlp() -> None:
    model = make_model("mlp_tanh")
    x, y = make_data("mlp_tanh", n=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RouteWarning)
        s = compute_spectra(model, x, y, SpectraOptions(k=3, method="iterative"))
    assert s.m_route == "linear" and s.diagnostics["m_self_check"] <= 1e-13


@pytest.mark.slow
def test_issue_reproduction_weight_reused_outside_its_layer() -> None:
    torch.manual_seed(0)
    model = Reuse(56).double()
    x, y = torch.randn(64, 56, dtype=torch.float64), torch.randint(0, 3, (64,))
    s = compute_spectra(
        model, x, y, SpectraOptions(k=5), batch_size=8
    )  # P = 3363: iterative by default
    dense = compute_spectra(model, x, y, SpectraOptions(k=5, method="dense"), batch_size=8)
    assert s.method == "iterative" and s.m_route != "linear"
    for name in ("hf_top", "mt_top", "hp_top", "hp_bottom", "mb_top"):
        assert rel(getattr(s, name), getattr(dense, name)) <= 1e-8, name
    assert abs(s.trace_mt - dense.trace_mt) <= 1e-10 * dense.trace_mt


@pytest.mark.slow
def test_issue_reproduction_multiplicity_nine() -> None:
    torch.manual_seed(0)
    model = nn.Linear(300, 10).double()
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    x = torch.randn(400, 300, dtype=torch.float64) * torch.linspace(0.2, 2.0, 300).double()
    y = torch.arange(400) % 10
    s = compute_spectra(model, x, y, SpectraOptions(k=15))  # P = 3010: iterative by default
    dense = compute_spectra(model, x, y, SpectraOptions(k=15, method="dense"))
    assert s.method == "iterative" and s.diagnostics["hf_converged"] == 1.0
    assert np.sum(np.isclose(dense.hf_top, dense.hf_top[0], rtol=1e-12)) == 9
    for name in ("hf_top", "mt_top", "hp_top", "hp_bottom"):
        assert rel(getattr(s, name), getattr(dense, name)) <= 1e-8, name


def test_cosines_beyond_the_rank_of_m_are_nan() -> None:
    """n = 3 samples: M has rank <= 3, so with k = 6 only 3 cosines are defined: those between
    the top-k eigenspace of H_f (all positive here) and M's range (its top-3 eigenspace)."""
    model = make_model("mlp_tanh")
    x, y = make_data("mlp_tanh", n=3)
    for method in ("dense", "iterative"):
        s = compute_spectra(model, x, y, SpectraOptions(k=6, method=method))
        assert np.all(np.isfinite(s.cosines[:3])) and np.all(np.isnan(s.cosines[3:]))
        assert s.diagnostics["cosines_defined"] == 3.0
        assert np.all(s.hf_top > 0)
        u, v = s.hf_vecs, s.mt_vecs[:, :3]
        expected = torch.linalg.svdvals(torch.linalg.qr(u)[0].T @ torch.linalg.qr(v)[0])
        assert np.allclose(s.cosines[:3], expected.numpy(), atol=1e-10)


def test_cosines_stop_at_the_positive_eigenvalues_of_hf() -> None:
    """At a point where H_f has fewer positive than k top eigenvalues, the cosines beyond them
    are NaN (the top-k of H_f then holds non-positive directions)."""
    torch.manual_seed(0)
    model = nn.Linear(3, 2).double()  # P = 8; softmax regression: H_f is PSD of rank <= 3·1+1
    x = torch.randn(40, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (40,))
    s = compute_spectra(model, x, y, SpectraOptions(k=8, method="dense"))
    positive = int((s.hf_top > 1e-12 * s.hf_top[0]).sum())
    assert positive < 8
    assert np.all(np.isnan(s.cosines[positive:]))
    assert np.isfinite(s.cosines[: min(positive, 8)]).all()


def test_every_estimated_trace_has_a_standard_error() -> None:
    model = make_model("mlp_tanh")
    x, y = make_data("mlp_tanh", n=10)
    dense = compute_spectra(model, x, y, SpectraOptions(k=3, method="dense"))
    assert dense.trace_hf_stderr == dense.trace_mt_stderr == dense.trace_hp_stderr == 0.0
    for route in ("auto", "operator"):
        s = compute_spectra(
            model, x, y, SpectraOptions(k=3, method="iterative", m_route=route, trace_probes=64)
        )
        assert s.trace_hp_stderr > 0 and math.isfinite(s.trace_hp_stderr)
        for name in ("trace_hf", "trace_mt", "trace_hp"):
            err = getattr(s, f"{name}_stderr")
            assert abs(getattr(s, name) - getattr(dense, name)) <= 5 * err + 1e-12, name
        arrays = s.to_arrays()
        assert float(arrays["trace_hp_stderr"]) == s.trace_hp_stderr
