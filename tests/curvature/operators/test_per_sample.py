"""Per-sample gradient factors (layer-wise and dense) and the choice of M's route, against
per-sample loops."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sgd_dynamics.curvature.operators import (
    CurvatureOperators,
    FunctionalModel,
)
from sgd_dynamics.curvature.operators.per_sample import (
    DenseGradients,
    LinearLayerGradients,
    gradient_factors,
    linear_layer_gradients,
    per_sample_gradients,
)

from ..conftest import make_data, make_model
from ..references import (
    per_sample_gradient_loop,
    rel_error,
)

TOL = 1e-10


@pytest.mark.parametrize("kind_", ["mlp_relu", "mlp_tanh"])
def test_linear_layer_factors_match_per_sample_loop(kind_: str) -> None:
    model = make_model(kind_)
    x, y = make_data(kind_, n=9)
    fm = FunctionalModel(model, torch.float64)
    factors = linear_layer_gradients(fm, x, y, chunk_size=4)
    assert isinstance(factors, LinearLayerGradients)
    g = per_sample_gradient_loop(model, x, y)
    gen = torch.Generator().manual_seed(1)
    v = torch.randn(fm.n_params, 3, dtype=torch.float64, generator=gen)
    u = torch.randn(9, 3, dtype=torch.float64, generator=gen)
    assert rel_error(factors.gram(), g @ g.T) <= TOL
    for row_block in (1, 2, 4, 8):  # the upper-triangle blocks and their transposes
        assert rel_error(factors.gram(row_block=row_block), g @ g.T) <= TOL
    with pytest.raises(ValueError, match="row_block"):
        factors.gram(row_block=0)
    assert rel_error(factors.sq_norms(), (g * g).sum(1)) <= TOL
    assert rel_error(factors.matmat(v), g @ v) <= TOL
    assert rel_error(factors.rmatmat(u), g.T @ u) <= TOL
    ops = CurvatureOperators(fm, x, y, gradients=factors)
    assert rel_error(ops.m(v), g.T @ g @ v / 9) <= TOL


def test_per_sample_gradients_by_vmap(kind: str) -> None:
    model = make_model(kind)
    x, y = make_data(kind, n=8)
    fm = FunctionalModel(model, torch.float64)
    g = per_sample_gradients(fm, x, y, chunk_size=3)
    assert rel_error(g, per_sample_gradient_loop(model, x, y)) <= TOL


def test_factor_route_selection() -> None:
    x, y = make_data("cnn", n=5)
    fm = FunctionalModel(make_model("cnn"), torch.float64)
    assert linear_layer_gradients(fm, x, y, 5) is None  # a convolution: no linear layout
    assert isinstance(gradient_factors(fm, x, y, 5, 1 << 30), DenseGradients)
    assert gradient_factors(fm, x, y, 5, 10) is None  # over the memory budget: operator route
    assert gradient_factors(fm, x, y, 5, 1 << 30, route="operator") is None
    with pytest.raises(ValueError, match="m_route"):
        gradient_factors(fm, x, y, 5, 1 << 30, route="linear")
    xm, ym = make_data("mlp_relu", n=5)
    fm_mlp = FunctionalModel(make_model("mlp_relu"), torch.float64)
    assert isinstance(gradient_factors(fm_mlp, xm, ym, 5, 1 << 30), LinearLayerGradients)
    assert isinstance(gradient_factors(fm_mlp, xm, ym, 5, 1 << 30, route="dense"), DenseGradients)


def test_shared_linear_layer_falls_back() -> None:
    """A layer called twice breaks the outer-product structure: no linear factors."""

    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Linear(4, 4)
            self.out = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(torch.tanh(self.inner(torch.tanh(self.inner(x)))))

    torch.manual_seed(0)
    model = Shared().double()
    x, y = make_data("mlp_relu", n=6)
    fm = FunctionalModel(model, torch.float64)
    assert linear_layer_gradients(fm, x, y, 6) is None
    factors = gradient_factors(fm, x, y, 6, 1 << 30)
    assert isinstance(factors, DenseGradients)
    g = per_sample_gradient_loop(model, x, y)
    assert rel_error(factors.gram(), g @ g.T) <= TOL
