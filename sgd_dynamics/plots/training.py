"""Figure 3: training beside the spectra: loss, accuracy and H_p's extremes over the steps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from sgd_dynamics.plots.common import new_figure, set_log_axis, set_step_axis, symlog_linthresh
from sgd_dynamics.run_folder.snapshots import RunHistory


def _final_marker(ax, step: float, value: Any, label: str, color: str) -> None:
    """A star at the last step for a final (end of run) value, when it is a finite number."""
    if isinstance(value, (int, float)) and np.isfinite(value):
        ax.plot(
            [step], [value], marker="*", ms=10, ls="none", color=color, label=label, clip_on=False
        )


def training_figure(
    history: RunHistory, summary: Mapping[str, Any] | None = None, title: str | None = None
) -> Figure:
    """Three panels over the global step (symlog axis), one point per snapshot:

    - the training loss at each snapshot (log y), with the final test loss of ``summary``
      (the run's ``summary.json``: the network evaluated on the whole test set) as a star;
    - the training accuracy at each snapshot, with the final test accuracy as a star;
    - H_p's extremes: its largest eigenvalue ``hp_top[0]`` and its smallest ``hp_bottom[0]``,
      with -λmax(H_f) (dashed) for reference: H_p's smallest eigenvalue approaches it as M
      collapses (H_p -> -H_f); symlog y, both signs readable.

    ``summary`` may be None or lack keys (no stars then).
    """
    steps = history.steps.astype(float)
    summary = summary or {}
    last = float(np.nanmax(steps)) if steps.size else 0.0
    marker = "o" if len(steps) <= 40 else None

    fig = new_figure(13.5, 4.0)
    ax_loss, ax_acc, ax_hp = fig.subplots(1, 3)

    loss = np.asarray(history["train_loss"], dtype=float)
    ax_loss.plot(steps, loss, "-", marker=marker, ms=3, color="C0", label="train (snapshot)")
    _final_marker(ax_loss, last, summary.get("test_loss"), "test, end of run", "C1")
    positive = np.concatenate([loss, [summary.get("test_loss", np.nan) or np.nan]])
    if np.any(np.isfinite(positive) & (positive > 0)):
        set_log_axis(ax_loss, positive)
    ax_loss.set_ylabel("cross-entropy loss (log scale)")
    ax_loss.set_title("loss", fontsize=10)

    acc = np.asarray(history["train_acc"], dtype=float)
    ax_acc.plot(steps, acc, "-", marker=marker, ms=3, color="C0", label="train (snapshot)")
    _final_marker(ax_acc, last, summary.get("test_acc"), "test, end of run", "C1")
    ax_acc.set_ylim(0.0, 1.02)
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_title("accuracy", fontsize=10)

    top = history["hp_top"][:, 0]
    bottom = history["hp_bottom"][:, 0]
    hf_top = history["hf_top"][:, 0]
    ax_hp.plot(steps, top, "-", marker=marker, ms=3, color="C3", label=r"$\lambda_{max}(H_p)$")
    ax_hp.plot(steps, bottom, "-", marker=marker, ms=3, color="C2", label=r"$\lambda_{min}(H_p)$")
    ax_hp.plot(steps, -hf_top, "--", color="0.4", lw=1.0, label=r"$-\lambda_{max}(H_f)$")
    ax_hp.axhline(0.0, color="0.6", lw=0.6, zorder=0)
    linthresh = symlog_linthresh(np.concatenate([top, bottom, hf_top]), rel=1e-3)
    ax_hp.set_yscale("symlog", linthresh=linthresh)
    ax_hp.set_ylabel(r"eigenvalue (symlog scale)")
    ax_hp.set_title(r"extremes of $H_p = M - H_f$", fontsize=10)

    for ax in (ax_loss, ax_acc, ax_hp):
        set_step_axis(ax, steps)
        ax.grid(True, which="major", color="0.92", lw=0.6)
        ax.legend(fontsize=7, loc="best")
    heading = "Training and the extremes of $H_p$"
    fig.suptitle(f"{heading}\n{title}" if title else heading, fontsize=11)
    return fig
