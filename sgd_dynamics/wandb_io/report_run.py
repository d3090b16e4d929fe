"""Log a sweep report to Weights & Biases as its own run in the sweep's group.

The jobs of a sweep log to wandb runs named ``<sweep>/<job>`` in group ``<sweep>`` (the sweep
folder's name, see `sgd_dynamics.run_folder.location`). The report becomes one more run of that
group, named ``<sweep>/report``, job type ``report``, holding the report figures as images and
the CSV tables (jobs, groups) as ``wandb.Table``. Offline by default: the run is written to
``REPORT_DIR/wandb/offline-run-*`` and can be uploaded later with ``wandb sync``. wandb is
imported only when a report is logged.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sgd_dynamics.report.records import Job, ReportResult
from sgd_dynamics.run_folder.location import sweep_name
from sgd_dynamics.wandb_io.environment import configure_wandb_environment

WANDB_MODES = ("offline", "online")
DEFAULT_PROJECT = "sgd-dynamics"


def _wandb_logger_config(job: Job) -> Mapping[str, Any] | None:
    """The wandb entry of a job's ``logger`` config group (a ``_target_`` naming wandb), or
    None when the job did not log to wandb."""
    loggers = (job.config or {}).get("logger")
    if not isinstance(loggers, Mapping):
        return None
    for name, entry in loggers.items():
        if isinstance(entry, Mapping) and (
            "wandb" in str(entry.get("_target_", "")).lower() or name == "wandb"
        ):
            return entry
    return None


def jobs_used_wandb(jobs: Sequence[Job]) -> bool:
    """Whether any job's resolved config (``.hydra/config.yaml``) has a wandb logger."""
    return any(_wandb_logger_config(job) is not None for job in jobs)


def wandb_project(jobs: Sequence[Job]) -> str:
    """The ``project`` of the jobs' wandb logger (the first job that names one), else
    ``sgd-dynamics``."""
    for job in jobs:
        entry = _wandb_logger_config(job)
        project = entry.get("project") if entry else None
        if isinstance(project, str) and project and "${" not in project:
            return project
    return DEFAULT_PROJECT


def report_group(result: ReportResult) -> str:
    """The wandb group of the sweep's jobs: the sweep folder's name (what ``sweep_name`` gives
    each job folder of a Hydra multirun), else the folder's name all the same."""
    for job in result.jobs:
        name = sweep_name(job.path)
        if name:
            return name
    return Path(result.sweep_dir).resolve().name


def _table(path: Path):
    """A ``wandb.Table`` of a CSV file: numbers as floats, empty cells as None."""
    import wandb

    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]

    def cell(text: str) -> Any:
        if text == "":
            return None
        try:
            return float(text)
        except ValueError:
            return text

    # a column is numeric when all its non-empty cells are numbers (wandb wants one type)
    numeric = [
        all(isinstance(cell(row[c]), (float, type(None))) for row in body)
        for c in range(len(header))
    ]
    data = [[cell(v) if numeric[c] else (v or None) for c, v in enumerate(row)] for row in body]
    return wandb.Table(columns=header, data=data)


def log_report_to_wandb(
    result: ReportResult,
    mode: str = "offline",
    project: str | None = None,
    group: str | None = None,
    name: str | None = None,
) -> Path:
    """Log ``result`` (from `sgd_dynamics.report.report`) as one wandb run and finish it.

    The run: name ``<group>/report``, group ``group`` (default: the sweep folder's name, the
    group the jobs used), project ``project`` (default: the jobs' wandb project), files under
    ``result.out_dir/wandb/``. Logged: each figure as ``report/<figure stem>`` (wandb.Image),
    ``report/jobs`` (jobs.csv) and ``report/groups`` (groups.csv) as ``wandb.Table``, and the
    report's settings (knobs, quantile levels, skipped jobs) as the run's config.

    ``mode`` is ``"offline"`` (default: no network, nothing prompts; sets ``WANDB_MODE=offline``
    in this process's environment unless wandb is disabled) or ``"online"`` (needs ``wandb
    login``). ``WANDB_SILENT``, ``WANDB_CONSOLE=off`` and ``WANDB_DISABLE_GIT`` are set unless
    already set (`sgd_dynamics.wandb_io.environment`). Returns the
    run's folder (``.../wandb/offline-run-*`` offline).
    """
    if mode not in WANDB_MODES:
        raise ValueError(f"wandb mode must be one of {WANDB_MODES}, got {mode!r}")
    configure_wandb_environment(offline=mode == "offline", disable_git=True)
    import wandb

    group = group or report_group(result)
    out_dir = Path(result.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "sweep_dir": str(Path(result.sweep_dir).resolve()),
        "knobs": list(result.knobs),
        "quantiles": list(result.levels),
        "n_jobs": len(result.jobs),
        "n_used": len(result.included),
        "skipped": [f"{job} ({reason})" for job, reason in result.skipped],
        "groups": [g.label for g in result.groups],
    }
    run = wandb.init(
        project=project or wandb_project(result.jobs),
        group=group,
        name=name or f"{group}/report",
        job_type="report",
        dir=str(out_dir),
        mode=mode,
        config=config,
        reinit="create_new",
        settings=wandb.Settings(
            silent=True, console="off", disable_git=True, save_code=False, x_disable_stats=True
        ),
    )
    try:
        logged: dict[str, Any] = {
            f"report/{path.stem}": wandb.Image(str(path)) for path in result.figure_paths
        }
        logged["report/jobs"] = _table(result.csv_path)
        if result.groups_csv_path is not None:
            logged["report/groups"] = _table(result.groups_csv_path)
        run.log(logged)
        run_dir = Path(run.dir).parent  # run.dir is <run folder>/files
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish()
    return run_dir
