"""Matrix-free products with H_f, M, M_b and H_p against the reference matrices."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sgd_dynamics.curvature.operators import (
    CurvatureOperators,
    FunctionalModel,
    minibatch_coefficient,
)

from ..conftest import make_data, make_model
from ..references import (
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
