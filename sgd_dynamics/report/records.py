"""The records of a sweep report, shared by the analysis (`sgd_dynamics.report`), its figures
(`sgd_dynamics.report.figures`) and its wandb run (`sgd_dynamics.wandb_io.report_run`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sgd_dynamics.run_folder.snapshots import RunHistory


@dataclass
class Job:
    """One job folder of a sweep."""

    name: str
    path: Path
    overrides: dict[str, str]
    config: dict[str, Any] | None
    status: str
    summary: dict[str, Any]
    history: RunHistory | None = None
    skip_reason: str | None = None
    group: str | None = None
    end: dict[str, float | int] = field(default_factory=dict)

    @property
    def included(self) -> bool:
        return self.skip_reason is None


@dataclass
class Band:
    """One quantity of one group on its common step grid.

    ``steps`` (T,); ``values`` (J, T) one row per job (``jobs`` names them); ``quantiles``
    (Q, T) = ``numpy.quantile(values, levels, axis=0)``; ``median`` (T,).
    """

    steps: np.ndarray
    values: np.ndarray
    jobs: list[str]
    levels: tuple[float, ...]
    quantiles: np.ndarray
    median: np.ndarray
    interpolated: bool


@dataclass
class Group:
    """Jobs that share the knob values ``settings``: ``jobs`` the used ones, ``expected`` how
    many the sweep has (skipped and missing ones included), ``unused`` the others as
    ``<name> (<reason>)``; ``bands`` maps quantity -> Band."""

    label: str
    settings: dict[str, str]
    jobs: list[Job]
    bands: dict[str, Band] = field(default_factory=dict)
    expected: int = 0
    unused: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every job of the group was used."""
        return len(self.jobs) >= self.expected


@dataclass
class ReportResult:
    """What ``report`` read and wrote. ``jobs`` lists every job, skipped and missing ones
    included;
    ``figure_paths`` is filled by `sgd_dynamics.report.figures.draw_report_figures`."""

    sweep_dir: Path
    out_dir: Path
    csv_path: Path
    bands_csv_path: Path | None
    groups_csv_path: Path | None
    jobs: list[Job]
    groups: list[Group]
    knobs: list[str]
    levels: tuple[float, ...]
    quantities: dict[str, str]
    title: str = ""
    figure_paths: list[Path] = field(default_factory=list)
    unused: list[Group] = field(default_factory=list)  # groups none of whose jobs was used

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """(job name, reason) for each skipped job."""
        return [(job.name, job.skip_reason) for job in self.jobs if not job.included]

    @property
    def included(self) -> list[Job]:
        return [job for job in self.jobs if job.included]


def value_sort_key(value: str | None) -> tuple:
    """Numbers numerically, then other strings, then missing values."""
    if value is None:
        return (2, 0.0, "")
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)
