"""Spectral densities in the store and figure 1 drawn from them (synthetic run folders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from snapshot_factory import dense_snapshot

from sgd_dynamics import cli
from sgd_dynamics.curvature.density import exact_densities
from sgd_dynamics.plots import (
    ALIGNMENT_PNG,
    DENSITIES_PNG,
    TRAINING_PNG,
    density_figure,
    draw_run_figures,
)
from sgd_dynamics.run_folder.snapshots import load_run, save_snapshot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STEPS = (0, 3, 30, 300)


def density_snapshot(step: int, rng: np.random.Generator) -> dict:
    """An iterative-method snapshot (no full spectra) with the densities of its matrices."""
    snap = dense_snapshot(step, rng)
    densities = exact_densities(snap.pop("hf_all"), snap.pop("mt_all"), snap.pop("hp_all"))
    snap.update(densities.to_arrays())
    return snap


@pytest.fixture
def density_run(tmp_path: Path, rng: np.random.Generator) -> Path:
    run = tmp_path / "run"
    for step in STEPS:
        save_snapshot(run, density_snapshot(step, rng))
    return run


def test_density_keys_round_trip_and_old_snapshots_still_load(tmp_path, rng) -> None:
    run = tmp_path / "run"
    plain = dense_snapshot(0, rng)
    for key in ("hf_all", "mt_all", "hp_all"):
        del plain[key]
    save_snapshot(run, plain)  # an old snapshot: no density keys
    stored = density_snapshot(10, rng)
    save_snapshot(run, stored)
    history = load_run(run)
    assert history.has_densities and history.density_rows().tolist() == [1]
    grid, density = history.density(1, "hp")
    assert np.array_equal(grid, stored["hp_density_grid"])
    assert np.array_equal(density, stored["hp_density"])
    assert np.isnan(history["hp_to_minus_hf_w1"][0])
    assert history["hp_to_minus_hf_w1"][1] == pytest.approx(float(stored["hp_to_minus_hf_w1"]))
    nodes = history["mt_density_nodes"][1]
    weights = history["mt_density_weights"][1]
    assert np.nansum(weights) == pytest.approx(1.0)
    assert np.all(np.diff(nodes[np.isfinite(nodes)]) >= 0)


def test_unsorted_density_nodes_are_refused(tmp_path, rng) -> None:
    snap = density_snapshot(0, rng)
    snap["hf_density_nodes"] = snap["hf_density_nodes"][::-1].copy()
    with pytest.raises(ValueError, match="hf_density_nodes"):
        save_snapshot(tmp_path, snap)


def test_density_figure_panels(density_run) -> None:
    history = load_run(density_run)
    fig = density_figure(history, steps=[0, 300])
    ax_hf, ax_m, ax_hp, ax_w1 = fig.axes
    assert ax_hf.get_xscale() == "symlog" and ax_hf.get_yscale() == "log"
    assert len(ax_hf.lines) == 2 + 1  # two steps and the axis line at 0
    hp_lines = [line for line in ax_hp.lines if line.get_linestyle() in ("-", "--")]
    dashed = [line for line in hp_lines if line.get_linestyle() == "--"]
    assert len(dashed) == 2
    # the dashed curve is -H_f's density: H_f's stored grid mirrored
    x_hf, d_hf = history.density(int(np.flatnonzero(history.steps == 300)[0]), "hf")
    assert np.allclose(dashed[1].get_xdata(), -x_hf[::-1])
    assert np.allclose(dashed[1].get_ydata(), d_hf[::-1])
    # W1 over training: every snapshot
    (w1_line,) = ax_w1.lines
    assert np.array_equal(w1_line.get_xdata(), np.array(STEPS))
    assert np.allclose(w1_line.get_ydata(), history["hp_to_minus_hf_w1"])
    with pytest.raises(ValueError, match="no densities stored at steps"):
        density_figure(history, steps=[7])


def test_plot_command_draws_the_density_figure(density_run, capsys) -> None:
    assert cli.main(["plot", str(density_run)]) == 0
    printed = capsys.readouterr().out.split()
    assert [Path(p).name for p in printed] == [DENSITIES_PNG, ALIGNMENT_PNG, TRAINING_PNG]
    png = density_run / "figures" / DENSITIES_PNG
    assert png.read_bytes()[:8] == PNG_SIGNATURE and png.stat().st_size > 10_000
    paths = draw_run_figures(density_run, steps=[3, 30], out_dir=density_run / "other")
    assert [p.name for p in paths] == [DENSITIES_PNG, ALIGNMENT_PNG, TRAINING_PNG]
