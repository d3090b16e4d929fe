"""Undefined cosines (NaN beyond M's numerical rank, docs/math.md) through the whole chain: a
real snapshot stored and read back, the alignment figure, the report's series, logged scalars."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from callbacks.spectral import _scalar_metrics
from sgd_dynamics.curvature import SpectraOptions, compute_spectra
from sgd_dynamics.plots.alignment import alignment_figure
from sgd_dynamics.report.analysis import job_series
from sgd_dynamics.run_folder.snapshots import load_run, save_snapshot


def test_nan_cosines_are_stored_drawn_reported_and_logged(tmp_path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x, y = torch.randn(3, 4, dtype=torch.float64), torch.randint(0, 3, (3,))
    s = compute_spectra(model, x, y, SpectraOptions(k=6, method="dense"))  # n = 3: M has rank <= 3
    defined = int(np.isfinite(s.cosines).sum())
    assert 1 <= defined <= 3 and np.isnan(s.cosines[defined:]).all()
    for step in (0, 10):
        arrays = s.to_arrays()
        arrays.update(step=step, epoch=0, train_loss=s.loss, train_acc=s.accuracy)
        save_snapshot(tmp_path, arrays)
    history = load_run(tmp_path)
    assert np.isnan(history["cosines"][:, defined:]).all()
    alignment_figure(history)  # draws without error; NaN entries leave gaps
    series = job_series(history, top=10)
    mean = next(v for name, v in series.items() if name.startswith("mean_"))
    np.testing.assert_allclose(mean, s.cosines[:defined].mean(), rtol=1e-12)
    metrics = _scalar_metrics(s.to_arrays())
    assert all(np.isfinite(v) for v in metrics.values())
    assert f"alignment/cosines_{defined}" in metrics
    assert f"alignment/cosines_{defined + 1}" not in metrics
    assert metrics["alignment/mean_cos10"] == s.cosines[:defined].mean()
