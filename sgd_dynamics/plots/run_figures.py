"""Draw every figure a run's stored snapshots allow, as PNG files."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from sgd_dynamics.plots.alignment import alignment_figure
from sgd_dynamics.plots.common import run_title, save_figure
from sgd_dynamics.plots.density import density_figure
from sgd_dynamics.plots.spectra import full_spectra_figure
from sgd_dynamics.plots.training import training_figure
from sgd_dynamics.run_folder.hydra_record import read_run_config
from sgd_dynamics.run_folder.location import FIGURES_DIRNAME
from sgd_dynamics.run_folder.snapshots import RunHistory, load_run

FULL_SPECTRA_PNG = "full_spectra.png"
ALIGNMENT_PNG = "alignment.png"
DENSITIES_PNG = "spectral_densities.png"
TRAINING_PNG = "training.png"
SUMMARY_JSON = "summary.json"  # written by the run at its end (final train and test metrics)


def _read_summary(run_dir: Path) -> dict | None:
    """The run's summary.json as a dict, or None when absent or unreadable."""
    try:
        summary = json.loads((run_dir / SUMMARY_JSON).read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def draw_run_figures(
    run_dir: str | os.PathLike,
    steps: Sequence[int] | None = None,
    out_dir: str | os.PathLike | None = None,
    k: int | None = None,
    history: RunHistory | None = None,
) -> list[Path]:
    """Redraw a run's figures from its stored snapshots; return the PNG paths written.

    Writes ``alignment.png`` (figure 2) and ``training.png`` (figure 3: loss, accuracy, H_p's
    extremes; the final test numbers from ``summary.json`` when present) always,
    ``full_spectra.png`` (figure 1) when some snapshot holds full spectra and
    ``spectral_densities.png`` (figure 1 at any scale) when some holds spectral densities, into
    ``out_dir`` (default ``RUN_DIR/figures``), atomically.
    ``steps`` picks figure 1's snapshots, both versions (default: ``choose_steps``), ``k`` the
    indices figure 2 draws (default: all stored). The title comes from
    ``RUN_DIR/.hydra/config.yaml`` if present. ``history`` skips re-reading the snapshots when
    the caller already holds them.
    """
    run_dir = Path(run_dir)
    if history is None:
        history = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir / FIGURES_DIRNAME
    title = run_title(read_run_config(run_dir), fallback=run_dir.name)
    written = []
    if history.has_full_spectra:
        fig = full_spectra_figure(history, steps=steps, title=title)
        written.append(save_figure(fig, out / FULL_SPECTRA_PNG))
    if history.has_densities:
        fig = density_figure(history, steps=steps, title=title)
        written.append(save_figure(fig, out / DENSITIES_PNG))
    if steps is not None and not (history.has_full_spectra or history.has_densities):
        raise ValueError(
            f"{run_dir}: --steps selects figure 1's snapshots, but none has full spectra or "
            "spectral densities"
        )
    fig = alignment_figure(history, k=k, title=title)
    written.append(save_figure(fig, out / ALIGNMENT_PNG))
    fig = training_figure(history, summary=_read_summary(run_dir), title=title)
    written.append(save_figure(fig, out / TRAINING_PNG))
    return written
