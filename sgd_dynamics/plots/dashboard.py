"""A picture of the wandb workspace of a run, drawn from its offline records (no server).

``python -m sgd_dynamics.plots.dashboard RUN_DIR OUT.png [DPI]`` reads
``RUN_DIR/wandb/offline-run-*`` (`sgd_dynamics.wandb_io.offline`) and draws the panels a user
sees after ``wandb sync``, one block per workspace section (the key prefixes of docs/wandb.md):
``train/`` (loss and accuracy, test points at the evaluations), ``alignment/`` (the cosines'
line chart, the aligned count), ``spectra/`` (the top-k line charts, H_p's extremes, the
traces), ``densities/`` (the histograms over the training step, each snapshot drawn on the very
bins it was logged with: symlog bins on a symlog eigenvalue axis for H_f, H_p and -H_f, log
bins on a log axis for M's nonzero eigenvalues; shade: number of eigenvalues per bin) and
``figures/`` (the media panel at its last step). Every step axis is symlog, as in the run's figures.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, SymmetricalLogLocator

from sgd_dynamics.plots.common import (
    DPI,
    new_figure,
    save_figure,
    set_log_axis,
    set_step_axis,
    symlog_linthresh,
)
from sgd_dynamics.utils.safe_files import FileRefused, read_json_file
from sgd_dynamics.wandb_io.histogram_bins import LINEAR_DECADES
from sgd_dynamics.wandb_io.offline import history_rows, run_files

STEP = "trainer/global_step"
HISTOGRAMS = ("densities/H_f", "densities/H_p", "densities/neg_H_f", "densities/M_nonzero")
LOG_BINNED = ("densities/M_nonzero",)  # logged on log bins (positive values), the rest symlog
TRAIN = (("train/loss", "train/test_loss"), ("train/acc", "train/test_acc"))
SPECTRA_CHARTS = ("spectra/hf_top", "spectra/mt_top")
ALIGNMENT_CHART = "alignment/cosines"
ALIGNED = "alignment/n_cos10_above_0.9"
HP_EXTREMES = ("spectra/hp_max", "spectra/hp_min")
TRACES = ("spectra/trace_hf", "spectra/trace_mt")
MEDIA = (
    "figures/full_spectra",
    "figures/spectral_densities",
    "figures/alignment",
    "figures/training",
)


def _column_edges(steps: np.ndarray) -> np.ndarray:
    """Edges of one column per logged step on the symlog step axis: halfway between
    neighbouring steps in log(1 + step), the outer ones half a gap beyond, none below 0."""
    u = np.log1p(np.asarray(steps, dtype=float))
    if u.size == 1:
        return np.expm1(np.array([max(u[0] - 0.5, 0.0), u[0] + 0.5]))
    inner = 0.5 * (u[1:] + u[:-1])
    edges = np.concatenate([[u[0] - (inner[0] - u[0])], inner, [u[-1] + (u[-1] - inner[-1])]])
    return np.expm1(np.clip(edges, 0.0, None))


def histogram_panel(ax, rows: list[dict], key: str) -> None:
    """wandb's histogram panel: x the step (symlog), y the eigenvalue, shade the count in each
    bin. Each snapshot's column is drawn on the bins it was logged with (nothing re-binned):
    symlog y for the symlog-binned spectra (linear within the smallest logged threshold t of 0),
    log y for the log-binned ``densities/M_nonzero``."""
    logged = [(r[STEP], r[key]) for r in rows if key in r and STEP in r]
    ax.set_title(key, fontsize=9)
    if not logged:
        ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        return
    steps = np.array([step for step, _ in logged], dtype=float)
    columns = _column_edges(steps)
    counts = [np.asarray(h["values"], dtype=float) for _, h in logged]
    positive = np.concatenate([c[c > 0] for c in counts] or [np.ones(1)])
    norm = LogNorm(vmin=max(positive.min(), 1.0), vmax=max(positive.max(), 1.0))
    mesh = None
    all_edges = []
    for j, ((_, hist), count) in enumerate(zip(logged, counts, strict=True)):
        edges = np.asarray(hist["bins"], dtype=float)
        all_edges.append(edges)
        mesh = ax.pcolormesh(
            columns[j : j + 2],
            edges,
            np.ma.masked_less_equal(count, 0.0)[:, None],
            cmap="viridis",
            norm=norm,
            shading="flat",
        )
    values = np.concatenate(all_edges)
    if key in LOG_BINNED:
        set_log_axis(ax, values)
        ax.set_ylabel("eigenvalue (log scale)")
    else:
        # the smallest threshold t any snapshot's bins used (6 decades below its largest |x|)
        linthresh = min(symlog_linthresh(e, rel=10.0**-LINEAR_DECADES) for e in all_edges)
        ax.set_yscale("symlog", linthresh=linthresh)
        magnitudes = np.abs(values[values != 0.0])
        if magnitudes.size and magnitudes.max() < 100.0 * magnitudes.min():
            # within two decades (the top-k alone, one sign): 1, 2 and 5 x the powers of ten,
            # else the panel would have one labelled tick or none
            ax.yaxis.set_major_locator(
                SymmetricalLogLocator(linthresh=linthresh, base=10.0, subs=(1.0, 2.0, 5.0))
            )
            ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.set_ylabel("eigenvalue (symlog scale)")
    ax.set_ylim(values.min(), values.max())
    set_step_axis(ax, steps)
    ax.set_xlim(columns[0], columns[-1])
    if mesh is not None:
        bar = ax.figure.colorbar(mesh, ax=ax, pad=0.01, fraction=0.05)
        bar.set_label("eigenvalues per bin", fontsize=7)
        bar.ax.yaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        bar.ax.yaxis.set_minor_formatter(NullFormatter())
        bar.ax.tick_params(labelsize=7)


def _chart_panel(ax, rows: list[dict], key: str) -> None:
    """The latest logged line-series table of `key`: one line per series."""
    ax.set_title(key, fontsize=9)
    logged = [r[f"{key}_table"] for r in rows if f"{key}_table" in r]
    if not logged:
        ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        return
    table = read_json_file(Path(logged[-1]["path"]), "a logged wandb table")
    series: dict[str, list[tuple[float, float]]] = {}
    for step, name, value in table["data"]:
        series.setdefault(name, []).append((step, value))
    colors = np.linspace(0.0, 0.9, len(series))
    every = []
    for color, points in zip(colors, series.values(), strict=True):
        steps, values = np.asarray(points, dtype=float).T
        ax.plot(steps, values, color=(color, 0.3, 1 - color), lw=1.0)
        every.append(np.column_stack([steps, values]))
    stacked = np.concatenate(every)
    if key != ALIGNMENT_CHART and np.any(stacked[:, 1] > 0):
        set_log_axis(ax, stacked[:, 1])
    set_step_axis(ax, stacked[:, 0])
    ax.set_title(f"{key} ({len(series)} series)", fontsize=9)


def _scalar_panel(ax, rows: list[dict], keys: tuple[str, ...], yscale: str = "linear") -> None:
    """One line per scalar key against the step (symlog); a key logged at few steps (the test
    evaluations) gets markers; the title names the keys drawn."""
    drawn, shown = [], []
    for i, key in enumerate(keys):
        points = np.asarray([(r[STEP], r[key]) for r in rows if key in r], dtype=float)
        if not points.size:
            continue
        points = points[np.argsort(points[:, 0], kind="stable")]  # segments: restored records
        marker = "o" if len(points) <= 60 else None
        ax.plot(points[:, 0], points[:, 1], color=f"C{i}", lw=1.0, marker=marker, ms=2, label=key)
        drawn.append(points)
        shown.append(key)
    ax.set_title(", ".join(shown or keys), fontsize=9)
    if not drawn:
        ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        return
    stacked = np.concatenate(drawn)
    if yscale == "log" and np.any(stacked[:, 1] > 0):
        set_log_axis(ax, stacked[:, 1])
    elif yscale == "symlog":
        ax.set_yscale("symlog", linthresh=symlog_linthresh(stacked[:, 1], rel=1e-3))
        ax.axhline(0.0, color="0.6", lw=0.6, zorder=0)
    set_step_axis(ax, stacked[:, 0])
    if len(drawn) > 1:
        ax.legend(fontsize=7, loc="best")


def run_rows(run_dir: str | os.PathLike) -> list[dict]:
    """The history rows of every wandb segment of the run (a resumed run has several), in the
    order ``wandb sync`` uploads them; the ``path`` of a logged table or image is made the
    absolute path of its file under that segment's ``files/`` (refused if it leads outside)."""
    paths = run_files(run_dir)
    if not paths:
        raise FileNotFoundError(f"{run_dir}: no wandb run file under wandb/*run-*/")
    rows = []
    for path in paths:
        files = (path.parent / "files").resolve()
        for row in history_rows(path):
            for key, value in row.items():
                if isinstance(value, dict) and "path" in value:
                    target = (files / str(value["path"])).resolve()
                    if not target.is_relative_to(files):
                        raise FileRefused(
                            f"{target}: the file logged under {key} is outside the run's "
                            "wandb files; refused"
                        )
                    value["path"] = str(target)
            rows.append(row)
    return rows


def _section(subfig, name: str) -> None:
    subfig.suptitle(f"section {name}", fontsize=10, fontweight="bold", x=0.0, ha="left")


def dashboard_figure(run_dir: str | os.PathLike) -> Figure:
    """The wandb workspace of a run, one block per section: ``train`` and ``alignment``,
    ``spectra``, ``densities`` (histograms over the steps on their logged bins), ``figures``
    (the media panel at its last step)."""
    rows = run_rows(run_dir)
    fig = new_figure(17.0, 20.0)
    top, spectra, densities, media = fig.subfigures(4, 1, height_ratios=[1.0, 1.0, 1.1, 2.0])
    train, alignment = top.subfigures(1, 2, width_ratios=[1.0, 1.0])

    _section(train, "train/")
    ax_loss, ax_acc = train.subplots(1, 2)
    _scalar_panel(ax_loss, rows, TRAIN[0], yscale="log")
    _scalar_panel(ax_acc, rows, TRAIN[1])

    _section(alignment, "alignment/")
    ax_cos, ax_aligned = alignment.subplots(1, 2)
    _chart_panel(ax_cos, rows, ALIGNMENT_CHART)
    _scalar_panel(ax_aligned, rows, (ALIGNED,))

    _section(spectra, "spectra/")
    axes = spectra.subplots(1, 4)
    for ax, key in zip(axes[:2], SPECTRA_CHARTS, strict=True):
        _chart_panel(ax, rows, key)
    _scalar_panel(axes[2], rows, HP_EXTREMES, yscale="symlog")
    _scalar_panel(axes[3], rows, TRACES, yscale="log")

    _section(densities, "densities/")
    for ax, key in zip(densities.subplots(1, 4), HISTOGRAMS, strict=True):
        histogram_panel(ax, rows, key)

    _section(media, "figures/ (media panel, the step slider at its last position)")
    shown = [key for key in MEDIA if any(key in r for r in rows)]
    media_axes = np.atleast_1d(media.subplots(2, 2) if len(shown) > 2 else media.subplots(1, 2))
    for ax in media_axes.ravel():
        ax.set_axis_off()
        ax.set_xticks([])  # no tick (hidden ones too) reaches beyond the picture
        ax.set_yticks([])
    for ax, key in zip(media_axes.ravel(), shown, strict=False):
        images = [(r[STEP], r[key]) for r in rows if key in r]
        step, image = images[-1]
        ax.imshow(imread(image["path"]))
        ax.set_title(f"{key} at step {step:g} ({len(images)} drawings)", fontsize=9)
    fig.suptitle(
        "The wandb workspace of a run after `wandb sync`, drawn from its offline records",
        fontsize=12,
    )
    return fig


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or (len(sys.argv) == 4 and not sys.argv[3].isdigit()):
        print(
            "usage: python -m sgd_dynamics.plots.dashboard RUN_DIR OUT.png [DPI]", file=sys.stderr
        )
        sys.exit(2)
    dpi = int(sys.argv[3]) if len(sys.argv) == 4 else DPI
    print(save_figure(dashboard_figure(sys.argv[1]), sys.argv[2], dpi=dpi))
