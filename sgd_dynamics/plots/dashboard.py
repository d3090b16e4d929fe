"""A picture of the wandb workspace of a run, drawn from its offline records (no server).

``python -m sgd_dynamics.plots.dashboard RUN_DIR OUT.png`` reads ``RUN_DIR/wandb/offline-run-*``
(`sgd_dynamics.wandb_io.offline`) and draws the panels a user sees after ``wandb sync``, section by
section: the ``densities/*`` histograms over the training step (shade: number of eigenvalues per
bin), the ``spectra/*`` and ``alignment/*`` line charts (one series per index) and scalars, and the
``figures/*`` media panel at its last step.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.image import imread

from sgd_dynamics.plots.common import new_figure, save_figure
from sgd_dynamics.utils.safe_files import FileRefused, read_json_file
from sgd_dynamics.wandb_io.offline import history_rows, run_file

STEP = "trainer/global_step"
HISTOGRAMS = ("densities/H_f", "densities/H_p", "densities/neg_H_f", "densities/M_nonzero")
CHARTS = ("spectra/hf_top", "spectra/mt_top", "alignment/cosines")
SCALARS = ("alignment/n_cos10_above_0.9", "spectra/hp_min")


def _histogram_panel(ax, rows: list[dict], key: str) -> None:
    """wandb's histogram panel: x the step, y the value, shade the count in each bin."""
    logged = [(r[STEP], r[key]) for r in rows if key in r]
    if not logged:
        ax.set_axis_off()
        return
    lows = min(h["bins"][0] for _, h in logged)
    highs = max(h["bins"][-1] for _, h in logged)
    grid = np.linspace(lows, highs, 129)
    image = np.zeros((grid.size - 1, len(logged)))
    for j, (_, hist) in enumerate(logged):
        # counts spread evenly within each logged bin, re-binned on the common grid
        cumulative = np.concatenate([[0.0], np.cumsum(hist["values"])])
        image[:, j] = np.diff(np.interp(grid, hist["bins"], cumulative))
    image = np.ma.masked_less(image, 1e-3)
    ax.pcolormesh(
        np.arange(len(logged) + 1) - 0.5,
        grid,
        image,
        cmap="viridis",
        norm=LogNorm(),
        shading="flat",
    )
    ticks = np.unique(np.linspace(0, len(logged) - 1, 4).round().astype(int))
    ax.set_xticks(ticks, [str(logged[t][0]) for t in ticks])
    ax.set_xlabel("trainer/global_step (snapshots)")
    ax.set_title(key, fontsize=9)


def _chart_panel(ax, files: Path, rows: list[dict], key: str) -> None:
    """The latest logged line-series table of `key`: one line per series."""
    logged = [r[f"{key}_table"] for r in rows if f"{key}_table" in r]
    if not logged:
        ax.set_axis_off()
        return
    table_file = (files / str(logged[-1]["path"])).resolve()
    if not table_file.is_relative_to(files.resolve()):
        raise FileRefused(f"{table_file}: a logged table outside the run's wandb files; refused")
    table = read_json_file(table_file, "a logged wandb table")
    series: dict[str, list[tuple[float, float]]] = {}
    for step, name, value in table["data"]:
        series.setdefault(name, []).append((step, value))
    colors = np.linspace(0.0, 0.9, len(series))
    for color, points in zip(colors, series.values(), strict=True):
        steps, values = np.asarray(points, dtype=float).T
        ax.plot(steps + 1, values, color=(color, 0.3, 1 - color), lw=1.0)
    ax.set_xscale("log")
    if key != "alignment/cosines":
        ax.set_yscale("log")
    ax.set_xlabel("step + 1")
    ax.set_title(f"{key} ({len(series)} series)", fontsize=9)


def _scalar_panel(ax, rows: list[dict], key: str) -> None:
    points = np.asarray([(r[STEP], r[key]) for r in rows if key in r], dtype=float)
    if points.size:
        ax.plot(points[:, 0] + 1, points[:, 1], color="tab:blue", lw=1.2, marker="o", ms=2)
        ax.set_xscale("log")
    ax.set_xlabel("step + 1")
    ax.set_title(key, fontsize=9)


def dashboard_figure(run_dir: str | os.PathLike) -> Figure:
    """Three rows of panels as the wandb workspace groups them: ``densities`` (histograms over
    the steps), ``spectra`` and ``alignment`` (line charts, scalars), ``figures`` (media)."""
    path = run_file(run_dir)
    rows = history_rows(path)
    files = path.parent / "files"
    fig = new_figure(15.0, 9.5)
    grid = fig.add_gridspec(3, 4)
    for col, key in enumerate(HISTOGRAMS):
        _histogram_panel(fig.add_subplot(grid[0, col]), rows, key)
    for col, key in enumerate(CHARTS):
        _chart_panel(fig.add_subplot(grid[1, col]), files, rows, key)
    _scalar_panel(fig.add_subplot(grid[1, 3]), rows, SCALARS[0])
    _scalar_panel(fig.add_subplot(grid[2, 0]), rows, SCALARS[1])
    media = fig.add_subplot(grid[2, 1:])
    images = [(r[STEP], r["figures/alignment"]) for r in rows if "figures/alignment" in r]
    media.set_axis_off()
    if images:
        step, image = images[-1]
        media.imshow(imread(files / image["path"]))
        media.set_title(
            f"figures/alignment (media panel, step slider at {step} of {len(images)} drawings)",
            fontsize=9,
        )
    fig.suptitle(
        "The wandb workspace of a run after `wandb sync` (drawn from its offline records): "
        "densities/ histograms, spectra/ and alignment/ lines, figures/ media",
        fontsize=11,
    )
    return fig


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: python -m sgd_dynamics.plots.dashboard RUN_DIR OUT.png", file=sys.stderr)
        sys.exit(2)
    print(save_figure(dashboard_figure(sys.argv[1]), sys.argv[2]))
