"""Figure 1: the full spectra of H_f, M and H_p = M - H_f at a few training steps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from sgd_dynamics.plots.common import new_figure, set_log_axis, symlog_linthresh
from sgd_dynamics.run_folder.snapshots import RunHistory

PANELS = (
    ("hf_all", r"$H_f$ (loss Hessian)"),
    ("mt_all", r"$M$ (gradient second moment)"),
    ("hp_all", r"$H_p = M - H_f$ (residual)"),
)
M_ZERO_REL = 1e-10  # eigenvalues of M below this times its largest are zeros up to rounding


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


def snapshot_rows(
    history: RunHistory,
    candidates: np.ndarray,
    steps: Sequence[int] | None,
    n_steps: int,
    what: str,
    empty: str,
) -> list[int]:
    """Rows of `history` to draw among `candidates` (rows that hold `what`): those at `steps`,
    or `n_steps` of them chosen by `choose_steps`. ``ValueError(empty)`` when there are no
    candidates, and one naming the steps that hold `what` when a requested step does not."""
    if candidates.size == 0:
        raise ValueError(empty)
    available = history.steps[candidates]
    if steps is None:
        loss = history["train_loss"][candidates] if "train_loss" in history else None
        steps = choose_steps(available, n_steps, train_loss=loss)
    else:
        steps = sorted({int(s) for s in steps})
        missing = [s for s in steps if s not in set(available.tolist())]
        if missing or not steps:
            raise ValueError(
                f"no {what} stored at steps {missing}; steps with {what}: {available.tolist()}"
            )
    return [int(np.flatnonzero(history.steps == s)[0]) for s in steps]


def full_spectra_figure(
    history: RunHistory,
    steps: Sequence[int] | None = None,
    n_steps: int = 4,
    linthresh: float | None = None,
    title: str | None = None,
) -> Figure:
    """Three panels (H_f, M, H_p): the eigenvalues against their rank (1 = largest), at the
    given ``steps`` (default: ``n_steps`` snapshots from start to end spread by training progress,
    see ``choose_steps``).

    - H_f and H_p (shared y): all P eigenvalues on a symlog axis with threshold ``linthresh``
      (default: 1e-6 x the largest |eigenvalue| of H_f and H_p shown, rounded down to a power
      of ten), so both signs and many decades are readable; the H_p panel also draws -H_f
      (dashed, same colour) to show H_p -> -H_f once M has collapsed.
    - M: its nonzero part, the eigenvalues above 1e-10 x the step's largest (M has rank <= n,
      the number of spectral samples; the other P - n are zero up to rounding), on a log axis
      over ranks 1 to a little beyond n, with rank n marked (dotted).

    The legend (steps, line styles, the rank line) sits below the panels, off the data.
    Raises ``ValueError`` when the run has no full spectra or a requested step has none.
    """
    rows = snapshot_rows(
        history,
        history.full_spectrum_rows(),
        steps,
        n_steps,
        what="full spectra",
        empty=f"{history.run_dir}: no snapshot holds full spectra (hf_all, mt_all, hp_all); "
        "figure 1 needs the dense method",
    )
    steps = [int(history.steps[r]) for r in rows]

    shown = np.concatenate([history[key][rows].ravel() for key in ("hf_all", "hp_all")])
    if linthresh is None:
        linthresh = symlog_linthresh(shown)
    colors = colormaps["viridis"](np.linspace(0.0, 0.85, len(rows)))

    fig = new_figure(13.0, 4.8)
    ax_hf, ax_mt, ax_hp = fig.subplots(1, 3)
    ax_hp.sharey(ax_hf)
    handles = _draw_spectra(history, rows, steps, colors, (ax_hf, ax_mt, ax_hp))
    _label_panels((ax_hf, ax_mt, ax_hp), linthresh)
    styles = [
        Line2D([], [], color="0.3", lw=1.6, label=r"$H_p$ (right panel)"),
        Line2D([], [], color="0.3", lw=1.0, ls="--", label=r"$-H_f$ at the same step"),
        *_scale_m_panel(ax_mt, history, rows),
    ]
    fig.legend(
        handles=[*handles, *styles],
        loc="outside lower center",
        ncol=min(4, len(handles)),
        fontsize=8,
        frameon=False,
    )
    heading = "Full spectra of $H_f$, $M$ and $H_p$ during training"
    fig.suptitle(f"{heading}\n{title}" if title else heading, fontsize=11)
    return fig


def _draw_spectra(
    history: RunHistory, rows: Sequence[int], steps: Sequence[int], colors, axes: tuple
) -> list:
    """Draw each row's H_f, M (its nonzero part) and H_p (with -H_f dashed) spectra against
    their rank; returns the H_f lines (one legend entry per step)."""
    ax_hf, ax_mt, ax_hp = axes
    handles = []
    for color, row, step in zip(colors, rows, steps, strict=True):
        label = f"step {step}"
        if "train_loss" in history and np.isfinite(history["train_loss"][row]):
            label += f" (train loss {history['train_loss'][row]:.2g})"
        hf = _descending(history["hf_all"][row])
        (line,) = ax_hf.plot(np.arange(1, hf.size + 1), hf, color=color, lw=1.6, label=label)
        handles.append(line)
        hp = _descending(history["hp_all"][row])
        ax_hp.plot(np.arange(1, hp.size + 1), hp, color=color, lw=1.6)
        ax_hp.plot(np.arange(1, hf.size + 1), -hf[::-1], color=color, lw=1.0, ls="--")
        mt = _descending(history["mt_all"][row])
        nonzero = mt[mt > M_ZERO_REL * mt[0]] if mt.size and mt[0] > 0 else mt[:0]
        ax_mt.plot(np.arange(1, nonzero.size + 1), nonzero, color=color, lw=1.6)
    return handles


def _label_panels(axes: tuple, linthresh: float) -> None:
    """Titles, x labels and grids; the symlog scale (threshold `linthresh`) of H_f and H_p."""
    ax_hf, _, ax_hp = axes
    for ax, (key, panel_title) in zip(axes, PANELS, strict=True):
        ax.set_title(panel_title)
        ax.set_xlabel("rank i (1 = largest eigenvalue)")
        ax.grid(True, which="major", color="0.92", lw=0.6)
        if key != "mt_all":
            ax.set_yscale("symlog", linthresh=linthresh, linscale=2.0)
            ax.axhline(0.0, color="0.6", lw=0.6, zorder=0)
            ax.set_xlim(1, max(ax.get_xlim()[1], 2))
    ax_hp.tick_params(labelleft=True)  # shared y, but its own tick labels
    exponent = int(np.floor(np.log10(linthresh)))
    threshold = rf"10^{{{exponent}}}" if linthresh == 10.0**exponent else f"{linthresh:.1e}"
    ax_hf.set_ylabel(rf"eigenvalue $\lambda_i$ (symlog: linear for $|\lambda| < {threshold}$)")


def _scale_m_panel(ax_mt, history: RunHistory, rows: Sequence[int]) -> list:
    """The M panel's log y axis and x range up to a little beyond the rank bound n (marked
    dotted when the snapshots store n); returns the rank line for the legend, if drawn."""
    mt_values = np.concatenate([line.get_ydata() for line in ax_mt.lines] or [np.zeros(0)])
    if mt_values.size:
        set_log_axis(ax_mt, mt_values)
    ax_mt.set_ylabel(r"nonzero eigenvalue $\lambda_i(M)$ (log scale)")
    n_samples = history["n_samples"][rows] if "n_samples" in history else np.zeros(0)
    n_max = max((line.get_xdata().size for line in ax_mt.lines), default=1)
    styles = []
    if np.isfinite(n_samples).any():
        n = int(np.nanmax(n_samples))
        styles.append(
            ax_mt.axvline(
                n,
                color="0.3",
                lw=1.0,
                ls=":",
                label=f"rank n = {n}: M has at most n nonzero eigenvalues, the other P - n are 0",
            )
        )
        n_max = max(n_max, n)
    ax_mt.set_xlim(0, max(2, int(np.ceil(1.15 * n_max))))
    return styles


def _descending(values: np.ndarray) -> np.ndarray:
    """The finite values of `values`, largest first."""
    values = np.asarray(values, dtype=float)
    return np.sort(values[np.isfinite(values)])[::-1]
