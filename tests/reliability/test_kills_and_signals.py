"""A run killed (SIGKILL) at six moments, or stopped by SIGINT / SIGTERM, and resumed each
time with the command it printed, ends exactly as the uninterrupted run: same snapshots,
summary and parameters, bit for bit on CPU. The moments are chosen by the test-only fault
hook (sgd_dynamics.lifecycle.faults), so they are the same on any machine."""

from __future__ import annotations

import shlex
import signal

import numpy as np
import pytest
from reliability_helpers import (
    SMALL_RUN,
    STEPS_PER_EPOCH,
    assert_same_results,
    checkpoint_state,
    load_arrays,
    resume_command,
    strict_json,
    train,
)

pytestmark = pytest.mark.slow

# (fault, what it interrupts): each attempt resumes from the last checkpoint of the one before
KILLS = [
    ("step:10=kill", "training, before the first periodic checkpoint (resume from step 0)"),
    ("write:last.ckpt#2=kill", "the checkpoint write at step 50"),
    ("write:step_*.npz#2=kill", "the snapshot write at step 60"),
    ("write:status.json=kill", "the status write when the resumed run starts"),
    ("write:summary.json=kill", "the summary write at the end"),
    ("figures=kill", "drawing the figures"),
]


def assert_files_intact(run_dir) -> None:
    """last.ckpt (when present) is a whole checkpoint; every snapshot file loads."""
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if ckpt.exists():
        assert ckpt.stat().st_size > 0
        assert "state_dict" in checkpoint_state(run_dir)
    for path in (run_dir / "spectra").glob("step_*.npz"):
        assert load_arrays(path)["step"] == int(path.stem.removeprefix("step_"))


def test_sigkill_at_six_moments_then_resume_equals_the_uninterrupted_run(tmp_path, reference_run):
    run_dir = tmp_path / "run"
    command = None
    for fault, moment in KILLS:
        result = train([*SMALL_RUN, f"hydra.run.dir={run_dir}"], tmp_path, fault, command)
        assert result.returncode == -signal.SIGKILL, (moment, result.stderr[-3000:])
        command = command or resume_command(result)
        assert_files_intact(run_dir)
    final = train([], tmp_path, command=command)
    assert final.returncode == 0, final.stderr[-3000:]
    assert strict_json(run_dir / "status.json")["status"] == "completed"
    assert_files_intact(run_dir)
    assert_same_results(run_dir, reference_run)
    assert sorted(p.name for p in (run_dir / "figures").iterdir()) == [
        "alignment.png",
        "full_spectra.png",
        "training.png",
    ]
    assert not list(run_dir.rglob(".*.tmp"))  # no temporary file left behind


def test_sigint_then_sigterm_stop_after_the_step_and_resume_continues_exactly(
    tmp_path, reference_run
):
    """SIGINT at step 70, resume, SIGTERM at step 100, resume: each stop finishes its step,
    writes the checkpoint, records "interrupted", prints the resume command and exits with
    128 + signal number; the run then ends as the uninterrupted one, with the epoch defined
    as global_step // steps per epoch in every record."""
    run_dir = tmp_path / "run"
    command = None
    for name, step, code in (("sigint", 70, 130), ("sigterm", 100, 143)):
        args = [*SMALL_RUN, f"hydra.run.dir={run_dir}", "logger=csv"]
        stopped = train(args, tmp_path, fault=f"step:{step}={name}", command=command)
        assert stopped.returncode == code, stopped.stderr[-3000:]
        assert "Traceback" not in stopped.stderr
        assert f"interrupted by {name.upper()} at step {step}" in stopped.stderr
        printed = [ln for ln in stopped.stderr.splitlines() if ln.startswith("resume with: ")]
        assert len(printed) == 1
        command = command or resume_command(stopped)
        assert shlex.split(printed[0].removeprefix("resume with: ")) == command
        status = strict_json(run_dir / "status.json")
        assert status["status"] == "interrupted" and status["global_step"] == step
        assert checkpoint_state(run_dir)["global_step"] == step  # the finished step

    resumed = train([], tmp_path, command=command)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_results(run_dir, reference_run)

    assert strict_json(run_dir / "summary.json")["epoch"] == 120 // STEPS_PER_EPOCH
    for path in (run_dir / "spectra").glob("step_*.npz"):
        arrays = load_arrays(path)
        assert arrays["epoch"] == arrays["step"] // STEPS_PER_EPOCH
    # 3 segments, one CSV file: every step once, its epoch = step // steps per epoch
    rows = np.genfromtxt(run_dir / "csv" / "metrics.csv", delimiter=",", names=True)
    train_rows = rows[~np.isnan(rows["trainloss"])]
    steps = train_rows["step"].astype(int).tolist()
    assert sorted(steps) == list(range(120))  # the steps before each stop included
    np.testing.assert_array_equal(train_rows["epoch"], train_rows["step"] // STEPS_PER_EPOCH)
    last = rows[~np.isnan(rows["epoch"])][-1]  # the final/* row of the last segment
    assert last["step"] == 120 and last["epoch"] == 120 // STEPS_PER_EPOCH
