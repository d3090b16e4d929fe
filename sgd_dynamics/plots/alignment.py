"""Figure 2: principal-angle cosines and top eigenvalues of H_f and M over training steps."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm
from matplotlib.figure import Figure

from sgd_dynamics.plots.common import new_figure, set_log_axis, set_step_axis, symlog_linthresh
from sgd_dynamics.run_folder.snapshots import RunHistory

INDEX_CMAP = "viridis"
ZERO_REL = 1e-8


def _top_k(history: RunHistory, key: str, k: int | None) -> np.ndarray:
    values = history[key]
    return values if k is None else values[:, :k]


def alignment_figure(history: RunHistory, k: int | None = None, title: str | None = None) -> Figure:
    """Three panels over the global step, one line per index i = 1..k (colour = i):

    - ``cos γ_i``, the cosines of the principal angles between the top-k eigenspaces of H_f
      and M (1 = aligned; a dotted line marks 0.9, the threshold of the aligned count
      ``n_cos10_above_0.9``, explained in the legend below the panels); NaN cosines, undefined
      beyond M's numerical rank (docs/math.md), are left out of the lines;
    - the top-k eigenvalues of H_f (log y; symlog when some are <= 0);
    - the top-k eigenvalues of M (log y); values below 1e-8 x the snapshot's largest are zeros
      up to rounding (M has rank <= n, k may exceed n) and are left out.

    ``k`` limits the indices drawn (default: all stored). The x axis is symlog when the steps
    span two decades or more (step 0 stays at the left edge).
    """
    steps = history.steps.astype(float)
    cos = _top_k(history, "cosines", k)
    hf = _top_k(history, "hf_top", k)
    mt = _top_k(history, "mt_top", k)
    n_index = max(cos.shape[1], hf.shape[1], mt.shape[1])
    cmap = colormaps[INDEX_CMAP]
    colors = cmap(np.linspace(0.0, 0.9, n_index)) if n_index > 1 else cmap([0.0])
    marker = "o" if len(steps) <= 40 else None

    fig = new_figure(13.5, 4.0)
    axes = fig.subplots(1, 3)
    ax_cos, ax_hf, ax_mt = axes
    for i in range(cos.shape[1]):
        ax_cos.plot(steps, cos[:, i], color=colors[i], lw=1.2, marker=marker, ms=2.0)
    threshold = ax_cos.axhline(0.9, color="0.3", lw=1.0, ls=":", zorder=0)
    threshold.set_label(r"dotted: $\cos\gamma_i = 0.9$, the threshold for an aligned direction")
    ax_cos.set_ylim(0.0, 1.02)
    ax_cos.set_ylabel(r"$\cos\gamma_i$")
    ax_cos.set_title(r"principal-angle cosines, top-$k$ of $H_f$ vs $M$", fontsize=10)

    for i in range(hf.shape[1]):
        ax_hf.plot(steps, hf[:, i], color=colors[i], lw=1.2, marker=marker, ms=2.0)
    finite_hf = hf[np.isfinite(hf)]
    if finite_hf.size and finite_hf.min() > 0:
        set_log_axis(ax_hf, finite_hf)
        ax_hf.set_ylabel(r"eigenvalue $\lambda_i(H_f)$ (log scale)")
    else:
        ax_hf.set_yscale("symlog", linthresh=symlog_linthresh(finite_hf, rel=1e-3))
        ax_hf.set_ylabel(r"eigenvalue $\lambda_i(H_f)$ (symlog scale)")
    ax_hf.set_title(r"top-$k$ eigenvalues of $H_f$", fontsize=10)

    # M has rank <= n: eigenvalues below ZERO_REL x its largest are rounding noise, not drawn
    mt_positive = np.where(mt > ZERO_REL * mt[:, :1], mt, np.nan)  # column 0: the largest
    for i in range(mt.shape[1]):
        ax_mt.plot(steps, mt_positive[:, i], color=colors[i], lw=1.2, marker=marker, ms=2.0)
    if np.isfinite(mt_positive).any():
        set_log_axis(ax_mt, mt_positive)
    ax_mt.set_ylabel(r"eigenvalue $\lambda_i(M)$ (log scale)")
    ax_mt.set_title(r"top-$k$ eigenvalues of $M$", fontsize=10)

    for ax in axes:
        set_step_axis(ax, steps)
        ax.grid(True, which="major", color="0.92", lw=0.6)

    norm = BoundaryNorm(np.arange(0.5, n_index + 1.5), n_index)
    mappable = ScalarMappable(norm=norm, cmap=_truncated(cmap, n_index))
    ticks = sorted({1, *range(5, n_index + 1, 5), n_index})
    bar = fig.colorbar(mappable, ax=axes, ticks=ticks, pad=0.01, fraction=0.02, aspect=30)
    bar.set_label("index i (1 = largest)")
    bar.ax.invert_yaxis()
    fig.legend(handles=[threshold], loc="outside lower center", fontsize=8, frameon=False)
    heading = rf"Alignment of the top-{n_index} eigenspaces of $H_f$ and $M$"
    fig.suptitle(f"{heading}\n{title}" if title else heading, fontsize=11)
    return fig


def _truncated(cmap, n: int):
    """The first 90 % of ``cmap`` in ``n`` discrete colours (matches the line colours)."""
    from matplotlib.colors import ListedColormap

    return ListedColormap(cmap(np.linspace(0.0, 0.9, n)) if n > 1 else cmap([0.0]))
