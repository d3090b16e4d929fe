"""Cross-check against an independent library: curvlinops' Hessian and empirical Fisher operators
with scipy's eigsh, in float64, on an MNIST-sized MLP (784-100-100-10) and random data.

curvlinops with CrossEntropyLoss(reduction="mean") gives H_f = ∇²(1/n)Σ f_i and the empirical
Fisher (1/n) Σ g_i g_iᵀ = M (its "mean" reduction divides the sum of outer products by n).
"""

from __future__ import annotations

import curvlinops  # the independent reference, installed by scripts/setup.sh: never skipped
import numpy as np
import pytest
import torch
from scipy.sparse.linalg import eigsh
from torch import nn

from sgd_dynamics.curvature import SpectraOptions, compute_spectra


def _top_eigenvalues(operator, k: int) -> np.ndarray:
    values = eigsh(operator.to_scipy(), k=k, which="LA", tol=1e-10, return_eigenvectors=False)
    return np.sort(values)[::-1]


@pytest.mark.slow
def test_top_eigenvalues_match_curvlinops() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10)
    ).double()
    x = torch.randn(2000, 784, dtype=torch.float64)
    y = torch.randint(0, 10, (2000,))
    k = 5
    ours = compute_spectra(model, x, y, SpectraOptions(k=k, method="iterative", tol=1e-9))
    params = [p for p in model.parameters()]
    data = [(x[i : i + 1000], y[i : i + 1000]) for i in range(0, 2000, 1000)]
    loss = nn.CrossEntropyLoss(reduction="mean")
    hessian = curvlinops.HessianLinearOperator(model, loss, params, data)
    fisher = curvlinops.EFLinearOperator(model, loss, params, data)
    hf_ref = _top_eigenvalues(hessian, k)
    mt_ref = _top_eigenvalues(fisher, k)
    assert np.max(np.abs(ours.hf_top - hf_ref) / np.abs(hf_ref)) <= 1e-4
    assert np.max(np.abs(ours.mt_top - mt_ref) / np.abs(mt_ref)) <= 1e-4
