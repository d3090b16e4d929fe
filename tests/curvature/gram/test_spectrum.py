"""M through the Gram matrix K = G Gᵀ / n: eigenvectors of K and warm starts on the Gram side;
hp_method="none". References: explicit float64 per-sample gradients and second moments."""

from __future__ import annotations

import math

import numpy as np
import torch

from sgd_dynamics.curvature import SpectraOptions, compute_spectra
from sgd_dynamics.curvature.thresholds import GRAM_BLOCK_SIZE

from ..conftest import make_data, make_model
from ..references import mean_loss_hessian, per_sample_gradient_loop, second_moment

N_LANCZOS = 450  # above gram.DENSE_GRAM_MAX: the top of K comes from the Lanczos solver


def test_gram_side_vectors_are_eigenvectors_of_k_and_start_the_next_solve() -> None:
    model = make_model("mlp_tanh")
    x, y = make_data("mlp_tanh", n=N_LANCZOS)
    k = 4
    cold = compute_spectra(model, x, y, SpectraOptions(k=k, method="iterative", trace_probes=0))
    assert cold.m_route == "linear"
    g = per_sample_gradient_loop(model, x, y)
    kernel = g @ g.T / N_LANCZOS
    expected = torch.linalg.eigvalsh(second_moment(model, x, y)).flip(0)[:k].numpy()
    np.testing.assert_allclose(cold.mt_top, expected, rtol=1e-9)
    u = cold.mt_sample_vecs
    assert u is not None and u.shape == (N_LANCZOS, k)
    values = torch.as_tensor(cold.mt_top)
    residual = (kernel @ u - u * values).norm(dim=0) / values[0]
    assert float(residual.max()) <= 1e-7
    assert torch.allclose(u.T @ u, torch.eye(k, dtype=u.dtype), atol=1e-10)

    warm = compute_spectra(
        model, x, y, SpectraOptions(k=k, method="iterative", trace_probes=0), warm_start=cold
    )
    np.testing.assert_allclose(warm.mt_top, expected, rtol=1e-9)
    # the first block holds K's eigenvectors already: converged after one block of products
    # with K (then the multiplicity check's products)
    warm_main, cold_main = (
        s.diagnostics["mt_matvecs"] - s.diagnostics["mt_check_matvecs"] for s in (warm, cold)
    )
    assert warm_main == GRAM_BLOCK_SIZE and cold_main > GRAM_BLOCK_SIZE
    assert warm.diagnostics["mt_converged"] == 1.0 and warm.diagnostics["mt_check_rounds"] == 1


def test_hp_method_none_skips_hp_and_keeps_hf_and_m() -> None:
    model = make_model("mlp_relu")
    x, y = make_data("mlp_relu", n=20)
    k = 3
    s = compute_spectra(
        model, x, y, SpectraOptions(k=k, method="iterative", hp_method="none", trace_probes=0)
    )
    assert np.all(np.isnan(s.hp_top)) and np.all(np.isnan(s.hp_bottom))
    assert s.hp_top.shape == (k,) and s.hp_top_vecs is None
    hf = torch.linalg.eigvalsh(mean_loss_hessian(model, x, y)).flip(0)[:k].numpy()
    mt = torch.linalg.eigvalsh(second_moment(model, x, y)).flip(0)[:k].numpy()
    np.testing.assert_allclose(s.hf_top, hf, rtol=1e-8)
    np.testing.assert_allclose(s.mt_top, mt, rtol=1e-8)
    assert "hp_matvecs" not in s.diagnostics
    assert math.isfinite(s.trace_mt)
