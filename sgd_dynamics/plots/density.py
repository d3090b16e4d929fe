"""Figure 1 for runs at any scale: spectral densities of H_f, M and H_p at a few training steps,
and the distance of H_p from -H_f over training."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from sgd_dynamics.curvature.density.measures import SpectralMeasure, smoothed_density
from sgd_dynamics.plots.common import new_figure, set_step_axis
from sgd_dynamics.plots.spectra import snapshot_rows
from sgd_dynamics.run_folder.snapshots import RunHistory

PANELS = (
    ("hf", r"$H_f$ (loss Hessian)"),
    ("mt", r"$M$ (gradient second moment)"),
    ("hp", r"$H_p = M - H_f$ (residual)"),
)
DENSITY_DECADES = 8  # the density axis shows this many decades below the largest value shown


def _rows_for(history: RunHistory, steps: Sequence[int] | None, n_steps: int) -> list[int]:
    empty = (
        f"{history.run_dir}: no snapshot holds spectral densities (hf_density, mt_density, "
        "hp_density)"
    )
    return snapshot_rows(history, history.density_rows(), steps, n_steps, "densities", empty)


def _zero_atom(history: RunHistory, row: int) -> float | None:
    """The weight of M's atom at 0 (its P - rank zero eigenvalues), if stored."""
    if "mt_density_nodes" not in history:
        return None
    nodes = history["mt_density_nodes"][row]
    weights = history["mt_density_weights"][row]
    at_zero = np.isfinite(nodes) & (nodes == 0.0)
    return float(weights[at_zero].sum()) if at_zero.any() else None


def drawn_density(history: RunHistory, row: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(grid, density) that figure 1 draws for operator `name` (hf, mt, hp) at snapshot `row`.

    When the snapshot stores the measure's atoms (``X_density_nodes``/``X_density_weights``)
    and its smoothing (``density_linthresh`` τ, ``density_width`` σ) and every atom is >= 0 (M
    always, H_f or H_p when their estimate has no negative node), the density is smoothed anew
    from the atoms with the kernel reflected at 0 (`smoothed_density`): it is 0 below 0 and the
    grid starts at 0, whatever an older snapshot stored. Otherwise the stored smoothed density.
    """
    grid, density = history.density(row, name)
    keys = (f"{name}_density_nodes", f"{name}_density_weights", "density_linthresh")
    if not all(key in history for key in (*keys, "density_width")):
        return grid, density
    nodes = history[f"{name}_density_nodes"][row]
    weights = history[f"{name}_density_weights"][row]
    tau, width = history["density_linthresh"][row], history["density_width"][row]
    keep = np.isfinite(nodes) & np.isfinite(weights)
    nodes, weights = nodes[keep], weights[keep]
    if name == "mt":  # M is positive semi-definite: rounding-level negative atoms are zeros
        nodes = np.clip(nodes, 0.0, None)
    if not (nodes.size and np.all(nodes >= 0.0) and weights.sum() > 0 and tau > 0 and width > 0):
        return grid, density
    order = np.argsort(nodes, kind="stable")
    measure = SpectralMeasure(nodes[order], weights[order] / weights.sum())
    points = max(grid.size, 2)
    return smoothed_density(measure, float(tau), float(width), points=points, reflect=True)


def density_figure(
    history: RunHistory,
    steps: Sequence[int] | None = None,
    n_steps: int = 4,
    title: str | None = None,
) -> Figure:
    """Four panels: the smoothed spectral densities of H_f, M and H_p at the given ``steps``
    (default: ``n_steps`` snapshots spread by training progress, see ``choose_steps``), density
    on a log axis against the eigenvalue on a symlog axis (linear for |λ| below the smallest
    stored smoothing threshold τ, rounded up to a power of ten), -H_f's density mirrored
    (dashed) over H_p's, and W1(H_p, -H_f) / (λmax(H_f) - λmin(H_f)) at every snapshot that
    stores it.
    Raises ``ValueError`` when no snapshot holds densities or a requested step has none.
    """
    rows = _rows_for(history, steps, n_steps)
    shown_steps = history.steps[rows]
    thresholds = history["density_linthresh"][rows] if "density_linthresh" in history else []
    thresholds = np.asarray(thresholds, dtype=float)
    thresholds = thresholds[np.isfinite(thresholds) & (thresholds > 0)]
    smallest = float(thresholds.min()) if thresholds.size else 1e-3
    linthresh = float(10.0 ** np.ceil(np.log10(smallest)))  # a power of ten: no crowded ticks
    colors = colormaps["viridis"](np.linspace(0.0, 0.85, len(rows)))

    fig = new_figure(13.0, 8.0)
    grid = fig.subplots(2, 2)
    axes = [grid[0, 0], grid[0, 1], grid[1, 0]]
    top = 0.0
    for ax, (name, panel_title) in zip(axes, PANELS, strict=True):
        for color, row, step in zip(colors, rows, shown_steps, strict=True):
            x, density = drawn_density(history, row, name)
            label = f"step {step}"
            if "train_loss" in history and np.isfinite(history["train_loss"][row]):
                label += f" (train loss {history['train_loss'][row]:.2g})"
            if name == "mt":
                zero = _zero_atom(history, row)
                if zero is not None:
                    label += f", {zero:.0%} at 0"
            ax.plot(x, density, color=color, lw=1.5, label=label)
            top = max(top, float(np.nanmax(density)))
            if name == "hp":
                x_hf, d_hf = drawn_density(history, row, "hf")
                ax.plot(-x_hf[::-1], d_hf[::-1], color=color, lw=1.0, ls="--")
        ax.set_xscale("symlog", linthresh=linthresh, linscale=1.0)
        drawn_x = np.concatenate([np.asarray(line.get_xdata()) for line in ax.lines])
        if drawn_x.size and drawn_x.min() >= 0.0:  # support [0, ∞): the axis starts at 0
            ax.set_xlim(left=0.0)
        ax.set_yscale("log")
        ax.axvline(0.0, color="0.6", lw=0.6, zorder=0)
        ax.set_title(panel_title)
        ax.set_xlabel(rf"eigenvalue $\lambda$ (symlog: linear for $|\lambda| < {linthresh:.2g}$)")
        ax.set_ylabel(r"spectral density $\rho(\lambda)$")
        ax.grid(True, which="major", color="0.92", lw=0.6)
        ax.legend(title="snapshot", fontsize=7, title_fontsize=7, loc="upper right")
    for ax in axes:
        if top > 0:
            ax.set_ylim(top * 10.0**-DENSITY_DECADES, top * 3.0)
    axes[2].legend(
        handles=[
            Line2D([], [], color="0.3", lw=1.5, label=r"$H_p$"),
            Line2D([], [], color="0.3", lw=1.0, ls="--", label=r"$-H_f$ (same step)"),
        ],
        fontsize=8,
        loc="upper left",
    )
    _distance_panel(grid[1, 1], history)
    heading = "Spectral densities of $H_f$, $M$ and $H_p$ during training"
    fig.suptitle(f"{heading}\n{title}" if title else heading, fontsize=11)
    return fig


def _distance_panel(ax, history: RunHistory) -> None:
    ax.set_title(r"$H_p \to -H_f$: $W_1(\mu_{H_p}, \mu_{-H_f})$ / spread of $H_f$")
    if "hp_to_minus_hf_w1" in history:
        values = history["hp_to_minus_hf_w1"]
        keep = np.isfinite(values)
        ax.plot(history.steps[keep], values[keep], "o-", color="C3", lw=1.4, ms=3)
        set_step_axis(ax, history.steps[keep])
    else:
        ax.text(0.5, 0.5, "not stored", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("training step")
    ax.set_ylabel(r"$W_1 / (\lambda_{max} - \lambda_{min})(H_f)$")
    ax.set_ylim(bottom=0.0)
    ax.grid(True, color="0.92", lw=0.6)
