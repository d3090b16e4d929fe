"""Matrix-free products and per-sample gradient factors against the reference matrices."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sgd_dynamics.curvature.operators import (
    CurvatureOperators,
    FunctionalModel,
    minibatch_coefficient,
)
from sgd_dynamics.curvature.operators.per_sample import (
    DenseGradients,
    LinearLayerGradients,
    gradient_factors,
    linear_layer_gradients,
    per_sample_gradients,
)

from .conftest import make_data, make_model
from .references import (
    mean_loss_hessian,
    per_sample_gradient_loop,
    rel_error,
    residual_direct,
    second_moment,
)

TOL = 1e-10


@pytest.mark.parametrize("chunk_size", [1, 3, 8])
def test_products_match_references_for_any_chunk_size(kind: str, chunk_size: int) -> None:
    model = make_model(kind)
    x, y = make_data(kind, n=8)
    fm = FunctionalModel(model, torch.float64)
    ops = CurvatureOperators(fm, x, y, chunk_size=chunk_size)
    h, m, hp = (
        mean_loss_hessian(model, x, y),
        second_moment(model, x, y),
        residual_direct(model, x, y),
    )
    block = torch.randn(
        ops.n_params, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    assert rel_error(ops.hf(block), h @ block) <= TOL
    assert rel_error(ops.m(block), m @ block) <= TOL  # jvp/vjp route
    assert rel_error(ops.hp(block), hp @ block) <= TOL
    vector = block[:, 0]
    assert ops.hf(vector).shape == vector.shape
    assert rel_error(ops.hf(vector), h @ vector) <= TOL  # single vector: double backward
    assert rel_error(ops.m(vector), m @ vector) <= TOL


def test_kept_gradient_graphs_give_the_same_products(kind: str) -> None:
    """Inside kept_gradient_graphs every H_f product (blocks and single vectors, repeated, so the
    graphs are reused) still matches the explicit Hessian, and the graphs go at the exit."""
    model = make_model(kind)
    x, y = make_data(kind, n=8)
    ops = CurvatureOperators(FunctionalModel(model, torch.float64), x, y, chunk_size=3)
    h = mean_loss_hessian(model, x, y)
    gen = torch.Generator().manual_seed(2)
    with ops.kept_gradient_graphs():
        for width in (1, 4, 1, 2):
            block = torch.randn(ops.n_params, width, dtype=torch.float64, generator=gen)
            assert rel_error(ops.hf(block), h @ block) <= TOL
            assert rel_error(ops.hf(block[:, 0]), h @ block[:, 0]) <= TOL
        assert ops._graphs is not None and len(ops._graphs) == 3  # one graph per chunk
    assert ops._graphs is None


def test_loss_gradient_accuracy(kind: str) -> None:
    model = make_model(kind)
    x, y = make_data(kind, n=8)
    ops = CurvatureOperators(FunctionalModel(model, torch.float64), x, y, chunk_size=3)
    loss, accuracy, mu = ops.loss_gradient()
    with torch.no_grad():
        logits = model.eval()(x)
    assert abs(loss - float(nn.functional.cross_entropy(logits, y))) <= 1e-12
    assert accuracy == float((logits.argmax(1) == y).double().mean())
    assert rel_error(mu, per_sample_gradient_loop(model, x, y).mean(0)) <= TOL


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


def test_minibatch_coefficient() -> None:
    assert minibatch_coefficient(10, 1) == 1.0
    assert minibatch_coefficient(10, 10) == 0.0
    assert minibatch_coefficient(1, 1) == 1.0
    assert minibatch_coefficient(5, 2) == pytest.approx(3 / 8)
    with pytest.raises(ValueError):
        minibatch_coefficient(5, 6)


def test_hp_product_with_kept_graphs_matches_the_direct_reference(kind: str) -> None:
    """H_p as the Hessian of Σ p_i / p_i(θ₀): blocks and single vectors, repeated inside kept
    graphs (its own graph per chunk beside H_f's), against (1/n) Σ ∇²p_i / p_i computed
    sample by sample, and against the M - H_f product route."""
    model = make_model(kind)
    x, y = make_data(kind, n=8)
    ops = CurvatureOperators(FunctionalModel(model, torch.float64), x, y, chunk_size=3)
    h, hp = mean_loss_hessian(model, x, y), residual_direct(model, x, y)
    gen = torch.Generator().manual_seed(4)
    with ops.kept_gradient_graphs():
        for width in (1, 3, 1):
            block = torch.randn(ops.n_params, width, dtype=torch.float64, generator=gen)
            assert rel_error(ops.hp(block), hp @ block) <= TOL
            assert rel_error(ops.hf(block), h @ block) <= TOL  # the graphs do not mix
            assert rel_error(ops.hp(block[:, 0]), hp @ block[:, 0]) <= TOL
            assert rel_error(ops.hp_difference(block), hp @ block) <= TOL
        assert ops._graphs is not None and len(ops._graphs) == 6  # 3 chunks × (H_f, H_p)
    assert ops._graphs is None


def test_hp_product_on_a_confident_model() -> None:
    """Logits scaled so that some p_i(y_i) are below 1e-30: ψ_i = exp(f_i(θ₀) - f_i(θ)) stays
    finite and H_p V still equals M V - H_f V from the explicit float64 matrices."""
    model = make_model("mlp_relu")
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(12.0)
    x, y = make_data("mlp_relu", n=8)
    ops = CurvatureOperators(FunctionalModel(model, torch.float64), x, y, chunk_size=3)
    with torch.no_grad():
        p_true = torch.softmax(model(x), dim=1).gather(1, y[:, None])
    assert float(p_true.min()) < 1e-30  # the case is what it claims
    block = torch.randn(
        ops.n_params, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5)
    )
    expected = (second_moment(model, x, y) - mean_loss_hessian(model, x, y)) @ block
    assert rel_error(ops.hp(block), expected) <= 1e-9
    with ops.kept_gradient_graphs():
        assert rel_error(ops.hp(block), expected) <= 1e-9
