"""Shared figure helpers: atomic PNG output, step axes, symlog thresholds, run titles.

Figures are built with the object-oriented API (``matplotlib.figure.Figure`` with the Agg
canvas), never pyplot, so nothing opens a window, no global figure state is kept, and the
functions can be called from a notebook (a returned ``Figure`` displays inline).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation, LogLocator, NullFormatter

from sgd_dynamics.run_folder.files import atomic_write
from sgd_dynamics.utils.dotted import get_dotted

DPI = 150


def new_figure(width: float, height: float) -> Figure:
    """A figure attached to the Agg canvas (no display), constrained layout."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = DPI) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi)
    return path


def set_step_axis(ax, steps: np.ndarray) -> None:
    """Label the x axis as the global step on a symlog scale (linear in [0, 1], log above), so
    step 0 keeps its place at the left edge and log-spaced snapshots spread evenly; every
    figure of a run and of a report uses this one step axis."""
    steps = np.asarray(steps, dtype=float)
    ax.set_xscale("symlog", linthresh=1.0, linscale=0.6)
    ax.set_xlabel("training step (symlog axis)")
    finite = steps[np.isfinite(steps)]
    if finite.size:
        low, high = float(finite.min()), float(finite.max())
        ax.set_xlim(low, high if high > low else low + 1.0)


def set_log_axis(ax, values: np.ndarray, axis: str = "y") -> None:
    """A log scale on `axis` with one tick-label format: ``10^k`` at the decades when the
    positive finite `values` span at least one full decade (unlabelled minor ticks), else
    plain numbers (``0.2``, ``0.5``, ``1``) at 1, 2 and 5 times the powers of ten."""
    values = np.asarray(values, dtype=float)
    positive = values[np.isfinite(values) & (values > 0)]
    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    decades = np.log10(positive.max() / positive.min()) if positive.size else 0.0
    spans_decade = positive.size and np.floor(np.log10(positive.max())) > np.ceil(
        np.log10(positive.min()) - 1e-12
    )
    if decades >= 1.0 and spans_decade:
        target.set_major_locator(LogLocator(base=10.0))
        target.set_major_formatter(LogFormatterSciNotation(base=10.0))
    else:
        target.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
        target.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    target.set_minor_formatter(NullFormatter())


def symlog_linthresh(values: np.ndarray, rel: float = 1e-6) -> float:
    """A symlog threshold: ``rel`` times the largest |value|, rounded down to a power of ten.

    Eigenvalues below it in magnitude are drawn on the linear part around 0 (for ``M`` these
    are the numerically-zero eigenvalues beyond its rank); above it every decade shows.
    """
    finite = np.abs(np.asarray(values, dtype=float))
    finite = finite[np.isfinite(finite)]
    top = float(finite.max()) if finite.size else 0.0
    if top <= 0:
        return 1.0
    return float(10.0 ** np.floor(np.log10(rel * top)))


def format_value(value: Any) -> str:
    """A compact label for a config value (``0.2``, ``64``, ``mnist``)."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _lookup(config: Mapping[str, Any], dotted: str) -> Any:
    node = get_dotted(config, dotted)
    return node if not isinstance(node, (Mapping, list)) else None


def run_title(config: Mapping[str, Any] | None, fallback: str = "") -> str:
    """A one-line title from a run's resolved config: data set, batch size, depth, label noise.

    Looks for ``dataset.name`` (else the class of ``dataset._target_`` less ``DataModule``),
    ``batch_size`` (top level or ``dataset.batch_size``), ``model.depth``,
    ``dataset.label_noise``, ``seed``; returns ``fallback`` when none is found.
    """
    if not config:
        return fallback
    parts = []
    dataset = _lookup(config, "dataset.name")
    if dataset is None:
        target = _lookup(config, "dataset._target_")
        dataset = target.rsplit(".", 1)[-1] if isinstance(target, str) else None
        if dataset is not None:
            dataset = dataset.removesuffix("DataModule")  # Gauss10DataModule -> Gauss10
    if dataset is not None:
        parts.append(str(dataset))
    batch = _lookup(config, "batch_size")
    if batch is None:
        batch = _lookup(config, "dataset.batch_size")
    shown = (
        ("batch size", batch),
        ("depth", _lookup(config, "model.depth")),
        ("label noise", _lookup(config, "dataset.label_noise")),
        ("seed", _lookup(config, "seed")),
    )
    parts += [f"{label} {format_value(value)}" for label, value in shown if value is not None]
    return ", ".join(parts) if parts else fallback
