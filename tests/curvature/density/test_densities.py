"""Spectral densities (SLQ for H_f and H_p, exact M) against exact dense spectra (float64).

Models: the default Gauss-10 model (MLP 20-32-10 on the Gauss-10 generator's 100 samples) and
an MLP 12-24-24-5 with tanh on a 5-class Gauss-10 variant, each trained by 400 SGD steps, at
steps 0, 50 and 400. References: the P×P matrices of `dense` and `torch.linalg.eigvalsh`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sgd_dynamics.curvature import SpectraOptions, compute_spectra
from sgd_dynamics.curvature.density import (
    DensitySettings,
    Outliers,
    SpectralMeasure,
    exact_densities,
    relative_w1,
    second_moment_measure,
    spectral_densities,
)
from sgd_dynamics.curvature.gram import gram_eigenvalues, per_sample_gram
from sgd_dynamics.curvature.operators import CurvatureOperators, FunctionalModel
from sgd_dynamics.curvature.operators.per_sample import linear_layer_gradients
from sgd_dynamics.curvature.snapshot.dense import hessian_matrix, second_moment_matrix
from sgd_dynamics.data.gauss10 import make_gauss10
from sgd_dynamics.models import MLP

K = 15
STEPS = (0, 50, 400)
MODELS = {
    "gauss10_20-32-10": (dict(input_dim=20, num_classes=10), dict(depth=1, width=32)),
    "mlp_12-24-24-5_tanh": (
        dict(input_dim=12, num_classes=5, n_train=60),
        dict(depth=2, width=24, activation="tanh"),
    ),
}


def _snapshots(name: str) -> list[tuple[int, nn.Module, torch.Tensor, torch.Tensor]]:
    data_args, model_args = MODELS[name]
    data = make_gauss10(0, **data_args)
    x, y = torch.tensor(data.x_train, dtype=torch.float64), torch.tensor(data.y_train)
    torch.manual_seed(0)
    model = MLP(data_args["input_dim"], data_args["num_classes"], **model_args).double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(0)
    out = []
    for step in range(STEPS[-1] + 1):
        if step in STEPS:
            copy = MLP(data_args["input_dim"], data_args["num_classes"], **model_args).double()
            copy.load_state_dict(model.state_dict())
            out.append((step, copy, x, y))
        batch = torch.randint(0, x.shape[0], (5,), generator=generator)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
        optimizer.step()
    return out


@pytest.fixture(scope="module", params=list(MODELS))
def trained(request: pytest.FixtureRequest):
    return _snapshots(request.param)


def _dense(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    fm = FunctionalModel(model, torch.float64)
    ops = CurvatureOperators(fm, x, y)
    hessian = hessian_matrix(ops)
    moment = second_moment_matrix(fm, x, y, chunk_size=x.shape[0])
    return fm, ops, hessian, moment


def _expanded(measure: SpectralMeasure, n_params: int) -> np.ndarray:
    """The P eigenvalues of a measure whose weights are multiples of 1/P, ascending."""
    counts = np.rint(measure.weights * n_params).astype(int)
    assert np.allclose(counts, measure.weights * n_params, atol=1e-9)
    return np.repeat(measure.nodes, counts)


@pytest.mark.slow
def test_densities_match_dense_spectra(trained) -> None:
    for step, model, x, y in trained:
        fm, ops, hessian, moment = _dense(model, x, y)
        p = fm.n_params
        hf_all = torch.linalg.eigvalsh(hessian).numpy()
        hp_all = torch.linalg.eigvalsh(moment - hessian).numpy()
        mt_all = torch.linalg.eigvalsh(moment).numpy()
        spread = hf_all[-1] - hf_all[0]
        solved = compute_spectra(
            model, x, y, SpectraOptions(k=K, method="iterative", m_route="operator")
        )
        result = spectral_densities(
            ops.hf,
            p,
            m=ops.m,
            gram_values=gram_eigenvalues(per_sample_gram(fm, x, y, chunk_size=17)),
            hf_outliers=Outliers(solved.hf_top, solved.hf_vecs),
            hp_outliers=Outliers(
                np.concatenate([solved.hp_top, solved.hp_bottom]),
                torch.cat([solved.hp_top_vecs, solved.hp_bottom_vecs], dim=1),
            ),
        )
        where = f"step {step}"
        # W1(estimate, exact) <= 1e-2 of H_f's spread, at the default settings
        w1_hf = relative_w1(result.hf.measure, SpectralMeasure.from_eigenvalues(hf_all), spread)
        w1_hp = relative_w1(result.hp.measure, SpectralMeasure.from_eigenvalues(hp_all), spread)
        assert w1_hf <= 1e-2 and w1_hp <= 1e-2, (where, w1_hf, w1_hp)
        # M exact: all P eigenvalues equal the dense ones
        mt = _expanded(result.mt.measure, p)
        assert mt.shape == (p,)
        assert np.max(np.abs(mt - mt_all)) <= 1e-10 * np.max(np.abs(mt_all)), where
        # the merged outliers are the dense top-k (H_f) and top/bottom-k (H_p), weight 1/P each
        scale = np.abs(hf_all).max()
        expected_hp = np.sort(np.concatenate([hp_all[-K:], hp_all[:K]]))
        assert np.allclose(result.hf.outliers, hf_all[-K:], rtol=0, atol=1e-8 * scale), where
        assert np.allclose(result.hp.outliers, expected_hp, rtol=0, atol=1e-8 * scale), where
        for part, values in ((result.hf, hf_all[-K:]), (result.hp, expected_hp)):
            for value in values:
                hit = np.abs(part.measure.nodes - value) <= 1e-8 * scale
                assert part.measure.weights[hit].sum() >= 1.0 / p - 1e-12, where
        # products: q block calls of H_f for H_f, q of H_f and q of M for H_p
        q = DensitySettings().steps
        assert (result.hf_products, result.mt_products) == (2 * q, q)
        # H_p -> -H_f from the estimates close to the exact distance
        exact_w1 = _w1_equal_size(hp_all, -hf_all) / spread
        assert abs(result.hp_to_minus_hf - exact_w1) <= 2e-2, (where, exact_w1)


def _w1_equal_size(a: np.ndarray, b: np.ndarray) -> float:
    """W1 of two uniform measures on as many points: the mean gap of the sorted samples."""
    return float(np.mean(np.abs(np.sort(a) - np.sort(b))))


def test_exact_densities_and_second_moment_measure() -> None:
    ((_, model, x, y),) = [s for s in _snapshots("gauss10_20-32-10") if s[0] == 400]
    fm, _, hessian, moment = _dense(model, x, y)
    hf_all = torch.linalg.eigvalsh(hessian).numpy()
    hp_all = torch.linalg.eigvalsh(moment - hessian).numpy()
    mt_all = torch.linalg.eigvalsh(moment).numpy()
    result = exact_densities(hf_all, mt_all, hp_all)
    spread = hf_all[-1] - hf_all[0]
    assert result.spread == pytest.approx(spread, rel=1e-12)
    assert result.hp_to_minus_hf == pytest.approx(_w1_equal_size(hp_all, -hf_all) / spread)
    # M through the layer-wise Gram matrix of the linear network, in float64
    factors = linear_layer_gradients(fm, x, y, chunk_size=40)
    assert factors is not None
    mt = _expanded(second_moment_measure(gram_eigenvalues(factors), fm.n_params), fm.n_params)
    assert np.max(np.abs(mt - mt_all)) <= 1e-10 * np.max(mt_all)
    # the smoothed densities integrate to 1 over λ
    for part in (result.hf, result.mt, result.hp):
        assert np.trapezoid(part.density, part.grid) == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(probes=0), "probes"),
        (dict(steps=1.5), "steps"),
        (dict(probe_kind="uniform"), "probe_kind"),
        (dict(width=-1.0), "width"),
        (dict(linthresh=True), "linthresh"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DensitySettings(**kwargs)


def test_bad_measures_and_outliers_are_refused() -> None:
    with pytest.raises(ValueError, match="summing to 1"):
        SpectralMeasure(np.array([0.0, 1.0]), np.array([0.5, 0.6]))
    with pytest.raises(ValueError, match="outlier vectors"):
        spectral_densities(
            lambda v: v, 10, hf_outliers=Outliers(np.ones(2), torch.eye(10, 3, dtype=torch.float64))
        )


@pytest.mark.parametrize("m_route", ["linear", "operator"])
def test_compute_spectra_density_matches_the_dense_spectra(m_route: str) -> None:
    """compute_spectra(density=True): iterative (M from the factors' Gram matrix, or from
    per-sample gradients chunk by chunk) within the accuracy bound of the exact dense spectra;
    dense: exact; the store keys present."""
    step, model, x, y = _snapshots("gauss10_20-32-10")[1]
    _, _, hessian, moment = _dense(model, x, y)
    hf_all = torch.linalg.eigvalsh(hessian).numpy()
    hp_all = torch.linalg.eigvalsh(moment - hessian).numpy()
    mt_all = torch.linalg.eigvalsh(moment).numpy()
    spread = hf_all[-1] - hf_all[0]
    p = hf_all.size
    iterative = compute_spectra(
        model, x, y, SpectraOptions(k=K, method="iterative", m_route=m_route, density=True)
    )
    dense = compute_spectra(model, x, y, SpectraOptions(k=K, method="dense", density=True))
    assert iterative.densities is not None and dense.densities is not None
    for name, exact in (("hf", hf_all), ("hp", hp_all)):
        part = getattr(iterative.densities, name)
        w1 = relative_w1(part.measure, SpectralMeasure.from_eigenvalues(exact), spread)
        assert w1 <= 1e-2, (name, w1)
        assert np.allclose(dense.densities.__getattribute__(name).measure.nodes, np.sort(exact))
    mt = _expanded(iterative.densities.mt.measure, p)
    assert np.max(np.abs(mt - mt_all)) <= 1e-10 * mt_all.max()
    exact_w1 = _w1_equal_size(hp_all, -hf_all) / spread
    assert abs(dense.densities.hp_to_minus_hf - exact_w1) <= 1e-12
    # Weyl: M ⪰ 0 shifts every sorted eigenvalue of -H_f up, so W1 = tr(M) / P, exactly
    assert exact_w1 == pytest.approx(np.trace(moment.numpy()) / p / spread, rel=1e-10)
    assert iterative.densities.hp_to_minus_hf == pytest.approx(exact_w1, rel=1e-9)
    assert abs(iterative.densities.hp_to_minus_hf_slq - exact_w1) <= 2e-2  # the SLQ estimate
    assert iterative.to_arrays()["hp_to_minus_hf_w1_slq"] == iterative.densities.hp_to_minus_hf_slq
    assert "hp_to_minus_hf_w1_slq" not in dense.to_arrays()
    arrays = iterative.to_arrays()
    for key in ("hf_density", "mt_density_nodes", "hp_density_grid", "hp_to_minus_hf_w1"):
        assert key in arrays and np.all(np.isfinite(arrays[key])), key
    assert arrays["density_seconds"] > 0 and arrays["density_exact"] == 0
    assert dense.to_arrays()["density_exact"] == 1
    assert (
        "hf_density"
        not in compute_spectra(model, x, y, SpectraOptions(k=K, method="dense")).to_arrays()
    )


def test_compute_spectra_density_argument_is_checked() -> None:
    """(DDP densities: tests/distributed/test_ddp_densities.py.)"""
    _, model, x, y = _snapshots("gauss10_20-32-10")[0]
    with pytest.raises(ValueError, match="density must be None, a bool or a DensitySettings"):
        compute_spectra(model, x, y, SpectraOptions(k=3, density="yes"))
