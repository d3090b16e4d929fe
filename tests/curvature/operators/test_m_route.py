"""The fast route for M (layer-wise factors) can never disagree with the definition of M:
unmodelled uses of a weight send M to the general route, and the per-snapshot self-check catches
what the tracing misses; also at full size (P = 3363), and with a nine-fold top eigenvalue."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sgd_dynamics.curvature import RouteWarning, SpectraOptions, compute_spectra
from sgd_dynamics.curvature.operators import per_sample

from ..conftest import make_data, make_model
from ..references import second_moment


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
    with caplog.at_level(logging.DEBUG, logger="sgd_dynamics.curvature"):
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
def test_weight_reused_outside_its_layer_at_full_size() -> None:
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
def test_ninefold_top_eigenvalue_of_hf() -> None:
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
