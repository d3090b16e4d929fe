"""Figure 1: the full spectra of H_f, M and H_p = M - H_f at a few training steps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from sgd_dynamics.plots.common import new_figure, symlog_linthresh
from sgd_dynamics.store import RunHistory

PANELS = (
    ("hf_all", r"$H_f$ (loss Hessian)"),
    ("mt_all", r"$M$ (gradient second moment)"),
    ("hp_all", r"$H_p = M - H_f$ (residual)"),
)


def choose_steps(
    available: Sequence[int], n: int = 4, train_loss: Sequence[float] | None = None
) -> list[int]:
    """``n`` snapshot steps among ``available`` (sorted), the first and the last included.

    With ``train_loss`` (one value per available step) decreasing overall from the first
    snapshot to the last, the steps in between mark training progress: for targets evenly
    spaced in log(loss) between its first and last values, the first snapshot whose loss has
    reached the target (early, middle, converged). Otherwise, targets evenly spaced in
    log(step + 1), each taking the nearest available step. Duplicates are dropped, so fewer
    than ``n`` may come back.
    """
    available = np.asarray(available, dtype=np.int64)
    if available.size == 0:
        raise ValueError("no step to choose from")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    order = np.argsort(available, kind="stable")
    available = available[order]
    if n == 1:
        return [int(available[-1])]
    if train_loss is not None:
        loss = np.asarray(train_loss, dtype=float)[order]
        if np.all(np.isfinite(loss)) and np.all(loss > 0) and loss[-1] < loss[0]:
            log_loss = np.log(loss)
            targets = np.linspace(log_loss[0], log_loss[-1], n)
            picked = {int(available[np.flatnonzero(log_loss <= t)[0]]) for t in targets[1:-1]}
            return sorted(picked | {int(available[0]), int(available[-1])})
    logs = np.log1p(available.astype(float))
    targets = np.linspace(logs[0], logs[-1], n)
    return sorted({int(available[np.argmin(np.abs(logs - t))]) for t in targets})


def full_spectra_figure(
    history: RunHistory,
    steps: Sequence[int] | None = None,
    n_steps: int = 4,
    linthresh: float | None = None,
    title: str | None = None,
) -> Figure:
    """Three panels (H_f, M, H_p): all P eigenvalues against their rank (1 = largest), at the
    given ``steps`` (default: ``n_steps`` snapshots from start to end spread by training progress,
    see ``choose_steps``).

    y is symlog with threshold ``linthresh`` (default: 1e-6 x the largest |eigenvalue| shown,
    rounded down to a power of ten), so both signs and many decades are readable. The H_p panel
    also draws -H_f (dashed, same colour) to show H_p -> -H_f once M has collapsed; the M panel
    marks rank n (the number of spectral samples, the largest possible rank of M).
    Raises ``ValueError`` when the run has no full spectra or a requested step has none.
    """
    rows_with_spectra = history.full_spectrum_rows()
    if rows_with_spectra.size == 0:
        raise ValueError(
            f"{history.run_dir}: no snapshot holds full spectra (hf_all, mt_all, hp_all); "
            "figure 1 needs the dense method"
        )
    available = history.steps[rows_with_spectra]
    if steps is None:
        loss = history["train_loss"][rows_with_spectra] if "train_loss" in history else None
        steps = choose_steps(available, n_steps, train_loss=loss)
    else:
        steps = sorted({int(s) for s in steps})
        missing = [s for s in steps if s not in set(available.tolist())]
        if missing or not steps:
            raise ValueError(
                f"no full spectra stored at steps {missing}; steps with full spectra: "
                f"{available.tolist()}"
            )
    rows = [int(np.flatnonzero(history.steps == s)[0]) for s in steps]

    shown = np.concatenate([history[key][rows].ravel() for key, _ in PANELS])
    if linthresh is None:
        linthresh = symlog_linthresh(shown)
    colors = colormaps["viridis"](np.linspace(0.0, 0.85, len(rows)))

    fig = new_figure(13.0, 4.2)
    axes = fig.subplots(1, 3, sharey=True)
    for ax, (key, panel_title) in zip(axes, PANELS, strict=True):
        for color, row, step in zip(colors, rows, steps, strict=True):
            values = history[key][row]
            values = np.sort(values[np.isfinite(values)])[::-1]
            ranks = np.arange(1, values.size + 1)
            label = f"step {step}"
            if "train_loss" in history and np.isfinite(history["train_loss"][row]):
                label += f" (train loss {history['train_loss'][row]:.2g})"
            ax.plot(ranks, values, color=color, lw=1.6, label=label)
            if key == "hp_all":
                neg_hf = np.sort(-history["hf_all"][row][np.isfinite(history["hf_all"][row])])
                ax.plot(ranks[: neg_hf.size], neg_hf[::-1], color=color, lw=1.0, ls="--")
        ax.set_yscale("symlog", linthresh=linthresh, linscale=0.5)
        ax.axhline(0.0, color="0.6", lw=0.6, zorder=0)
        ax.set_title(panel_title)
        ax.set_xlabel("rank i (1 = largest eigenvalue)")
        ax.set_xlim(1, max(ax.get_xlim()[1], 2))
        ax.grid(True, which="major", color="0.92", lw=0.6)
        if key == "mt_all" and "n_samples" in history:
            n_samples = history["n_samples"][rows]
            if np.isfinite(n_samples).any():
                n = int(np.nanmax(n_samples))
                ax.axvline(n, color="0.4", lw=0.8, ls=":")
                ax.annotate(
                    f"rank n = {n}",
                    xy=(n, 0.97),
                    xycoords=("data", "axes fraction"),
                    xytext=(4, 0),
                    textcoords="offset points",
                    va="top",
                    fontsize=8,
                    color="0.3",
                )
    exponent = int(np.floor(np.log10(linthresh)))
    threshold = rf"10^{{{exponent}}}" if linthresh == 10.0**exponent else f"{linthresh:.1e}"
    axes[0].set_ylabel(rf"eigenvalue $\lambda_i$ (symlog: linear for $|\lambda| < {threshold}$)")
    axes[0].legend(title="snapshot", fontsize=8, title_fontsize=8, loc="upper right")
    axes[2].legend(
        handles=[
            Line2D([], [], color="0.3", lw=1.6, label=r"$H_p$"),
            Line2D([], [], color="0.3", lw=1.0, ls="--", label=r"$-H_f$ (same step)"),
        ],
        fontsize=8,
        loc="upper right",
    )
    heading = "Full spectra of $H_f$, $M$ and $H_p$ during training"
    fig.suptitle(f"{heading}\n{title}" if title else heading, fontsize=11)
    return fig
