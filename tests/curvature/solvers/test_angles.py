"""Principal angles: against scipy, and a snapshot's cosines only where they are defined."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sgd_dynamics.curvature import SpectraOptions, compute_spectra, principal_angles

from ..conftest import make_data, make_model
from ..references import subspace_cosines


def test_principal_angles_match_scipy() -> None:
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(30, 4, generator=gen, dtype=torch.float64)
    v = torch.randn(30, 4, generator=gen, dtype=torch.float64)
    v[:, 0] = u[:, 0] + u[:, 1]  # one common direction: cosine 1
    cos = principal_angles(u, v)
    assert np.allclose(cos, subspace_cosines(u, v).numpy(), atol=1e-12)
    assert np.all(np.diff(cos) <= 0) and cos[0] == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(principal_angles(u.numpy(), u.numpy() @ np.diag([1.0, 2, 3, 4])), 1.0)
    with pytest.raises(ValueError, match="same P"):
        principal_angles(u, v[:20])


def test_cosines_beyond_the_rank_of_m_are_nan() -> None:
    """n = 3 samples: M has rank <= 3, so with k = 6 only 3 cosines are defined: those between
    the top-k eigenspace of H_f (all positive here) and M's range (its top-3 eigenspace)."""
    model = make_model("mlp_tanh")
    x, y = make_data("mlp_tanh", n=3)
    for method in ("dense", "iterative"):
        s = compute_spectra(model, x, y, SpectraOptions(k=6, method=method))
        assert np.all(np.isfinite(s.cosines[:3])) and np.all(np.isnan(s.cosines[3:]))
        assert s.diagnostics["cosines_defined"] == 3.0
        assert np.all(s.hf_top > 0)
        u, v = s.hf_vecs, s.mt_vecs[:, :3]
        expected = torch.linalg.svdvals(torch.linalg.qr(u)[0].T @ torch.linalg.qr(v)[0])
        assert np.allclose(s.cosines[:3], expected.numpy(), atol=1e-10)


def test_cosines_stop_at_the_positive_eigenvalues_of_hf() -> None:
    """At a point where H_f has fewer positive than k top eigenvalues, the cosines beyond them
    are NaN (the top-k of H_f then holds non-positive directions)."""
    torch.manual_seed(0)
    model = nn.Linear(3, 2).double()  # P = 8; softmax regression: H_f is PSD of rank <= 3·1+1
    x = torch.randn(40, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (40,))
    s = compute_spectra(model, x, y, SpectraOptions(k=8, method="dense"))
    positive = int((s.hf_top > 1e-12 * s.hf_top[0]).sum())
    assert positive < 8
    assert np.all(np.isnan(s.cosines[positive:]))
    assert np.isfinite(s.cosines[: min(positive, 8)]).all()
