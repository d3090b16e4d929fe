"""A snapshot where every per-sample gradient is exactly 0 (each sample fitted beyond what the
dtype resolves): every method and route of M gives zero spectra and orthonormal eigenvectors,
not an error."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sgd_dynamics.curvature import SpectraOptions, compute_spectra

ROUTES = [
    ("iterative", "linear"),
    ("iterative", "dense"),
    ("iterative", "operator"),
    ("dense", "auto"),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_every_gradient_zero(method, route, dtype):
    torch.manual_seed(0)
    x, y = torch.randn(40, 6), torch.zeros(40, dtype=torch.long)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    with torch.no_grad():  # class 0 wins by 1e4 on every sample: p_y = 1 - O(exp(-1e4))
        model[2].weight.zero_()
        model[2].bias.copy_(torch.tensor([1e4, 0.0, 0.0]))
    # reference: the loss's gradient and Hessian underflow to exact zeros in both dtypes
    assert nn.functional.cross_entropy(model.double()(x.double()), y).item() == 0.0
    model.float()
    k = 4
    options = SpectraOptions(k=k, method=method, m_route=route, dtype=dtype)
    s = compute_spectra(model, x, y, options, batch_size=5)
    for name in ("hf_top", "mt_top", "mb_top", "hp_top", "hp_bottom"):
        assert torch.as_tensor(getattr(s, name)).abs().max() == 0, name
    for name in ("hf_vecs", "mt_vecs"):
        vectors = torch.as_tensor(getattr(s, name)).double()
        assert vectors.shape == (sum(p.numel() for p in model.parameters()), k)
        torch.testing.assert_close(
            vectors.T @ vectors, torch.eye(k, dtype=torch.float64), atol=1e-5, rtol=0
        )
