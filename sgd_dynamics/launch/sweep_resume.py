"""``sgd-dynamics resume SWEEP_DIR``: complete a sweep that did not end (a killed process, a
machine that went down), running only what is missing.

The sweep's jobs come from its own record (`sgd_dynamics.launch.sweep_jobs`); each job's
folder decides what happens to it (`plan_resume`):

- finished (``completed``, or ``diverged``: an end that running it again would repeat): left
  untouched, not a byte of its folder changed;
- unfinished with its checkpoint (``dead``, ``interrupted``, ``failed``, no status): resumed
  from ``SWEEP_DIR/N/checkpoints/last.ckpt`` with its own overrides, as
  ``train.py ckpt_path=...`` resumes a run;
- no folder, or a folder without a checkpoint: run from the start, with its overrides, into
  ``SWEEP_DIR/N`` (a folder without a checkpoint is first moved to
  ``SWEEP_DIR/.replaced/N-<time>``, so that the new run starts from an empty folder);
- in use by a live process: the command refuses to start, naming the folder and the process.

Each job runs as ``train.py`` in its own process, in the job's folder, so everything that
depends on the sweep is what the uninterrupted sweep would have had: the wandb group (the
sweep folder's name) and run name (``<sweep>/<N>``), the job number and folder. With the joblib
launcher, the jobs run up to ``n_jobs`` at a time, and each job is told the launcher so that
``threads=auto`` gives it the threads it had in the sweep; with the basic launcher, one after
the other, in job order.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from sgd_dynamics.launch.overrides import override_key, parse_overrides
from sgd_dynamics.launch.sweep_jobs import SweepJob, SweepRecord, load_plain_yaml
from sgd_dynamics.lifecycle.run_state import RunState, RunView, view_run
from sgd_dynamics.threads.cpus import machine_limits
from sgd_dynamics.threads.policy import joblib_workers
from sgd_dynamics.utils.errors import SetupError

__all__ = [
    "JobAction",
    "PlannedJob",
    "hydra_quoted",
    "job_command",
    "plan_resume",
    "run_planned_jobs",
    "train_script",
]

REPLACED_DIRNAME = ".replaced"  # where a job folder without a checkpoint is moved aside
INTERRUPTED_EXIT_CODES = (128 + signal.SIGINT, 128 + signal.SIGTERM)


class JobAction(str, Enum):
    KEEP = "keep"  # finished: untouched
    RESUME = "resume"  # from its own checkpoints/last.ckpt
    START = "start"  # from the start, into its folder


@dataclass(frozen=True)
class PlannedJob:
    """What resume does with one job of the sweep, and why (`view`: its folder now)."""

    job: SweepJob
    view: RunView
    action: JobAction

    def describe(self) -> str:
        """``job 2 (SWEEP_DIR/2): dead (status running, no live process); resuming from
        its checkpoint``."""
        what = {
            JobAction.KEEP: "left as it is",
            JobAction.RESUME: f"resuming from {self.view.checkpoint}",
            JobAction.START: "running it from the start",
        }[self.action]
        where = f"job {self.job.number} ({self.job.folder})"
        return f"{where}: {self.view.describe()}; {what}"


def train_script() -> Path:
    """The project's ``train.py`` (beside the ``sgd_dynamics`` package, in a source checkout).

    Raises:
        SetupError: the package is installed without its project folder.
    """
    import sgd_dynamics

    script = Path(sgd_dynamics.__file__).resolve().parents[1] / "train.py"
    if not script.is_file():
        raise SetupError(
            f"cannot find train.py beside the sgd_dynamics package ({script}): resume runs the "
            "project's train.py, install the project from its source folder"
        )
    return script


def hydra_quoted(text: str) -> str:
    """`text` as a quoted value of Hydra's override grammar (single quotes; a quote and the
    backslashes before a quote or the end escaped).

    Raises:
        SetupError: `text` holds ``${``, which OmegaConf would read as an interpolation.
    """
    if "${" in text:
        raise SetupError(f"{text}: a path holding '${{' cannot be passed to Hydra; rename it")
    quoted, backslashes = [], 0
    for char in text:
        if char == "\\":
            backslashes += 1
            continue
        if char == "'":
            quoted.append("\\" * (2 * backslashes) + "\\'")
        else:
            quoted.append("\\" * backslashes + char)
        backslashes = 0
    quoted.append("\\" * (2 * backslashes))
    return "'" + "".join(quoted) + "'"


def _own_overrides(folder: Path) -> list[str] | None:
    """The folder's ``.hydra/overrides.yaml`` without ``ckpt_path`` (a resumed job's gains it),
    or None when the folder has none."""
    path = folder / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    data = load_plain_yaml(path)
    if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
        raise SetupError(f"{path}: not a list of overrides")
    try:
        parsed = parse_overrides(data)
    except Exception as exc:  # Hydra's grammar: a folder's file is data, its error ours
        raise SetupError(f"{path}: cannot be parsed ({' '.join(str(exc).split())})") from None
    return [text for text, o in zip(data, parsed, strict=True) if override_key(o) != "ckpt_path"]


def plan_resume(record: SweepRecord) -> list[PlannedJob]:
    """What to do with each job of `record` (see the module docstring).

    Raises:
        SetupError: a job folder in use by a live process (``<folder> is in use by process N:
            wait for it to end, or stop it first``), or an unfinished job's folder holding a
            run with other overrides than the job's in the sweep's record.
    """
    plan = []
    for job in record.jobs:
        view = view_run(job.folder)
        if view.state is RunState.IN_USE:
            who = f"process {view.pid}" if view.pid and view.pid > 0 else "another process"
            raise SetupError(
                f"{job.folder} is in use by {who}: wait for it to end, or stop it first "
                "(a job is never run twice at once)"
            )
        if view.state.finished:
            plan.append(PlannedJob(job, view, JobAction.KEEP))
            continue
        own = _own_overrides(job.folder) if view.state is not RunState.MISSING else None
        if own is not None and own != list(job.overrides):
            raise SetupError(
                f"{job.folder} holds a run with the overrides {own}, not those of job "
                f"{job.number} in {record.sweep_dir / 'multirun.yaml'} ({list(job.overrides)}): "
                "move it away to run the sweep's job there"
            )
        resumable = view.checkpoint is not None and own is not None
        plan.append(PlannedJob(job, view, JobAction.RESUME if resumable else JobAction.START))
    return plan


def job_command(planned: PlannedJob, record: SweepRecord, script: Path) -> list[str]:
    """The ``python train.py ...`` command line that resumes or starts `planned`'s job."""
    launcher = []
    if record.launcher == "joblib":  # threads=auto divides the CPUs among the workers
        launcher = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={record.n_jobs}"]
    job = planned.job
    if planned.action is JobAction.RESUME:
        ckpt = f"ckpt_path={hydra_quoted(str(planned.view.checkpoint))}"
        return [sys.executable, str(script), ckpt, *launcher]
    folder = f"hydra.run.dir={hydra_quoted(str(job.folder))}"
    return [sys.executable, str(script), *job.overrides, *launcher, folder]


def _move_aside(folder: Path, sweep_dir: Path) -> Path:
    """Move a job folder without a checkpoint to ``SWEEP_DIR/.replaced/<N>-<time>``."""
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    target = sweep_dir / REPLACED_DIRNAME / f"{folder.name}-{stamp}"
    suffix = 1
    while target.exists():
        suffix += 1
        target = target.with_name(f"{folder.name}-{stamp}-{suffix}")
    target.parent.mkdir(exist_ok=True)
    folder.rename(target)
    return target


def workers(record: SweepRecord) -> int:
    """Jobs run at once: the joblib launcher's worker count (joblib's rule for `n_jobs`), 1 for
    the basic launcher."""
    if record.launcher != "joblib":
        return 1
    limits = machine_limits()
    cpus = min(limit.cpus for limit in limits) if limits else (os.cpu_count() or 1)
    return joblib_workers(record.n_jobs, cpus)


def run_planned_jobs(
    plan: Sequence[PlannedJob],
    record: SweepRecord,
    say: Callable[[str], None],
    script: Path | None = None,
) -> dict[int, int]:
    """Run every job of `plan` that is not kept, with the sweep's launcher (`workers` at once,
    in job order), printing a line when each starts and ends. A job that ends interrupted (a
    signal: Ctrl-C reaches the jobs too) stops the launching of jobs not yet started; a job
    that fails does not. Returns job number -> exit status of the jobs that ran.
    """
    script = script or train_script()
    todo = [p for p in plan if p.action is not JobAction.KEEP]
    stop = threading.Event()
    results: dict[int, int] = {}
    running: dict[int, subprocess.Popen] = {}
    lock = threading.Lock()

    def run_one(planned: PlannedJob) -> None:
        if stop.is_set():
            return
        number = planned.job.number
        if planned.action is JobAction.START and planned.job.folder.exists():
            moved = _move_aside(planned.job.folder, record.sweep_dir)
            say(f"job {number}: its folder had no checkpoint; moved to {moved}")
        verb = "resuming" if planned.action is JobAction.RESUME else "starting"
        say(f"job {number}: {verb} ({planned.job.folder})")
        with lock:
            if stop.is_set():
                return
            process = subprocess.Popen(job_command(planned, record, script))
            running[planned.job.number] = process
        code = process.wait()
        with lock:
            running.pop(planned.job.number, None)
            results[planned.job.number] = code
        if code in INTERRUPTED_EXIT_CODES:
            stop.set()
        state = view_run(planned.job.folder).describe()
        say(f"job {number}: ended with exit status {code} ({state})")

    def forward(signum: int, frame: object) -> None:  # SIGTERM to this command: to the jobs too
        stop.set()
        with lock:
            for process in running.values():
                process.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    pool = ThreadPoolExecutor(max_workers=workers(record))
    try:
        for future in [pool.submit(run_one, p) for p in todo]:
            future.result()
    except KeyboardInterrupt:  # the jobs got the same SIGINT: they write their checkpoints
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        signal.signal(signal.SIGTERM, previous)
    return results
