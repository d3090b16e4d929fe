"""The converged H_p solve (H_p products as Hessian-vector products of Σ p_i / p_i(θ₀)) against
the explicit float64 matrices: every copy of a repeated extreme eigenvalue, and warm starts
across two snapshots of a model being trained; a standard error for every estimated trace."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import Tensor, nn

from sgd_dynamics.curvature import SpectraOptions, compute_spectra

from ..conftest import make_data, make_model
from ..references import residual_direct

TOL = 1e-7  # iterative float64 solve (residual tolerance 1e-8 · ||A||), relative to max |λ|


class Copies(nn.Module):
    """`copies` identical tanh MLPs 4-5-3; sample i goes through the copy named by its last input
    column. On data repeated once per copy, H_f, M and H_p are block diagonal with identical
    blocks: every eigenvalue has multiplicity `copies`."""

    def __init__(self, copies: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        base = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
        self.branches = nn.ModuleList(copy.deepcopy(base) for _ in range(copies))

    def forward(self, x: Tensor) -> Tensor:
        group = x[:, -1].long()
        out = torch.stack([branch(x[:, :-1]) for branch in self.branches])  # (copies, n, 3)
        return out[group, torch.arange(x.shape[0])]


def copies_case(copies: int, m: int = 10) -> tuple[nn.Module, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(1)
    base = torch.randn(m, 4, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, (m,), generator=gen)
    x = torch.cat(
        [
            torch.cat([base, torch.full((m, 1), float(g), dtype=torch.float64)], 1)
            for g in range(copies)
        ]
    )
    return Copies(copies).double(), x, labels.repeat(copies)


def worst(values, reference: Tensor) -> float:
    return float((torch.as_tensor(values) - reference).abs().max() / reference.abs().max())


@pytest.mark.parametrize("copies", [2, 3])
@pytest.mark.parametrize("m_route", ["auto", "operator"])
def test_every_copy_of_a_repeated_hp_extreme_is_returned(copies: int, m_route: str) -> None:
    model, x, y = copies_case(copies)
    values = torch.linalg.eigvalsh(residual_direct(model, x, y))
    k = 2 * copies  # the two largest and the two smallest distinct values, each `copies` times
    top, bottom = values.flip(0)[:k], values[:k]
    for end in (top, bottom):  # the case is what it claims: exact multiplicity `copies`
        groups = end.reshape(2, copies)
        assert float((groups - groups[:, :1]).abs().max()) <= 1e-12 * float(values.abs().max())
        assert float((groups[0, 0] - groups[1, 0]).abs()) > 1e-3 * float(values.abs().max())
    s = compute_spectra(model, x, y, SpectraOptions(k=k, method="iterative", m_route=m_route))
    assert s.diagnostics["hp_converged"] == 1.0
    assert worst(s.hp_top, top) <= TOL
    assert worst(s.hp_bottom, bottom) <= TOL


def test_warm_start_across_two_snapshots_of_a_training_model() -> None:
    """Snapshot, 5 SGD steps, snapshot warm-started from the first: H_p's extremes (and those
    of H_f and M) equal the explicit matrices' at the new parameters, as a cold snapshot's do."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 3))
    model = model.double()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(30, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (30,), generator=gen)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)

    def train(steps: int) -> None:
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

    kw = dict(k=4, method="iterative")
    train(20)
    first = compute_spectra(model, x, y, SpectraOptions(**kw))
    train(5)
    warm = compute_spectra(model, x, y, SpectraOptions(**kw), warm_start=first)
    cold = compute_spectra(model, x, y, SpectraOptions(**kw))
    values = torch.linalg.eigvalsh(residual_direct(model, x, y))
    for s in (warm, cold):
        assert s.diagnostics["hp_converged"] == 1.0
        assert worst(s.hp_top, values.flip(0)[:4]) <= TOL
        assert worst(s.hp_bottom, values[:4]) <= TOL
    assert float((first.hp_top_vecs.T @ warm.hp_top_vecs).abs().max()) > 0.5  # nearby


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
