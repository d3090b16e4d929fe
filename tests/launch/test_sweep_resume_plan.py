"""What ``sgd-dynamics resume`` does with each job of a crafted sweep folder, and what the
report says about the same folder: dead jobs (``running`` with no live process), jobs in use
(a live process holds the lock), missing jobs, damaged summaries, incomplete groups."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from store_plots.snapshot_factory import dense_snapshot
from test_sweep_jobs import write_record

from sgd_dynamics import cli
from sgd_dynamics.launch.sweep_jobs import read_sweep_record
from sgd_dynamics.launch.sweep_resume import JobAction, job_command, plan_resume
from sgd_dynamics.lifecycle.run_state import RunState, view_run
from sgd_dynamics.run_folder.snapshots import save_snapshot

TASK = ["logger=none", "seed=0,1", "batch_size=5,50"]  # jobs 0..3: (0, 5) (0, 50) (1, 5) (1, 50)


def job_folder(sweep: Path, number: int, status: dict | None, checkpoint: bool) -> Path:
    """SWEEP/<number> with the job's overrides.yaml, `status` and maybe a checkpoint."""
    record = read_sweep_record(sweep)
    folder = sweep / str(number)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump(list(record.jobs[number].overrides))
    )
    if status is not None:
        (folder / "status.json").write_text(json.dumps(status))
    if checkpoint:
        (folder / "checkpoints").mkdir()
        (folder / "checkpoints" / "last.ckpt").write_bytes(b"stand-in")
    return folder


def snapshot(step: int) -> dict[str, np.ndarray]:
    return dense_snapshot(step, np.random.default_rng(step))


def digest(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """Job 0 completed with snapshots, job 1 dead with a checkpoint, job 2 dead without one,
    job 3 missing."""
    sweep = write_record(tmp_path / "sweep", TASK)
    done = job_folder(sweep, 0, {"status": "completed"}, checkpoint=True)
    (done / "summary.json").write_text(json.dumps({"train_loss": 0.1}))
    for step in (0, 10):
        save_snapshot(done, snapshot(step))
    job_folder(sweep, 1, {"status": "running", "pid": 2**22 + 1, "host": "elsewhere"}, True)
    job_folder(sweep, 2, {"status": "running"}, checkpoint=False)
    return sweep


def test_each_job_gets_the_action_its_folder_calls_for(sweep):
    record = read_sweep_record(sweep)
    plan = plan_resume(record)
    assert [(p.view.state, p.action) for p in plan] == [
        (RunState.COMPLETED, JobAction.KEEP),
        (RunState.DEAD, JobAction.RESUME),
        (RunState.DEAD, JobAction.START),
        (RunState.MISSING, JobAction.START),
    ]
    script = Path("train.py")
    resume = job_command(plan[1], record, script)
    assert resume[2:] == [f"ckpt_path='{sweep.absolute() / '1' / 'checkpoints' / 'last.ckpt'}'"]
    start = job_command(plan[3], record, script)
    assert start[2:] == [*record.jobs[3].overrides, f"hydra.run.dir='{sweep.absolute() / '3'}'"]


def test_a_job_in_use_stops_the_command_before_anything_changes(sweep, capsys):
    code = (
        "import sys, time; from sgd_dynamics.lifecycle.run_lock import acquire_run_lock; "
        "acquire_run_lock(sys.argv[1]); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(sweep / "1")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "held\n"
        assert view_run(sweep / "1").state is RunState.IN_USE
        before = digest(sweep)
        assert cli.main(["resume", str(sweep)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("sgd-dynamics resume: error: ")
        assert f"{sweep.absolute() / '1'} is in use by process {holder.pid}" in err
        assert digest(sweep) == before and not (sweep / "3").exists()
    finally:
        holder.kill()
        holder.wait()
    assert view_run(sweep / "1").state is RunState.DEAD  # its holder died: the lock is free


def test_a_running_job_without_a_lock_file_is_in_use_while_its_process_lives(sweep):
    status = {"status": "running", "pid": os.getpid(), "host": os.uname().nodename}
    (sweep / "2" / "status.json").write_text(json.dumps(status))
    view = view_run(sweep / "2")
    assert view.state is RunState.IN_USE and view.pid == os.getpid()
    (sweep / "2" / ".lock").write_text(f"{os.getpid()}\n")  # a lock file nobody holds
    assert view_run(sweep / "2").state is RunState.DEAD


def test_a_folder_holding_another_run_is_not_resumed_as_the_job(sweep, capsys):
    (sweep / "1" / ".hydra" / "overrides.yaml").write_text("- seed=7\n")
    assert cli.main(["resume", str(sweep), "--dry-run"]) == 2
    assert "holds a run with the overrides ['seed=7']" in capsys.readouterr().err


def test_the_dry_run_prints_the_plan_and_changes_nothing(sweep, capsys):
    before = digest(sweep)
    assert cli.main(["resume", str(sweep), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"sweep {sweep.absolute()}: 4 jobs, basic launcher"
    assert out[1] == f"job 0 ({sweep.absolute() / '0'}): completed; left as it is"
    assert out[2].startswith(f"job 1 ({sweep.absolute() / '1'}): dead (status running, no live")
    assert out[4] == f"job 3 ({sweep.absolute() / '3'}): missing; running it from the start"
    assert len(out) == 5 + 3  # and the three commands
    assert digest(sweep) == before


def test_the_report_names_dead_missing_and_damaged_jobs_and_incomplete_groups(sweep, caplog):
    # job 2 completed but its summary.json is damaged; job 1 dead; job 3 missing
    (sweep / "2" / "status.json").write_text(json.dumps({"status": "completed"}))
    (sweep / "2" / "summary.json").write_text('{"train_loss": 0.1')
    save_snapshot(sweep / "2", snapshot(0))
    from sgd_dynamics.report import report

    expected = cli._recorded_jobs(str(sweep))  # what `sgd-dynamics report` reads (no figures)
    assert expected == {str(j.number): list(j.overrides) for j in read_sweep_record(sweep).jobs}
    with caplog.at_level(logging.INFO, logger="sgd_dynamics.report"):
        result = report(sweep, expected=expected)
    err = caplog.text
    assert "1 (dead (status running, no live process))" in err
    assert "2 (damaged summary.json (not a JSON object))" in err
    assert "3 (missing)" in err
    assert "4 jobs, 1 used in 1 groups, 3 skipped" in err
    assert (
        "incomplete groups: batch_size=5 (1 of 2 jobs; not used: 2 (damaged summary.json (not a "
        "JSON object))); batch_size=50 (0 of 2 jobs; not used: 1 (dead (status running, no live "
        "process)), 3 (missing))"
    ) in err
    with open(sweep / "report" / "groups.csv", newline="") as handle:
        rows = {row["group"]: row for row in csv.DictReader(handle)}
    assert rows["batch_size=5"]["n_jobs"] == "1" and rows["batch_size=5"]["complete"] == "no"
    assert rows["batch_size=5"]["expected_jobs"] == "2"
    assert rows["batch_size=50"]["n_jobs"] == "0" and rows["batch_size=50"]["complete"] == "no"
    assert rows["batch_size=50"]["hf_top_1.median"] == ""
    assert result.title.splitlines()[1] == (
        "incomplete groups: batch_size=5 (1 of 2 jobs); batch_size=50 (0 of 2 jobs)"
    )
    with open(sweep / "report" / "jobs.csv", newline="") as handle:
        jobs = {row["job"]: row for row in csv.DictReader(handle)}
    assert [jobs[j]["status"] for j in "0123"] == ["completed", "dead", "completed", "missing"]
    assert jobs["3"]["batch_size"] == "50" and jobs["3"]["used"] == "no"


def test_a_complete_sweep_gives_complete_groups(sweep):
    from sgd_dynamics.report import report

    for number in (1, 2, 3):
        folder = sweep / str(number)
        if not folder.exists():
            job_folder(sweep, number, None, checkpoint=False)
        (folder / "status.json").write_text(json.dumps({"status": "completed"}))
        for step in (0, 10):
            save_snapshot(folder, snapshot(step))
    expected = {str(j.number): list(j.overrides) for j in read_sweep_record(sweep).jobs}
    result = report(sweep, expected=expected)
    assert [g.complete for g in result.groups] == [True, True] and result.unused == []
    assert "incomplete" not in result.title


FAKE_TRAIN = """\
import json, sys
from pathlib import Path

args = sys.argv[1:]
ckpt = [a.split("=", 1)[1].strip("'") for a in args if a.startswith("ckpt_path=")]
run = [a.split("=", 1)[1].strip("'") for a in args if a.startswith("hydra.run.dir=")]
folder = Path(ckpt[0]).parent.parent if ckpt else Path(run[0])
folder.mkdir(parents=True, exist_ok=True)
with open(folder.parent / "launched.txt", "a") as log:
    log.write(json.dumps([folder.name, args]) + "\\n")
code = int({codes!r}.get(folder.name, 0))
status = "completed" if code == 0 else "interrupted"
(folder / "status.json").write_text(json.dumps({{"status": status}}))
sys.exit(code)
"""


def run_with_fake_train(sweep: Path, tmp_path: Path, codes: dict[str, int]):
    from sgd_dynamics.launch.sweep_resume import run_planned_jobs

    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAIN.format(codes=codes))
    record = read_sweep_record(sweep)
    lines: list[str] = []
    results = run_planned_jobs(plan_resume(record), record, lines.append, script)
    launched = [json.loads(line) for line in (sweep / "launched.txt").read_text().splitlines()]
    return results, launched, lines


def test_the_runner_runs_the_unfinished_jobs_in_order_and_moves_a_folder_without_checkpoint(
    sweep, tmp_path
):
    before = digest(sweep / "0")
    results, launched, lines = run_with_fake_train(sweep, tmp_path, {})
    assert results == {1: 0, 2: 0, 3: 0}
    assert [name for name, _ in launched] == ["1", "2", "3"]
    record = read_sweep_record(sweep)
    assert launched[2][1] == [
        *record.jobs[3].overrides,
        f"hydra.run.dir='{sweep.absolute() / '3'}'",
    ]
    assert digest(sweep / "0") == before
    (moved,) = (sweep / ".replaced").iterdir()  # job 2's folder, without checkpoint
    assert moved.name.startswith("2-") and (moved / ".hydra" / "overrides.yaml").is_file()
    assert json.loads((moved / "status.json").read_text()) == {"status": "running"}
    assert f"job 2: its folder had no checkpoint; moved to {moved}" in lines
    assert "job 3: ended with exit status 0 (completed)" in lines
    assert all(view_run(sweep / str(n)).state is RunState.COMPLETED for n in range(4))


def test_an_interrupted_job_stops_the_jobs_not_yet_started(sweep, tmp_path):
    results, launched, _ = run_with_fake_train(sweep, tmp_path, {"1": 130})
    assert results == {1: 130} and [name for name, _ in launched] == ["1"]
    assert not (sweep / "3").exists()


def test_a_joblib_sweep_runs_its_jobs_with_its_launcher_settings(tmp_path):
    from sgd_dynamics.launch.sweep_jobs import JOBLIB_LAUNCHER
    from sgd_dynamics.launch.sweep_resume import workers

    joblib = {"_target_": JOBLIB_LAUNCHER, "n_jobs": 2}
    record = read_sweep_record(write_record(tmp_path / "s", TASK, launcher=joblib))
    (planned, *_) = plan_resume(record)
    command = job_command(planned, record, Path("train.py"))
    assert command[-3:-1] == ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    assert workers(record) == 2


SLEEPING_TRAIN = """\
import json, signal, sys, time
from pathlib import Path

ckpt = [a.split("=", 1)[1].strip("'") for a in sys.argv[1:] if a.startswith("ckpt_path=")]
folder = Path(ckpt[0]).parent.parent
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
(folder.parent / "started").write_text(folder.name)
time.sleep(60)
"""


def test_sigterm_to_the_command_reaches_the_running_job_and_starts_no_other(sweep, tmp_path):
    import signal
    import threading

    from sgd_dynamics.launch.sweep_resume import run_planned_jobs

    script = tmp_path / "sleeping_train.py"
    script.write_text(SLEEPING_TRAIN)
    record = read_sweep_record(sweep)

    def terminate_once_started() -> None:
        for _ in range(600):
            if (sweep / "started").exists():
                os.kill(os.getpid(), signal.SIGTERM)
                return
            threading.Event().wait(0.05)

    before = signal.getsignal(signal.SIGTERM)
    threading.Thread(target=terminate_once_started, daemon=True).start()
    results = run_planned_jobs(plan_resume(record), record, lambda line: None, script)
    assert results == {1: 143}
    assert (sweep / "started").read_text() == "1" and not (sweep / "3").exists()
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back
