"""Sweep report: quantile bands over seeds, comparisons across swept knobs, one CSV row per job.

A sweep folder has Hydra's multirun layout: ``SWEEP_DIR/<job>/`` with ``.hydra/config.yaml``,
``.hydra/overrides.yaml``, ``status.json``, ``summary.json`` and ``spectra/step_*.npz``.

- Jobs: every non-hidden sub-folder (other than ``report``) holding ``.hydra``, ``spectra`` or
  ``status.json``, and, when the sweep's record lists its jobs (``expected``: job name ->
  overrides, from ``SWEEP_DIR/multirun.yaml``, which ``sgd-dynamics report`` reads), every
  listed job without a folder (status ``missing``). A job is skipped (listed, logged, kept in
  the CSV with its reason, never fatal) when its status is ``failed``, ``running`` (a live
  process runs it) or ``dead`` (``running`` in status.json, but no live process holds the
  folder: `sgd_dynamics.lifecycle.run_state`), when it is missing, when its ``summary.json`` is
  damaged (not a JSON object), or when it has no readable snapshot. A job without
  ``status.json`` has status ``unknown`` and is used when it has snapshots.
- Groups: jobs sharing the values of the knobs. The knobs are ``group_by`` when given (values
  from the overrides, else from the resolved config), otherwise the override keys whose values
  differ between the jobs used (not skipped), ignoring seeds (``seed``, ``*.seed``),
  ``hydra.*`` and ``ckpt_path`` (a resumed job's overrides.yaml gains ``ckpt_path=...``; it
  stays in its group). With ``expected``, the keys are those that vary between all the jobs
  of the sweep (missing and skipped ones included), so that a group none of whose jobs can be
  used is still named.
- Complete groups: a group's expected jobs are the sweep's jobs with its knob values (listed
  in the record, or found as folders); a group with fewer used jobs is *incomplete*: named so
  in the log's summary, in groups.csv (``expected_jobs``, ``complete``; a group with no used
  job gets a row without values) and in the figures' titles.
- Series per job and snapshot: ``mean_top{m}_cos`` (mean of the defined cosines among the first
  m = 10; NaN cosines, beyond M's rank, are left out: docs/math.md),
  ``n_top{m}_cos_gt_{t}`` (how many of them exceed t = 0.9), ``hf_top_1`` and ``mt_top_1``
  (largest eigenvalue of H_f and of M).
- Common step grid per group: when all jobs of a group took snapshots at the same steps, those
  steps (values used as stored). Otherwise the union of the jobs' steps inside the range every
  job covers (latest first step to earliest last step), each job's series linearly interpolated
  in log(step + 1); no extrapolation.
- Bands: ``numpy.quantile(values, quantiles, axis=0)`` over the jobs of a group at each grid
  step (NaN propagates), and the median.
- End of training (last snapshot of each job): the same four quantities, plus
  ``mt_top_1_end_over_peak`` = λ1(M) at the last snapshot / its maximum over the run, and
  ``hp_to_minus_hf_w1`` = "H_p -> -H_f", W1(μ_{H_p}, μ_{-H_f}) / (λmax(H_f) - λmin(H_f)) at the
  last snapshot with spectral densities (``spectral.density``; NaN without; exact for the
  dense method).
"""

from __future__ import annotations

import csv
import fnmatch
import io
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sgd_dynamics.lifecycle.run_state import RunState, view_run
from sgd_dynamics.report.records import Band, Group, Job, ReportResult, value_sort_key
from sgd_dynamics.run_folder.files import atomic_write, read_json
from sgd_dynamics.run_folder.hydra_record import read_run_config, read_run_overrides
from sgd_dynamics.run_folder.snapshots import (
    SPECTRA_DIRNAME,
    RunFolderError,
    RunHistory,
    list_snapshots,
    load_run,
)
from sgd_dynamics.utils.dotted import get_dotted
from sgd_dynamics.utils.safe_files import FileOverLimit

logger = logging.getLogger(__name__)

REPORT_DIRNAME = "report"
JOBS_CSV = "jobs.csv"
BANDS_CSV = "bands.csv"
GROUPS_CSV = "groups.csv"
DEFAULT_QUANTILES = (0.1, 0.5, 0.9)
DEFAULT_IGNORE = ("seed", "*.seed", "ckpt_path", "hydra.*")
SKIPPED_STATUSES = ("failed", "running", "dead", "missing")
DEAD_REASON = "dead (status running, no live process)"
DAMAGED_SUMMARY = "damaged summary.json (not a JSON object)"

# jobs.csv column -> the summary.json key train.py writes it under (`train_and_measure`; every
# version of the project wrote these four flat keys)
SUMMARY_COLUMNS = {
    "final_train_loss": "train_loss",
    "final_train_acc": "train_acc",
    "final_test_loss": "test_loss",
    "final_test_acc": "test_acc",
}


# ----------------------------------------------------------------------------- reading jobs


def parse_overrides(overrides: Iterable[str]) -> dict[str, str]:
    """``["a.b=1", "+c=x", "~d"]`` -> ``{"a.b": "1", "c": "x"}`` (deletions dropped)."""
    parsed: dict[str, str] = {}
    for item in overrides:
        item = str(item).strip()
        if not item or item.startswith("~") or "=" not in item:
            continue
        key, value = item.split("=", 1)
        parsed[key.lstrip("+").strip()] = value.strip()
    return parsed


def _sort_key(name: str) -> tuple:
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    """The job folders of a sweep, numerically sorted when their names are numbers."""
    jobs = []
    for child in sweep_dir.iterdir():
        if not child.is_dir() or child.name.startswith(".") or child.name == REPORT_DIRNAME:
            continue
        if any((child / name).exists() for name in (".hydra", SPECTRA_DIRNAME, "status.json")):
            jobs.append(child)
    return sorted(jobs, key=lambda p: _sort_key(p.name))


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def read_job(path: Path) -> Job:
    """Read a job folder's metadata and, unless it is to be skipped, its snapshots. A job with
    a file over the limits of `sgd_dynamics.utils.safe_files` (size, YAML aliases, nesting) is
    skipped, with the refusal as its reason, and nothing else of it is read."""
    try:
        return _read_job(path)
    except FileOverLimit as exc:
        job = Job(path.name, path, overrides={}, config=None, status="unknown", summary={})
        job.skip_reason = f"refused: {exc}"
        return job


def _read_job(path: Path) -> Job:
    status_obj = read_json(path / "status.json")
    status = str(status_obj.get("status", "unknown")) if status_obj else "unknown"
    if status == "running" and view_run(path).state is RunState.DEAD:
        status = "dead"
    summary_obj = read_json(path / "summary.json")
    damaged = summary_obj is None and (path / "summary.json").exists()
    job = Job(
        name=path.name,
        path=path,
        overrides=parse_overrides(read_run_overrides(path) or []),
        config=read_run_config(path),
        status=status,
        summary=_flatten(summary_obj) if summary_obj else {},
    )
    if status in SKIPPED_STATUSES:
        job.skip_reason = DEAD_REASON if status == "dead" else status
    elif damaged:
        job.skip_reason = DAMAGED_SUMMARY
    elif not list_snapshots(path):
        job.skip_reason = "no snapshots"
    else:
        try:
            job.history = load_run(path)
        except RunFolderError as exc:
            job.skip_reason = f"unreadable snapshots ({exc})"
    return job


def knob_value(job: Job, key: str) -> str | None:
    """A knob's value for a job: from its overrides, else from its resolved config."""
    if key in job.overrides:
        return job.overrides[key]
    value = get_dotted(job.config, key)
    if value is None or isinstance(value, (Mapping, list)):
        return None
    return f"{value:g}" if isinstance(value, float) else str(value)


def varying_keys(jobs: Sequence[Job], ignore: Sequence[str] = DEFAULT_IGNORE) -> list[str]:
    """Override keys whose values differ between jobs (missing counts as a value), in order of
    first appearance, minus those matching an ``ignore`` pattern (fnmatch)."""
    keys: list[str] = []
    for job in jobs:
        keys.extend(k for k in job.overrides if k not in keys)
    varying = []
    for key in keys:
        if any(fnmatch.fnmatchcase(key, pattern) for pattern in ignore):
            continue
        if len({job.overrides.get(key) for job in jobs}) > 1:
            varying.append(key)
    return varying


def _shown(value: str | None) -> str:
    return "(default)" if value is None else value


def shared_settings(jobs: Sequence[Job], knobs: Sequence[str], ignore: Sequence[str]) -> list[str]:
    """What every job of ``jobs`` has in common, for a figure title: the data set (class of
    ``dataset._target_`` without "DataModule", unless ``dataset`` is overridden), then the
    ``key=value`` overrides all jobs share, minus knobs, ``ignore`` patterns and ``logger``."""
    if not jobs:
        return []
    shared = [
        f"{key}={value}"
        for key, value in jobs[0].overrides.items()
        if key not in knobs
        and key != "logger"
        and not any(fnmatch.fnmatchcase(key, pattern) for pattern in ignore)
        and all(job.overrides.get(key) == value for job in jobs)
    ]
    if "dataset" in knobs or any(item.startswith("dataset=") for item in shared):
        return shared
    targets = {get_dotted(job.config, "dataset._target_") for job in jobs}
    if len(targets) == 1 and isinstance(target := targets.pop(), str):
        return [target.rsplit(".", 1)[-1].removesuffix("DataModule"), *shared]
    return shared


# ----------------------------------------------------------------------------- quantities


def series_names(top: int = 10, threshold: float = 0.9) -> dict[str, str]:
    """Quantity name -> axis label for the per-snapshot series."""
    return {
        f"mean_top{top}_cos": rf"mean of top-{top} $\cos\gamma_i$",
        f"n_top{top}_cos_gt_{threshold:g}": rf"# of top-{top} $\cos\gamma_i > {threshold:g}$",
        "hf_top_1": r"$\lambda_1(H_f)$",
        "mt_top_1": r"$\lambda_1(M)$",
    }


def job_series(history: RunHistory, top: int = 10, threshold: float = 0.9) -> dict[str, np.ndarray]:
    """Per-snapshot quantities of a run, each (S,) float64 (see the module docstring).

    The cosines used are the first ``top`` stored (all of them when fewer are stored). NaN
    cosines (undefined beyond M's numerical rank, or padding) are left out of the mean (NaN when
    none is defined) and do not count as above the threshold.
    """
    cos = history["cosines"][:, :top]
    names = list(series_names(top, threshold))
    defined = np.isfinite(cos)
    counts = defined.sum(axis=1)
    sums = np.where(defined, cos, 0.0).sum(axis=1)
    return {
        names[0]: np.divide(sums, counts, out=np.full(len(counts), np.nan), where=counts > 0),
        names[1]: (cos > threshold).sum(axis=1).astype(np.float64),
        names[2]: history["hf_top"][:, 0].copy(),
        names[3]: history["mt_top"][:, 0].copy(),
    }


def end_quantities(top: int = 10, threshold: float = 0.9) -> list[str]:
    """Names of the end-of-training values summarised per group (groups.csv)."""
    return [*series_names(top, threshold), "mt_top_1_end_over_peak", "hp_to_minus_hf_w1"]


def final_hp_to_minus_hf(history: RunHistory) -> float:
    """W1(H_p, -H_f) / spread of H_f at the last snapshot holding densities (`spectral.density`;
    docs/densities.md), NaN for a run without densities."""
    if "hp_to_minus_hf_w1" not in history:
        return math.nan
    values = history["hp_to_minus_hf_w1"]
    finite = np.flatnonzero(np.isfinite(values))
    return float(values[finite[-1]]) if finite.size else math.nan


def end_of_training(
    history: RunHistory, top: int = 10, threshold: float = 0.9
) -> dict[str, float | int]:
    """The series at the last snapshot (the count as an int), plus ``mt_top_1_end_over_peak``
    (λ1(M) at the last snapshot / its maximum over the snapshots), ``hp_to_minus_hf_w1``
    ("H_p -> -H_f": W1(H_p, -H_f) / spread at the last snapshot with densities, NaN without),
    ``last_step`` and ``n_snapshots``."""
    series = job_series(history, top, threshold)
    end: dict[str, float | int] = {name: float(values[-1]) for name, values in series.items()}
    count = f"n_top{top}_cos_gt_{threshold:g}"
    end[count] = int(end[count])
    mt = series["mt_top_1"]
    peak = np.nanmax(mt) if np.isfinite(mt).any() else math.nan
    end["mt_top_1_end_over_peak"] = float(mt[-1] / peak)
    end["hp_to_minus_hf_w1"] = final_hp_to_minus_hf(history)
    end["last_step"] = int(history.steps[-1])
    end["n_snapshots"] = len(history)
    return end


def common_grid(step_lists: Sequence[np.ndarray]) -> tuple[np.ndarray, bool]:
    """(grid, interpolated): the shared steps if every job has the same ones, else the union
    of all steps within [max of first steps, min of last steps] (possibly empty)."""
    first = np.asarray(step_lists[0])
    if all(np.array_equal(first, np.asarray(s)) for s in step_lists[1:]):
        return first.astype(np.int64), False
    lo = max(int(np.min(s)) for s in step_lists)
    hi = min(int(np.max(s)) for s in step_lists)
    union = np.unique(np.concatenate([np.asarray(s, dtype=np.int64) for s in step_lists]))
    return union[(union >= lo) & (union <= hi)], True


def on_grid(steps: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``values`` at ``steps`` linearly interpolated in log(step + 1) onto ``grid`` (inside the
    range of ``steps``; the caller guarantees no extrapolation)."""
    return np.interp(np.log1p(grid.astype(float)), np.log1p(steps.astype(float)), values)


def group_bands(
    jobs: Sequence[Job], levels: Sequence[float], top: int, threshold: float
) -> dict[str, Band]:
    """Quantile bands of every series over the jobs of one group (empty when the jobs' step
    ranges do not overlap)."""
    histories = [job.history for job in jobs]
    grid, interpolated = common_grid([h.steps for h in histories])
    if grid.size == 0:
        return {}
    per_job = [job_series(h, top, threshold) for h in histories]
    bands = {}
    for name in per_job[0]:
        rows = []
        for history, series in zip(histories, per_job, strict=True):
            values = series[name]
            rows.append(on_grid(history.steps, values, grid) if interpolated else values)
        values = np.vstack(rows)
        bands[name] = Band(
            steps=grid,
            values=values,
            jobs=[job.name for job in jobs],
            levels=tuple(levels),
            quantiles=np.quantile(values, levels, axis=0),
            median=np.quantile(values, 0.5, axis=0),
            interpolated=interpolated,
        )
    return bands


# ----------------------------------------------------------------------------- the report


def _check_levels(quantiles: Sequence[float]) -> tuple[float, ...]:
    try:
        levels = tuple(sorted({float(q) for q in quantiles}))
    except (TypeError, ValueError):
        raise ValueError(f"quantiles must be numbers in [0, 1], got {quantiles!r}") from None
    if not levels or any(not 0.0 <= q <= 1.0 for q in levels):
        raise ValueError(f"quantiles must be a non-empty list of numbers in [0, 1], got {levels}")
    return levels


def missing_job(sweep_dir: Path, name: str, overrides: Sequence[str]) -> Job:
    """A job of the sweep's record that has no folder."""
    return Job(
        name=name,
        path=sweep_dir / name,
        overrides=parse_overrides(overrides),
        config=None,
        status="missing",
        summary={},
        skip_reason="missing",
    )


def _read_jobs(
    sweep_dir: Path, top: int, threshold: float, expected: Mapping[str, Sequence[str]] | None
) -> list[Job]:
    """Every job folder of `sweep_dir`, read, with its end-of-training values when used, and
    the jobs of `expected` that have no folder."""
    if not sweep_dir.is_dir():
        raise RunFolderError(f"sweep folder {sweep_dir} does not exist or is not a folder")
    if (sweep_dir / SPECTRA_DIRNAME).is_dir():
        raise RunFolderError(
            f"{sweep_dir} is a run folder (it has spectra/), not a sweep: "
            "use `sgd-dynamics plot` for one run"
        )
    job_dirs = find_job_dirs(sweep_dir)
    if not job_dirs:
        raise RunFolderError(
            f"no job folders in {sweep_dir} (expected Hydra's multirun layout "
            "SWEEP_DIR/<job>/ with .hydra/, status.json or spectra/)"
        )
    jobs = [read_job(path) for path in job_dirs]
    found = {job.name for job in jobs}
    jobs += [missing_job(sweep_dir, n, o) for n, o in (expected or {}).items() if n not in found]
    jobs.sort(key=lambda job: _sort_key(job.name))
    for job in jobs:
        if job.included:
            job.end = end_of_training(job.history, top, threshold)
            if job.status == "unknown":
                logger.warning("job %s has no status.json; using its snapshots", job.name)
        else:
            logger.info("skipping job %s (%s)", job.name, job.skip_reason)
    return jobs


def _choose_knobs(
    jobs: Sequence[Job], group_by: Sequence[str] | None, ignore: Sequence[str], recorded: bool
) -> list[str]:
    """`group_by` (each key must be found in some job), else the keys that vary between the
    jobs: all of them when the sweep's record listed them (`recorded`), else the jobs used
    (skipped folders, e.g. a failed one started with other overrides, make no knob)."""
    if not group_by:
        used = jobs if recorded else [job for job in jobs if job.included]
        return varying_keys(used or jobs, ignore)
    knobs = list(dict.fromkeys(group_by))
    unknown = [k for k in knobs if all(knob_value(job, k) is None for job in jobs)]
    if unknown:
        raise ValueError(f"group_by keys {unknown} are in no job's overrides or config")
    return knobs


def group_jobs(
    jobs: Sequence[Job], knobs: Sequence[str], levels: tuple[float, ...], top: int, threshold: float
) -> tuple[list[Group], list[Group]]:
    """(groups, unused groups): the used jobs grouped by their knob values (sets each used
    job's ``group``), ordered by `value_sort_key` of the values, each with its bands; and the
    groups whose jobs are all skipped. Every group's ``expected`` counts all its jobs, skipped
    and missing ones included, and ``unused`` names those."""
    groups: dict[tuple, Group] = {}
    for job in jobs:
        settings = {key: knob_value(job, key) for key in knobs}
        label = ", ".join(f"{k}={_shown(v)}" for k, v in settings.items()) if knobs else "all jobs"
        key = tuple(value_sort_key(settings[k]) for k in knobs)
        group = groups.setdefault(key, Group(label=label, settings=settings, jobs=[]))
        group.expected += 1
        if job.included:
            job.group = label
            group.jobs.append(job)
        else:
            group.unused.append(f"{job.name} ({job.skip_reason})")
    ordered = [groups[key] for key in sorted(groups) if groups[key].jobs]
    unused = [groups[key] for key in sorted(groups) if not groups[key].jobs]
    for group in ordered:
        group.bands = group_bands(group.jobs, levels, top, threshold)
        if not group.bands:
            logger.warning("group %s: the jobs' step ranges do not overlap; no band", group.label)
    return ordered, unused


def incomplete_groups(groups: Sequence[Group], reasons: bool = True) -> str:
    """``batch_size=50 (1 of 2 jobs; not used: 3 (missing))`` (without `reasons`:
    ``batch_size=50 (1 of 2 jobs)``), one per incomplete group, separated by ``; ``."""
    return "; ".join(
        f"{g.label} ({len(g.jobs)} of {g.expected} jobs"
        + (f"; not used: {', '.join(g.unused)})" if reasons else ")")
        for g in groups
        if not g.complete
    )


def report(
    sweep_dir: str | os.PathLike,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    group_by: Sequence[str] | None = None,
    out_dir: str | os.PathLike | None = None,
    top: int = 10,
    threshold: float = 0.9,
    ignore: Sequence[str] = DEFAULT_IGNORE,
    expected: Mapping[str, Sequence[str]] | None = None,
) -> ReportResult:
    """Read a sweep folder, analyse it and write its tables into ``out_dir`` (default
    ``SWEEP_DIR/report``): ``jobs.csv``, ``bands.csv`` and ``groups.csv`` (per group, the
    median and quantiles of the end-of-training values). See the module docstring for the
    definitions; `expected`: the jobs of the sweep's record (job name -> overrides), when
    known. The figures (``alignment_bands.png``, ``comparison.png``) are drawn from the
    result by `sgd_dynamics.report.figures.draw_report_figures` (``sgd-dynamics report`` does).

    Raises ``RunFolderError`` when ``sweep_dir`` is missing, is a run folder, or holds no job
    folder, and ``ValueError`` on bad ``quantiles`` or a ``group_by`` key found in no job.
    """
    sweep_dir = Path(sweep_dir)
    levels = _check_levels(quantiles)
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    jobs = _read_jobs(sweep_dir, top, threshold, expected)
    knobs = _choose_knobs(jobs, group_by, ignore, recorded=expected is not None)
    ordered, unused = group_jobs(jobs, knobs, levels, top, threshold)
    out = Path(out_dir) if out_dir is not None else sweep_dir / REPORT_DIRNAME
    tables = _write_tables(out, jobs, ordered, unused, knobs, levels, top, threshold)
    included = [job for job in jobs if job.included]
    title = ", ".join([f"sweep {sweep_dir.name}", *shared_settings(included, knobs, ignore)])
    if incomplete := incomplete_groups([*ordered, *unused]):
        title += f"\nincomplete groups: {incomplete_groups([*ordered, *unused], reasons=False)}"
    skipped = [f"{job.name} ({job.skip_reason})" for job in jobs if not job.included]
    logger.info(
        "report of %s: %d jobs, %d used in %d groups, %d skipped%s",
        sweep_dir,
        len(jobs),
        len(jobs) - len(skipped),
        len(ordered),
        len(skipped),
        (": " + ", ".join(skipped)) if skipped else "",
    )
    if incomplete:
        logger.warning("incomplete groups: %s", incomplete)
    if not ordered:
        logger.warning("no job of %s has usable snapshots: no figure to draw", sweep_dir)
    quantities = series_names(top, threshold)
    # fields in order: sweep_dir, out_dir, the three tables, jobs, groups, knobs, levels, ...
    return ReportResult(
        sweep_dir, out, *tables, jobs, ordered, knobs, levels, quantities, title, unused=unused
    )


# ----------------------------------------------------------------------------- CSV output


def _cell(value: Any) -> str:
    """CSV text: '' for missing, shortest round-trip repr for floats."""
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (np.integer, np.bool_)):
        return str(value.item())
    return str(value)


def _write_tables(
    out: Path,
    jobs: Sequence[Job],
    groups: Sequence[Group],
    unused: Sequence[Group],
    knobs: Sequence[str],
    levels: tuple[float, ...],
    top: int,
    threshold: float,
) -> tuple[Path, Path | None, Path | None]:
    """Write jobs.csv, and bands.csv and groups.csv (the `unused` groups as rows without
    values) when some job was used, into `out`."""
    jobs_csv = write_jobs_csv(out / JOBS_CSV, jobs, top, threshold)
    if not groups:
        return jobs_csv, None, None
    bands_csv = write_bands_csv(out / BANDS_CSV, groups)
    ends = end_quantities(top, threshold)
    groups_csv = write_groups_csv(out / GROUPS_CSV, [*groups, *unused], knobs, levels, ends)
    return jobs_csv, bands_csv, groups_csv


def write_jobs_csv(path: Path, jobs: Sequence[Job], top: int = 10, threshold: float = 0.9) -> Path:
    """One row per job (skipped ones too): job, status, used, skip_reason, group, every
    override key, the final metrics from summary.json, the end-of-training spectral summary,
    then the other scalar summary.json entries as ``summary.<key>``."""
    override_keys: list[str] = []
    for job in jobs:
        override_keys.extend(k for k in job.overrides if k not in override_keys)
    end_keys = [
        *series_names(top, threshold),
        "mt_top_1_end_over_peak",
        "hp_to_minus_hf_w1",
        "last_step",
        "n_snapshots",
    ]
    summary_keys = set(SUMMARY_COLUMNS.values())
    extra_keys: list[str] = []
    for job in jobs:
        extra_keys.extend(
            k
            for k, v in job.summary.items()
            if k not in summary_keys and k not in extra_keys and not isinstance(v, list)
        )
    header = ["job", "status", "used", "skip_reason", "group", *override_keys, *SUMMARY_COLUMNS]
    header += [*end_keys, *(f"summary.{k}" for k in extra_keys)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for job in jobs:
        row: list[Any] = [job.name, job.status, "yes" if job.included else "no"]
        row += [job.skip_reason, job.group]
        row += [job.overrides.get(k) for k in override_keys]
        row += [job.summary.get(key) for key in SUMMARY_COLUMNS.values()]
        row += [job.end.get(k) for k in end_keys]
        row += [job.summary.get(k) for k in extra_keys]
        writer.writerow([_cell(v) for v in row])
    with atomic_write(path, "w") as handle:
        handle.write(buffer.getvalue())
    return path


def write_bands_csv(path: Path, groups: Sequence[Group]) -> Path:
    """Long table of the bands: group, quantity, step, n_jobs, median, one column per level."""
    levels = next((b.levels for g in groups for b in g.bands.values()), ())
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["group", "quantity", "step", "n_jobs", "median", *(f"q{q:g}" for q in levels)])
    for group in groups:
        for name, band in group.bands.items():
            for t, step in enumerate(band.steps):
                row = [group.label, name, int(step), band.values.shape[0], band.median[t]]
                writer.writerow([_cell(v) for v in (*row, *band.quantiles[:, t])])
    with atomic_write(path, "w") as handle:
        handle.write(buffer.getvalue())
    return path


def write_groups_csv(
    path: Path,
    groups: Sequence[Group],
    knobs: Sequence[str],
    levels: Sequence[float],
    quantities: Sequence[str],
) -> Path:
    """One row per group: group, its knob values, n_jobs (used), expected_jobs (in the sweep),
    complete (yes / no), then per end-of-training quantity ``<quantity>.median`` and
    ``<quantity>.q<level>`` = ``numpy.quantile`` over its used jobs (empty without one)."""
    header = ["group", *knobs, "n_jobs", "expected_jobs", "complete"]
    for name in quantities:
        header += [f"{name}.median", *(f"{name}.q{q:g}" for q in levels)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for group in groups:
        row: list[Any] = [group.label, *(group.settings[k] for k in knobs), len(group.jobs)]
        row += [group.expected, "yes" if group.complete else "no"]
        for name in quantities:
            values = np.array([job.end[name] for job in group.jobs], dtype=np.float64)
            if values.size == 0:
                row += [None] * (1 + len(levels))
                continue
            row += [np.quantile(values, 0.5), *np.quantile(values, levels)]
        writer.writerow([_cell(v) for v in row])
    with atomic_write(path, "w") as handle:
        handle.write(buffer.getvalue())
    return path
