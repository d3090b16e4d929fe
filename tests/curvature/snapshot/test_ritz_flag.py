"""hp_method="ritz" flags estimates it cannot vouch for: a Ritz residual above
`thresholds.RITZ_MAX_RESIDUAL` warns (or raises, or is ignored, per on_nonconvergence); an
invariant subspace gives H_p's exact extremes without a flag."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from sgd_dynamics.curvature import SpectraOptions, compute_spectra
from sgd_dynamics.curvature.solvers.block_lanczos import ConvergenceError, ConvergenceWarning
from sgd_dynamics.curvature.thresholds import RITZ_MAX_RESIDUAL


def far_case():
    torch.manual_seed(0)
    x, y = torch.randn(200, 20), torch.randint(0, 10, (200,))
    return nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 10)), x, y


def ritz(model, x, y, k, on_nonconvergence):
    options = SpectraOptions(
        k=k, method="iterative", hp_method="ritz", on_nonconvergence=on_nonconvergence
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = compute_spectra(model, x, y, options, batch_size=5)
    return result, [w for w in caught if issubclass(w.category, ConvergenceWarning)]


def test_a_far_estimate_warns_naming_the_solve():
    model, x, y = far_case()
    result, caught = ritz(model, x, y, 5, "warn")
    assert result.diagnostics["hp_max_residual"] > RITZ_MAX_RESIDUAL
    assert len(caught) == 1 and "hp_method='solve'" in str(caught[0].message)
    # the flag is deserved: the dense reference's extremes differ by more than the bound
    dense = compute_spectra(model, x, y, SpectraOptions(k=5, method="dense"), batch_size=5)
    scale = max(abs(dense.hp_top[0]), abs(dense.hp_bottom[0]))
    assert abs(result.hp_top[0] - dense.hp_top[0]) > RITZ_MAX_RESIDUAL * scale


def test_raise_and_ignore():
    model, x, y = far_case()
    with pytest.raises(ConvergenceError, match="hp_method='ritz'"):
        ritz(model, x, y, 5, "raise")
    _, caught = ritz(model, x, y, 5, "ignore")
    assert caught == []


def test_an_invariant_subspace_is_exact_and_not_flagged():
    """P = 15 and 2k = 16 directions: the span holds all of R^P, the Ritz values are H_p's
    eigenvalues (against the dense float64 reference), and nothing is flagged."""
    torch.manual_seed(1)
    x, y = torch.randn(30, 4), torch.randint(0, 3, (30,))
    model = nn.Linear(4, 3)
    result, caught = ritz(model, x, y, 8, "raise")
    assert caught == []
    assert result.diagnostics["hp_max_residual"] <= RITZ_MAX_RESIDUAL
    dense = compute_spectra(model, x, y, SpectraOptions(k=8, method="dense"), batch_size=5)
    np.testing.assert_allclose(result.hp_top[:3], dense.hp_top[:3], atol=1e-8)
    np.testing.assert_allclose(result.hp_bottom[:3], dense.hp_bottom[:3], atol=1e-8)
