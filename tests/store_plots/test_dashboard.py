"""The dashboard picture draws each logged histogram on the bins it was logged with: symlog bins
on a symlog eigenvalue axis (H_f, H_p, -H_f), log bins on a log axis (M's nonzero part), one
column per snapshot at its step on the symlog step axis, the counts unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import QuadMesh

from sgd_dynamics.plots.common import new_figure
from sgd_dynamics.plots.dashboard import STEP, histogram_panel
from sgd_dynamics.wandb_io.histogram_bins import log_edges, spectrum_histogram, symlog_edges

STEPS = (0, 1, 3, 10, 30, 100, 300, 1000)


def _logged_rows(rng) -> tuple[list[dict], dict[str, list[tuple[np.ndarray, np.ndarray]]]]:
    """Rows as `history_rows` gives them: at each step the histograms of a spectrum with a bulk
    near 0 and outliers that shrink over training, as the run logs them."""
    rows, logged = [], {"densities/H_f": [], "densities/M_nonzero": []}
    for step in STEPS:
        scale = 1.0 / (1.0 + step)
        hf = np.concatenate(
            [rng.normal(0.0, 1e-4 * scale, 300), rng.uniform(-0.5, 2.0, 12) * scale, [0.0] * 20]
        )
        mt = np.exp(rng.uniform(np.log(1e-6 * scale), np.log(scale), 40))
        row = {STEP: step, "train/loss": 1.0}
        for key, values, edges in (
            ("densities/H_f", hf, symlog_edges(hf)),
            ("densities/M_nonzero", mt, log_edges(mt)),
        ):
            counts, edges = spectrum_histogram(values, edges)
            row[key] = {"_type": "histogram", "bins": edges.tolist(), "values": counts.tolist()}
            logged[key].append((edges, counts))
        rows.append(row)
    rows.insert(3, {STEP: 2, "train/loss": 0.5})  # a step without histograms
    return rows, logged


@pytest.mark.parametrize(
    ("key", "yscale"), [("densities/H_f", "symlog"), ("densities/M_nonzero", "log")]
)
def test_histograms_are_drawn_on_their_logged_bins(key, yscale, rng) -> None:
    rows, logged = _logged_rows(rng)
    fig = new_figure(5.0, 4.0)
    ax = fig.add_subplot()
    histogram_panel(ax, rows, key)
    meshes = [c for c in ax.collections if isinstance(c, QuadMesh)]
    assert len(meshes) == len(STEPS)  # one column per logged snapshot
    for step, mesh, (edges, counts) in zip(STEPS, meshes, logged[key], strict=True):
        corners = mesh.get_coordinates()  # (rows + 1, columns + 1, 2)
        assert corners.shape[1] == 2
        np.testing.assert_array_equal(corners[:, 0, 1], edges)  # the logged edges, not re-binned
        x_low, x_high = corners[0, :, 0]
        assert x_low <= step <= x_high  # the column sits at its step
        drawn = np.ma.filled(np.ma.asarray(mesh.get_array()), 0.0).ravel()
        np.testing.assert_array_equal(drawn, counts)  # every count as logged, empty bins blank
    assert ax.get_yscale() == yscale
    assert ax.get_xscale() == "symlog"
    y_low, y_high = ax.get_ylim()
    every_edge = np.concatenate([edges for edges, _ in logged[key]])
    assert y_low == pytest.approx(every_edge.min()) and y_high == pytest.approx(every_edge.max())
    if yscale == "symlog":  # linear only within the smallest threshold the bins used
        smallest_top = min(np.abs(edges).max() for edges, _ in logged[key])
        assert ax.yaxis.get_transform().linthresh <= 1e-6 * smallest_top
    fig.canvas.draw()
    assert any(t.get_text() for t in ax.get_yticklabels())
    assert any(t.get_text() for t in ax.get_xticklabels())


def test_a_key_never_logged_leaves_a_labelled_empty_panel(rng) -> None:
    rows, _ = _logged_rows(rng)
    fig = new_figure(5.0, 4.0)
    ax = fig.add_subplot()
    histogram_panel(ax, rows, "densities/H_p")
    assert not ax.collections
    assert [t.get_text() for t in ax.texts] == ["not logged"]


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_a_top_k_histogram_within_a_decade_has_labelled_ticks(sign, rng) -> None:
    """The iterative method logs only the top-k (one sign, within a decade or so): its symlog
    panel still labels several ticks, not one or none."""
    rows = []
    for step in STEPS:
        top = sign * rng.uniform(2.0, 30.0, 15)
        counts, edges = spectrum_histogram(top, symlog_edges(top))
        rows.append({STEP: step, "densities/H_f": {"bins": edges.tolist(), "values": counts}})
    fig = new_figure(5.0, 4.0)
    ax = fig.add_subplot()
    histogram_panel(ax, rows, "densities/H_f")
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    low, high = ax.get_ylim()
    shown = [t for t in ax.get_yticks() if low <= t <= high]
    assert len(shown) >= 3 and len(labels) >= 3, labels
