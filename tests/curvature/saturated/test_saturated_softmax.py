"""Curvature at convergence: fitted samples, against closed forms and float64 references.

Softmax regression driven to largest per-sample losses of 1e-8, 1e-14 and 1e-18 (every sample
fitted beyond float64's resolution of 1 - p_y in the last case) against its closed form
(`softmax_regression.closed_form`): the top eigenvalues of H_f and M and both ends of H_p within
1e-10 of each matrix's spectral norm ‖A‖ in float64 and 1e-4 in float32 (1e-8 and 1e-14), with
both methods. ‖M‖ is itself the scale of M's errors (its smallest value here, 2e-37 at 1e-18,
is a normal float64 number). H_f of softmax regression is PSD: no eigenvalue below -1e-12 ‖H_f‖.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sgd_dynamics.curvature import PrecisionWarning, SpectraOptions, compute_spectra
from sgd_dynamics.curvature.operators.stable_loss import per_sample_cross_entropy

from .softmax_regression import closed_form, per_sample_losses, saturated_problem

K = 3
LOSSES = (1e-8, 1e-14, 1e-18)


@functools.cache
def problem(loss: float):
    model, x, y = saturated_problem(loss)
    reference = closed_form(model, x.numpy(), y.numpy())
    largest = reference["losses"].max()
    assert loss / 1.1 <= largest <= loss  # the regime asked for is reached
    values = {name: np.linalg.eigvalsh(reference[name]) for name in ("H_f", "M", "H_p")}
    return model, x, y, values


def _errors(spectra, values) -> dict[str, float]:
    """|engine - closed form| / ‖A‖ of the k largest of H_f and M and both ends of H_p."""
    norm = {name: np.abs(v).max() for name, v in values.items()}
    pairs = {
        "H_f": (spectra.hf_top, values["H_f"][::-1][:K], norm["H_f"]),
        "M": (spectra.mt_top, values["M"][::-1][:K], norm["M"]),
        "H_p top": (spectra.hp_top, values["H_p"][::-1][:K], norm["H_p"]),
        "H_p bottom": (spectra.hp_bottom, values["H_p"][:K], norm["H_p"]),
    }
    return {name: float(np.abs(a - b).max() / s) for name, (a, b, s) in pairs.items()}


@pytest.mark.parametrize("method", ["dense", "iterative"])
@pytest.mark.parametrize("loss", LOSSES)
def test_float64_matches_the_closed_form(loss, method):
    model, x, y, values = problem(loss)
    options = SpectraOptions(k=K, method=method, dtype=torch.float64, tol=1e-12)
    spectra = compute_spectra(model, x, y, options)
    errors = _errors(spectra, values)
    assert max(errors.values()) <= 1e-10, errors
    assert "float32_error_estimate" not in spectra.diagnostics  # float64 needs no vouching
    if method == "dense":
        assert spectra.hf_all.min() >= -1e-12 * values["H_f"].max()  # PSD H_f stays PSD


@pytest.mark.parametrize("method", ["dense", "iterative"])
@pytest.mark.parametrize("loss", LOSSES[:2])  # below: test_precision_flag_where_float32_fails
def test_float32_matches_the_closed_form(loss, method):
    model, x, y, values = problem(loss)
    options = SpectraOptions(k=K, method=method, dtype=torch.float32, tol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        spectra = compute_spectra(model, x, y, options)
    errors = _errors(spectra, values)
    assert max(errors.values()) <= 1e-4, errors
    assert spectra.diagnostics["float32_unvouched"] == 0.0
    if method == "dense":
        assert spectra.hf_all.min() >= -1e-6 * values["H_f"].max()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_loss_derivatives_match_the_exact_forms(dtype):
    """f, ∂f/∂z = p - e_y and ∂²f/∂z² = diag(p) - p pᵀ of `per_sample_cross_entropy` against
    forms built from the other classes' p_j, from ordinary to saturated logits."""
    generator = torch.Generator().manual_seed(3)
    scales = torch.tensor([0.1, 1.0, 10.0, 30.0, 60.0]).repeat_interleave(8)
    logits64 = torch.randn(len(scales), 5, generator=generator, dtype=torch.float64)
    logits64 = logits64 * scales[:, None].double()
    targets = logits64.argmax(dim=1)
    # some samples misclassified, not confidently (t = lse_{j≠y} z_j - z_y ≫ 1 has the mirror
    # problem, σ(t)(1 - σ(t)) with σ(t) rounding to 1: `stable_loss`)
    targets[:16:4] = (targets[:16:4] + 1) % 5
    logits = logits64.to(dtype)
    z = logits.double()  # the exact forms, in float64, at the same (rounded) logits
    p = torch.softmax(z, dim=1)
    rows = torch.arange(len(targets))
    rest = p.clone()
    rest[rows, targets] = 0
    rest = rest.sum(1)
    gradient = p.clone()
    gradient[rows, targets] = -rest
    curvature = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    curvature[rows, targets, targets] = p[rows, targets] * rest
    loss = torch.from_numpy(per_sample_losses(z.numpy(), targets.numpy()))

    def single(z_i, y_i):
        return per_sample_cross_entropy(z_i[None], y_i[None])[0]

    values = per_sample_cross_entropy(logits, targets).double()
    grads = torch.func.vmap(torch.func.grad(single))(logits, targets).double()
    hessians = torch.func.vmap(torch.func.hessian(single))(logits, targets).double()
    # rounding: a few eps times the logits' size (the conditioning of t = lse_{j≠y} z_j - z_y)
    # on the samples whose loss the dtype represents to its precision (float32: above 2e-31)
    info = torch.finfo(dtype)
    tolerance = 4 * info.eps * (1 + z.abs().amax(1))
    kept = loss >= info.tiny / info.eps
    assert kept.sum() >= 30
    assert torch.all(((values - loss).abs() <= tolerance * loss)[kept])
    scale = gradient.abs().amax(1)
    assert torch.all(((grads - gradient).abs().amax(1) <= tolerance * scale)[kept])
    scale = curvature.abs().amax((1, 2))
    assert torch.all(((hessians - curvature).abs().amax((1, 2)) <= tolerance * scale)[kept])
    ordinary = scales <= 10  # where PyTorch's cross-entropy is accurate the values agree
    pytorch = F.cross_entropy(logits64, targets, reduction="none")
    assert torch.allclose(values[ordinary], pytorch[ordinary], rtol=1e-5, atol=0)


@pytest.mark.parametrize("loss", [1e-1, 1e-8, 1e-14])
def test_no_precision_flag_where_float32_is_accurate(loss):
    model, x, y = saturated_problem(loss)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        spectra = compute_spectra(model, x, y, SpectraOptions(k=K, dtype=torch.float32))
    assert spectra.diagnostics["float32_unvouched"] == 0.0
    assert 0 < spectra.diagnostics["float32_error_estimate"] <= 1e-4
    assert spectra.to_arrays()["float32_unvouched"] == 0.0  # stored with the snapshot


def test_precision_flag_where_float32_fails():
    """Losses of 1e-25: M ~ 1e-50 is below float32's range and its float32 top eigenvalue is
    wrong; the snapshot is flagged, and float64 gets it right."""
    model, x, y = saturated_problem(1e-25)
    values = np.linalg.eigvalsh(closed_form(model, x.numpy(), y.numpy())["M"])
    with pytest.warns(PrecisionWarning, match=r"spectral\.dtype=float64"):
        low = compute_spectra(model, x, y, SpectraOptions(k=K, dtype=torch.float32))
    assert low.diagnostics["float32_unvouched"] == 1.0
    assert low.to_arrays()["float32_unvouched"] == 1.0
    assert abs(low.mt_top[0] - values[-1]) > 1e-4 * values[-1]  # the flag was deserved
    high = compute_spectra(model, x, y, SpectraOptions(k=K, dtype=torch.float64))
    assert abs(high.mt_top[0] - values[-1]) <= 1e-10 * values[-1]
