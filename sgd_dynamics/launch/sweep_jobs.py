"""A sweep's jobs, from the sweep's own record: ``SWEEP_DIR/multirun.yaml``, which Hydra writes
when a sweep starts (``train.py -m ...``), before any job runs.

The record is read as data: plain YAML (no OmegaConf interpolation or resolver is evaluated, no
alias, at most `MAX_RECORD_BYTES`), and the jobs are expanded with Hydra's own basic sweeper
(`BasicSweeper.split_arguments`: the Cartesian product of the swept values, in the order of the
overrides), so that job N here is the job Hydra numbered N and ran in ``SWEEP_DIR/N`` with the
same overrides, in the same order, that Hydra wrote into ``SWEEP_DIR/N/.hydra/overrides.yaml``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.errors import HydraException, OverrideParseException

from sgd_dynamics.launch.overrides import check_replayed_overrides, parse_overrides
from sgd_dynamics.run_folder.location import MULTIRUN_MARKER
from sgd_dynamics.utils.errors import SetupError
from sgd_dynamics.utils.safe_files import MAX_BYTES, read_yaml

__all__ = [
    "MAX_JOBS",
    "MAX_RECORD_BYTES",
    "SweepJob",
    "SweepRecord",
    "expand_sweep",
    "load_plain_yaml",
    "read_sweep_record",
]

MAX_RECORD_BYTES = MAX_BYTES  # the limit of every file read from a folder (utils.safe_files)
MAX_JOBS = 100_000  # more jobs than any sweep of this project; a bound on the expansion
JOB_SUBDIR = "${hydra.job.num}"  # conf/train.yaml's hydra.sweep.subdir: SWEEP_DIR/<job number>
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


@dataclass(frozen=True)
class SweepJob:
    """Job `number` of a sweep: its `overrides` (as Hydra passed them to the job) and its
    `folder` (``SWEEP_DIR/<number>``)."""

    number: int
    overrides: tuple[str, ...]
    folder: Path


@dataclass(frozen=True)
class SweepRecord:
    """What a sweep's multirun.yaml says: its `jobs`, and its launcher (`launcher`: "basic" or
    "joblib"; `n_jobs`: the joblib launcher's ``n_jobs``, None for the basic one)."""

    sweep_dir: Path
    jobs: tuple[SweepJob, ...]
    launcher: str
    n_jobs: int | None


def _refuse(record: Path, problem: str) -> SetupError:
    return SetupError(f"{record}: {problem}")


def load_plain_yaml(path: Path) -> Any:
    """`path` as plain YAML data, read by `sgd_dynamics.utils.safe_files.read_yaml` (size, alias
    and depth limits; strings kept as written: ``${...}`` is not evaluated).

    Raises:
        FileRefused: a record over the limits or not readable YAML.
    """
    return read_yaml(path, "a sweep's multirun.yaml")


def _section(data: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        data = data.get(key) if isinstance(data, dict) else None
    return data


def expand_sweep(overrides: Sequence[str]) -> list[list[str]]:
    """The jobs of ``train.py -m OVERRIDES`` in Hydra's order, each job's override strings as
    Hydra's basic sweeper passes them to the job (`BasicSweeper.split_arguments`).

    Raises:
        SetupError: an override Hydra's grammar refuses, a sweep the basic sweeper cannot
            expand without the config (``glob``) or refuses (intervals), or more than
            `MAX_JOBS` jobs.
    """
    try:
        parsed = parse_overrides(overrides)
    except OverrideParseException as exc:
        raise SetupError(f"the sweep's overrides cannot be parsed: {exc}") from None
    count = 1
    for override in parsed:
        if override.is_sweep_override() and override.is_discrete_sweep():
            try:
                size = sum(1 for _ in itertools.islice(override.sweep_string_iterator(), MAX_JOBS))
            except HydraException as exc:
                raise SetupError(
                    f"cannot expand {override.input_line!r}: {exc} (resume expands the values a "
                    "sweep lists, ranges and choices; not glob(...))"
                ) from None
            count *= max(size, 1)
            if count > MAX_JOBS:
                raise SetupError(f"the sweep has more than {MAX_JOBS} jobs")
    try:
        batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    except HydraException as exc:
        raise SetupError(f"the sweep's overrides cannot be expanded: {exc}") from None
    return [list(job) for batch in batches for job in batch]


def read_sweep_record(sweep_dir: str | os.PathLike, check_overrides: bool = True) -> SweepRecord:
    """The jobs and launcher of the sweep in `sweep_dir`, from its multirun.yaml (see the module
    docstring). With `check_overrides` (needed before any job is run from the record; a report
    only reads it), every job's overrides must pass `check_replayed_overrides`, as a resumed
    run's do.

    Raises:
        SetupError: no sweep folder or no record; a record this project's sweeps do not
            write (another sweeper, another ``hydra.sweep.subdir``, a launcher other than the
            basic and joblib ones, see `read_launcher`); overrides that are refused.
    """
    sweep_dir = Path(sweep_dir).absolute()
    record = sweep_dir / MULTIRUN_MARKER
    if not sweep_dir.is_dir():
        raise SetupError(f"{sweep_dir} is not a folder: give the folder of a sweep")
    if not record.is_file():
        raise SetupError(
            f"{sweep_dir} holds no {MULTIRUN_MARKER}: not the folder of a sweep "
            "(train.py -m writes it into outputs/multirun/<date>_<time>_<id>/)"
        )
    data = load_plain_yaml(record)
    task = _section(data, "hydra.overrides.task")
    if not isinstance(task, list) or not all(isinstance(o, str) for o in task):
        raise _refuse(record, "hydra.overrides.task is not a list of overrides")
    sweeper = _section(data, "hydra.sweeper") or {}
    if not isinstance(sweeper, dict) or sweeper.get("_target_") != BASIC_SWEEPER:
        raise _refuse(record, "the sweep did not use Hydra's basic sweeper, the one resume knows")
    params = sweeper.get("params") or {}
    if not isinstance(params, dict):
        raise _refuse(record, "hydra.sweeper.params is not a mapping")
    subdir = _section(data, "hydra.sweep.subdir")
    if subdir != JOB_SUBDIR:
        raise _refuse(
            record,
            f"hydra.sweep.subdir is {subdir!r}; resume knows sweeps whose jobs are in "
            f"SWEEP_DIR/<job number> (hydra.sweep.subdir={JOB_SUBDIR})",
        )
    launcher, n_jobs = read_launcher(record, _section(data, "hydra.launcher"))
    expanded = expand_sweep([*(f"{k}={v}" for k, v in params.items()), *task])
    for overrides in expanded if check_overrides else ():
        check_replayed_overrides(overrides, record)
    jobs = tuple(
        SweepJob(number, tuple(overrides), sweep_dir / str(number))
        for number, overrides in enumerate(expanded)
    )
    return SweepRecord(sweep_dir, jobs, launcher, n_jobs)


def read_launcher(record: Path, launcher: Any) -> tuple[str, int | None]:
    """("basic", None) or ("joblib", n_jobs) from the record's ``hydra.launcher`` section.

    Raises:
        SetupError: another launcher (submitit's: resume the jobs where the sweep ran them, one
            by one, with ``train.py ckpt_path=SWEEP_DIR/N/checkpoints/last.ckpt``), or a joblib
            ``n_jobs`` that is not an integer.
    """
    target = launcher.get("_target_") if isinstance(launcher, dict) else None
    if target == BASIC_LAUNCHER:
        return "basic", None
    if target == JOBLIB_LAUNCHER:
        n_jobs = launcher.get("n_jobs")
        if not isinstance(n_jobs, int) or isinstance(n_jobs, bool):
            raise _refuse(record, f"hydra.launcher.n_jobs={n_jobs!r} is not an integer")
        return "joblib", n_jobs
    raise _refuse(
        record,
        f"the sweep ran its jobs with {target!r}; resume runs them on this machine with the "
        "basic or joblib launcher only. Resume each unfinished job where the sweep ran it, with "
        "train.py ckpt_path=SWEEP_DIR/<job>/checkpoints/last.ckpt",
    )
