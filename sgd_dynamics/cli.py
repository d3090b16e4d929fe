"""The ``sgd-dynamics`` command: redraw a run's figures, report on a sweep, complete a sweep.

Also runnable as ``python -m sgd_dynamics.cli``. Exit codes: 0 success, 1 a sweep with no
usable job (the CSV is still written) or, for ``resume``, a job that did not complete, 2 bad
input (not a run / sweep folder, no snapshots, bad arguments, a job in use) with a one-line
message on stderr, 130 ``resume`` stopped by Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

PLOT_HELP = """\
Redraw a run's figures from its stored snapshots alone (RUN_DIR/spectra/step_*.npz):
alignment.png (figure 2: principal-angle cosines and top-k eigenvalues of H_f and M over
training steps) always, full_spectra.png (figure 1: all eigenvalues of H_f, M and H_p at a
few steps) when the snapshots hold full spectra (dense method), and spectral_densities.png
(figure 1 at any scale: the densities of H_f, M and H_p at a few steps and W1(H_p, -H_f) over
training) when they hold spectral densities. Files are written atomically
into RUN_DIR/figures/ (or --out) and their paths printed."""

REPORT_HELP = """\
Report on a Hydra multirun folder (SWEEP_DIR/<job>/ with .hydra/, status.json, summary.json,
spectra/). Jobs are grouped by the overrides that differ between them, seeds and hydra.* keys
ignored (or by --by KEY ...). Failed, running and dead jobs (status running, no live process),
jobs with a damaged summary.json or without snapshots are listed and skipped; the jobs that
SWEEP_DIR/multirun.yaml lists but that have no folder are listed as missing, and a group with
fewer used jobs than the sweep has is named incomplete (in the log, groups.csv and the
figures). Writes into SWEEP_DIR/report/ (or --out): jobs.csv (one row per job: overrides,
status, final train/test loss and accuracy, end-of-training spectral summary), bands.csv and
alignment_bands.png (per group, the median and quantile bands across seeds of the mean top-10
cosine, the number of top-10 cosines above 0.9, and the top eigenvalues of H_f and M, on a
common step grid: the jobs' shared steps, else their union within the range all jobs cover with
linear interpolation in log(step + 1)), comparison.png (end-of-training values against each
swept knob) and groups.csv (per group, median and quantiles of the end-of-training values).
When the jobs logged to wandb (a wandb logger in their .hydra/config.yaml), the report is also
logged as a wandb run named <sweep>/report in the jobs' group <sweep>, offline by default, into
SWEEP_DIR/report/wandb/ (upload later with `wandb sync`)."""

RESUME_HELP = """\
Complete a sweep (a Hydra multirun folder, SWEEP_DIR/multirun.yaml) that did not end: its jobs
are read from the sweep's own record and expanded as Hydra's basic sweeper does (job numbers and
overrides as Hydra gave them). A finished job (completed, or diverged) is left untouched; an
unfinished one (dead, interrupted, failed) with a checkpoint is resumed from its own
SWEEP_DIR/N/checkpoints/last.ckpt; a missing job, or one without a checkpoint, is run from the
start into SWEEP_DIR/N (a folder without a checkpoint is first moved to SWEEP_DIR/.replaced/).
Each job runs `train.py` in its own folder, so its wandb group and name, number and folder are
those of the uninterrupted sweep; jobs run with the sweep's launcher (basic: one after the
other; joblib: n_jobs at a time). A job folder in use by a live process stops the command before
anything runs. Ends with the sweep's "Sweep outputs:" and "Report:" lines; exit status 1 when a
job did not complete (run the command again)."""


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line: ``sgd-dynamics plot: error: <message>`` and exit
    status 2 (no usage block; ``--help`` shows it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def _integer(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= `low` (the config schema's wording)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"an integer >= {low}, got {text!r}")
        return value

    return parse


def _fraction(text: str) -> float:
    """An argparse type: a finite number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # false for nan
        raise argparse.ArgumentTypeError(f"a number in [0, 1], got {text!r}")
    return value


def _output_folder(text: str) -> str:
    """An argparse type: a folder the figures can be written into (existing, or creatable)."""
    from sgd_dynamics.run_folder.location import unwritable_output

    if not text.strip():
        raise argparse.ArgumentTypeError("a folder, got ''")
    if (problem := unwritable_output(text)) is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def _command(sub, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """The sub-command `name` (`summary` in the list of commands, `description` in its help)."""
    return sub.add_parser(name, help=summary, description=description)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sgd-dynamics",
        description="Figures and reports from the spectral snapshots that sgd-dynamics runs store.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    plot = _command(sub, "plot", "redraw a run's figures from its snapshots", PLOT_HELP)
    plot.add_argument("run_dir", metavar="RUN_DIR", help="a run's output folder")
    steps_help = (
        "stored steps whose full spectra / densities figure 1 shows (default: 4 snapshots "
        "from the first to the last, spread evenly in log(train loss), else in log(step + 1))"
    )
    plot.add_argument("--steps", type=_integer(0), nargs="+", metavar="STEP", help=steps_help)
    plot.add_argument(
        "--out", type=_output_folder, metavar="DIR", help="output folder (default: RUN_DIR/figures)"
    )
    plot.add_argument(
        "--k",
        type=_integer(1),
        metavar="K",
        help="draw the top-K indices in figure 2 (default: all)",
    )

    rep = _command(sub, "report", "figures and a CSV table from a sweep's jobs", REPORT_HELP)
    rep.add_argument("sweep_dir", metavar="SWEEP_DIR", help="a Hydra multirun folder")
    quantiles_help = (
        "quantile levels in [0, 1]; symmetric pairs become bands (default: 0.1 0.5 0.9)"
    )
    rep.add_argument(
        "--quantiles",
        type=_fraction,
        nargs="+",
        default=[0.1, 0.5, 0.9],
        metavar="Q",
        help=quantiles_help,
    )
    rep.add_argument(
        "--by",
        nargs="+",
        metavar="KEY",
        help="group by these config keys (e.g. batch_size dataset.label_noise) instead of the "
        "overrides that differ between jobs",
    )
    rep.add_argument(
        "--out",
        type=_output_folder,
        metavar="DIR",
        help="output folder (default: SWEEP_DIR/report)",
    )
    rep.add_argument("--top", type=_integer(1), default=10, help="cosines summarised (default: 10)")
    rep.add_argument(
        "--threshold",
        type=_fraction,
        default=0.9,
        help="cosine counted as aligned, in [0, 1] (default: 0.9)",
    )
    rep.add_argument(
        "--no-wandb",
        action="store_true",
        help="do not log the report to wandb even when the jobs used the wandb logger",
    )
    rep.add_argument(
        "--wandb-mode",
        choices=["offline", "online"],
        default="offline",
        help="wandb mode of the report run (default: offline; online needs `wandb login`)",
    )

    res = _command(sub, "resume", "complete a sweep's unfinished and missing jobs", RESUME_HELP)
    res.add_argument("sweep_dir", metavar="SWEEP_DIR", help="a Hydra multirun folder")
    res.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be done with each job, and the commands, and run nothing",
    )
    return parser


def _resume(args: argparse.Namespace) -> int:
    import shlex
    from pathlib import Path

    from sgd_dynamics.launch.sweep_jobs import read_sweep_record
    from sgd_dynamics.launch.sweep_outputs import report_command
    from sgd_dynamics.launch.sweep_resume import (
        JobAction,
        job_command,
        plan_resume,
        run_planned_jobs,
        train_script,
    )
    from sgd_dynamics.lifecycle.run_state import view_run
    from sgd_dynamics.utils.console import say

    record = read_sweep_record(args.sweep_dir)
    plan = plan_resume(record)
    script = train_script()
    total = len(record.jobs)
    say(f"sweep {record.sweep_dir}: {total} jobs, {record.launcher} launcher")
    for planned in plan:
        say(planned.describe())
    todo = [p for p in plan if p.action is not JobAction.KEEP]
    if args.dry_run:
        for planned in todo:
            say(shlex.join(job_command(planned, record, script)))
        return 0
    if not todo:
        say(f"all {total} jobs have ended: nothing to run")
    else:
        try:
            run_planned_jobs(plan, record, say, script)
        except KeyboardInterrupt:
            print("sgd-dynamics resume: interrupted; run it again to go on", file=sys.stderr)
            return 130
    sweep_dir = Path(record.sweep_dir).resolve()
    say(f"Sweep outputs: {sweep_dir}")
    say(f"Report: {report_command(sweep_dir)}")
    views = [view_run(job.folder) for job in record.jobs]
    unfinished = [f"{v.path.name} ({v.describe()})" for v in views if not v.state.finished]
    if unfinished:
        print(
            f"sgd-dynamics resume: {len(unfinished)} of {total} jobs have not ended: "
            f"{', '.join(unfinished)}; run `sgd-dynamics resume {shlex.quote(str(sweep_dir))}` "
            "again",
            file=sys.stderr,
        )
        return 1
    return 0


def _plot(args: argparse.Namespace) -> int:
    from sgd_dynamics.plots import draw_run_figures

    for path in draw_run_figures(args.run_dir, steps=args.steps, out_dir=args.out, k=args.k):
        print(path)
    return 0


def _recorded_jobs(sweep_dir: str) -> dict[str, list[str]] | None:
    """Job name -> overrides of every job in the sweep's record (SWEEP_DIR/multirun.yaml, see
    `sgd_dynamics.launch.sweep_jobs`), or None without a record this project's sweeps write
    (then the report knows the jobs by their folders only)."""
    from pathlib import Path

    from sgd_dynamics.run_folder.location import MULTIRUN_MARKER

    if not (Path(sweep_dir) / MULTIRUN_MARKER).is_file():
        return None
    from sgd_dynamics.launch.sweep_jobs import read_sweep_record
    from sgd_dynamics.utils.errors import SetupError

    try:
        record = read_sweep_record(sweep_dir, check_overrides=False)
    except SetupError as exc:
        logging.getLogger(__name__).warning("jobs known by their folders only: %s", exc)
        return None
    return {str(job.number): list(job.overrides) for job in record.jobs}


def _report(args: argparse.Namespace) -> int:
    from sgd_dynamics.report import report
    from sgd_dynamics.report.figures import draw_report_figures

    result = report(
        args.sweep_dir,
        args.quantiles,
        args.by,
        args.out,
        args.top,
        args.threshold,
        expected=_recorded_jobs(args.sweep_dir),
    )
    draw_report_figures(result)
    paths = [result.csv_path, result.bands_csv_path, result.groups_csv_path, *result.figure_paths]
    for path in paths:
        if path is not None:
            print(path)
    if result.included and not args.no_wandb:
        from sgd_dynamics.wandb_io.report_run import jobs_used_wandb, log_report_to_wandb

        if jobs_used_wandb(result.included):
            print(log_report_to_wandb(result, mode=args.wandb_mode))
    if not result.included:
        print(f"sgd-dynamics: no usable job in {args.sweep_dir}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sgd-dynamics`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # no font fallbacks
    try:
        commands = {"plot": _plot, "report": _report, "resume": _resume}
        return commands[args.command](args)
    except (ValueError, FileNotFoundError, NotADirectoryError) as exc:
        message = " ".join(str(exc).split())
        print(f"sgd-dynamics {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
