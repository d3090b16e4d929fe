"""Figures a reader can trust: densities of positive semi-definite matrices stay at λ >= 0, no
two texts of a figure overlap, every step axis is symlog, the report's test-accuracy figure
draws the medians of the jobs' summaries and its titles match the group sizes."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from matplotlib.text import Text
from snapshot_factory import dense_snapshot

from sgd_dynamics.curvature.density import exact_densities
from sgd_dynamics.curvature.density.measures import SpectralMeasure, smoothed_density
from sgd_dynamics.plots import (
    alignment_figure,
    density_figure,
    full_spectra_figure,
    training_figure,
)
from sgd_dynamics.report import report
from sgd_dynamics.report.figures import (
    accuracy_by_knob_figure,
    bands_figure,
    comparison_figure,
)
from sgd_dynamics.run_folder.files import write_json_atomic
from sgd_dynamics.run_folder.snapshots import load_run, save_snapshot

psd_spectra = st.lists(
    st.one_of(st.just(0.0), st.floats(1e-9, 1e3, allow_nan=False)), min_size=1, max_size=60
)


@settings(max_examples=60, deadline=None)
@given(eigenvalues=psd_spectra, tau_exp=st.integers(-8, 0), width=st.floats(0.05, 1.0))
def test_density_of_a_psd_spectrum_is_zero_below_zero_and_integrates_to_one(
    eigenvalues, tau_exp, width
) -> None:
    measure = SpectralMeasure.from_eigenvalues(np.array(eigenvalues))
    tau = 10.0**tau_exp
    grid, density = smoothed_density(measure, tau, width, points=4096)
    assert grid.min() >= 0.0 and np.all(density >= 0.0)
    # on any grid reaching below 0 the density there is exactly 0
    wide = np.concatenate([-np.logspace(3, -10, 50), grid])
    _, on_wide = smoothed_density(measure, tau, width, grid=wide)
    assert np.all(on_wide[:50] == 0.0)
    # the mass is kept: integrate in t = asinh(λ/τ), where the grid is uniform
    t = np.arcsinh(grid / tau)
    mass = np.trapezoid(density * np.hypot(grid, tau), t)
    assert mass == pytest.approx(1.0, abs=1e-3)


def test_density_figure_draws_m_at_or_above_zero_even_from_a_leaking_snapshot(
    tmp_path, rng
) -> None:
    """An older snapshot stored M's density smoothed without reflection (mass below 0); the
    figure smooths M anew from its atoms: nothing drawn below 0."""
    run = tmp_path / "run"
    for step in (0, 10, 100, 1000):
        snap = dense_snapshot(step, rng)
        snap.update(exact_densities(snap["hf_all"], snap["mt_all"], snap["hp_all"]).to_arrays())
        measure = SpectralMeasure(snap["mt_density_nodes"], snap["mt_density_weights"])
        tau, width = float(snap["density_linthresh"]), float(snap["density_width"])
        grid, leaking = smoothed_density(measure, tau, width, reflect=False)
        assert grid.min() < 0 and leaking[grid < 0].max() > 0  # the old, leaking estimate
        snap["mt_density_grid"], snap["mt_density"] = grid, leaking
        save_snapshot(run, snap)
    fig = density_figure(load_run(run))
    ax_mt = fig.axes[1]
    drawn = [line for line in ax_mt.lines if np.asarray(line.get_xdata()).size > 2]
    assert len(drawn) == 4
    for line in drawn:
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        assert x.min() >= 0.0 and np.all(y[x < 0] == 0)


def _texts(fig: Figure) -> list[Text]:
    """The texts a reader sees: figure texts, titles, axis labels, tick labels in view,
    legend entries and titles."""
    fig.canvas.draw()
    texts: list[Text] = list(fig.texts)
    if fig._suptitle is not None:
        texts.append(fig._suptitle)
    legends = list(fig.legends)
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]
        for axis in (ax.xaxis, ax.yaxis):  # the ticks matplotlib draws: those in view
            texts += [
                label for tick in axis._update_ticks() for label in (tick.label1, tick.label2)
            ]
        texts += list(ax.texts)
        if ax.get_legend() is not None:
            legends.append(ax.get_legend())
    for legend in legends:
        texts += [*legend.get_texts(), legend.get_title()]
    unique = {id(t): t for t in texts}.values()
    return [t for t in unique if t.get_visible() and t.get_text().strip()]


def assert_no_text_overlaps(fig: Figure) -> None:
    """No two visible texts of `fig` overlap, and each lies whole inside the figure."""
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer).padded(-0.5)) for t in _texts(fig)]
    canvas = fig.bbox.padded(0.5)
    cut = [
        text
        for text, box in boxes
        if not (canvas.contains(box.x0, box.y0) and canvas.contains(box.x1, box.y1))
    ]
    assert not cut, f"text cut at the figure's edge: {cut}"
    overlaps = [
        (a, b)
        for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2)
        if box_a.overlaps(box_b)
    ]
    assert not overlaps, overlaps


def _step_axes(fig: Figure) -> list:
    return [ax for ax in fig.axes if "training step" in ax.get_xlabel()]


def _density_run(tmp_path: Path, rng) -> Path:
    run = tmp_path / "density_run"
    for step in (0, 3, 30, 300, 3000):
        snap = dense_snapshot(step, rng)
        snap.update(exact_densities(snap["hf_all"], snap["mt_all"], snap["hp_all"]).to_arrays())
        save_snapshot(run, snap)
    return run


def test_run_figures_have_no_overlapping_text_and_symlog_step_axes(dense_run, tmp_path, rng):
    history = load_run(dense_run)
    title = "gauss10, batch size 5, depth 1, label noise 0, seed 3"
    summary = {"test_loss": 0.9, "test_acc": 0.77}
    figures = {
        "full_spectra": full_spectra_figure(history, title=title),
        "alignment": alignment_figure(history, title=title),
        "training": training_figure(history, summary=summary, title=title),
        "densities": density_figure(load_run(_density_run(tmp_path, rng)), title=title),
    }
    for name, fig in figures.items():
        assert_no_text_overlaps(fig)
        for ax in _step_axes(fig):
            assert ax.get_xscale() == "symlog", name
    assert len(_step_axes(figures["alignment"])) == 3
    assert len(_step_axes(figures["training"])) == 3
    assert len(_step_axes(figures["densities"])) == 1  # the W1 panel
    ax_hf, _, ax_hp = figures["full_spectra"].axes[:3]
    assert [t.get_text() for t in ax_hp.get_yticklabels()] == [
        t.get_text() for t in ax_hf.get_yticklabels()
    ]  # H_p's panel labels its own ticks


def _sweep(tmp_path: Path, seeds: int) -> Path:
    """batch_size in {5, 25} x lr in {0.1, 0.2} x `seeds` seeds; test_acc known per job."""
    rng = np.random.default_rng(5)
    sweep = tmp_path / f"sweep{seeds}"
    j = 0
    for batch, lr, seed in itertools.product((5, 25), (0.1, 0.2), range(seeds)):
        job = sweep / str(j)
        (job / ".hydra").mkdir(parents=True)
        overrides = [f"batch_size={batch}", f"optimizer.lr={lr}", f"seed={seed}"]
        (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
        (job / ".hydra" / "config.yaml").write_text(
            f"batch_size: {batch}\nseed: {seed}\ndataset:\n  name: gauss10\n"
        )
        write_json_atomic(job / "status.json", {"status": "completed"})
        for step in (0, 3, 30, 300):
            save_snapshot(job, dense_snapshot(step, rng))
        acc = 0.5 + 0.1 * (batch == 5) + lr + 0.01 * seed
        summary = {"train_loss": 0.1, "train_acc": 1.0, "test_loss": 0.5, "test_acc": acc}
        write_json_atomic(job / "summary.json", summary)
        j += 1
    return sweep


def test_report_figures_accuracy_medians_titles_and_text(tmp_path) -> None:
    result = report(_sweep(tmp_path, seeds=3), quantiles=(0.1, 0.5, 0.9))
    assert set(result.knobs) == {"batch_size", "optimizer.lr"}
    args = (result.groups, result.knobs, result.levels)
    fig = accuracy_by_knob_figure(*args, result.title)
    assert_no_text_overlaps(fig)
    ax = fig.axes[result.knobs.index("batch_size")]
    medians = sorted(
        float(y)
        for container in ax.containers
        for y in np.asarray(container.lines[0].get_ydata()).ravel()
    )
    expected = sorted(
        float(np.median([0.5 + 0.1 * (b == 5) + lr + 0.01 * s for s in range(3)]))
        for b in (5, 25)
        for lr in (0.1, 0.2)
    )
    assert medians == pytest.approx(expected)
    bands = bands_figure(result.groups, result.levels, result.quantities, result.title)
    comparison = comparison_figure(*args, result.quantities, result.title)
    for fig in (bands, comparison):
        assert_no_text_overlaps(fig)
        assert all(ax.get_xscale() == "symlog" for ax in _step_axes(fig))
    assert "across seeds" in bands._suptitle.get_text()

    single = report(_sweep(tmp_path, seeds=1))
    single_bands = bands_figure(single.groups, single.levels, single.quantities, single.title)
    assert "across seeds" not in single_bands._suptitle.get_text()
    single_acc = accuracy_by_knob_figure(single.groups, single.knobs, single.levels, single.title)
    assert "across the seeds" not in single_acc._suptitle.get_text()
