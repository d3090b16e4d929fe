"""How a run ends when it cannot complete: Ctrl-C during set-up, divergence, a folder that
refuses files, a resume that fails before training. One clear line, the truthful status,
nothing already written lost, strict JSON."""

from __future__ import annotations

import shlex
import shutil

import pytest
import torch
from reliability_helpers import (
    SMALL_RUN,
    checkpoint_state,
    load_arrays,
    strict_json,
    train,
)

pytestmark = pytest.mark.slow


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("error: ")]


def test_ctrl_c_during_set_up_prints_one_line_and_exits_130(tmp_path):
    run_dir = tmp_path / "run"
    result = train([*SMALL_RUN, f"hydra.run.dir={run_dir}"], tmp_path, fault="setup=sigint")
    assert result.returncode == 130
    (line,) = result.stderr.strip().splitlines()
    message, command = line.split("; start again with: ")
    assert message == "interrupted by SIGINT during set-up: nothing was trained"
    assert shlex.split(command)[2:] == [*SMALL_RUN, f"hydra.run.dir={run_dir}"]  # as typed
    status = strict_json(run_dir / "status.json")
    assert status["status"] == "interrupted"


def test_divergence_stops_with_one_error_and_keeps_the_last_finite_state(tmp_path):
    run_dir = tmp_path / "run"
    args = [*SMALL_RUN, f"hydra.run.dir={run_dir}", "lr=1000", "spectral.every_n_steps=1"]
    result = train(args, tmp_path)
    assert result.returncode == 3, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result.stderr)
    assert line.startswith("error: loss became nan at step ") and "lower the learning rate" in line
    step = int(line.removeprefix("error: loss became nan at step ").split(":")[0])
    status = strict_json(run_dir / "status.json")
    assert status["status"] == "diverged" and status["global_step"] == step
    # the checkpoint holds finite parameters; every snapshot up to the divergence is kept
    state = checkpoint_state(run_dir)
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())
    steps = sorted(int(load_arrays(p)["step"]) for p in (run_dir / "spectra").glob("*.npz"))
    assert steps == list(range(step + 1))
    for path in run_dir.rglob("*.json"):
        strict_json(path)  # no NaN anywhere


def test_a_folder_that_cannot_be_created_is_refused_before_anything_runs(tmp_path):
    (tmp_path / "a_file").write_text("")
    result = train([*SMALL_RUN, f"hydra.run.dir={tmp_path / 'a_file' / 'run'}"], tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert error_lines(result.stderr) == [
        f"error: cannot write {tmp_path / 'a_file' / 'run'}: {tmp_path / 'a_file'} is not a folder"
    ]


@pytest.mark.parametrize(
    "fault, file, reason",
    [
        ("write:status.json=erofs", "status.json", "Read-only file system"),
        ("write:step_*.npz#3=enospc", "spectra/step_00000040.npz", "No space left on device"),
    ],
)
def test_a_write_refused_by_the_file_system_gives_one_error_naming_the_file(
    tmp_path, fault, file, reason
):
    run_dir = tmp_path / "run"
    result = train([*SMALL_RUN, f"hydra.run.dir={run_dir}"], tmp_path, fault=fault)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert error_lines(result.stderr) == [f"error: cannot write {run_dir / file}: {reason}"]
    if file.startswith("spectra/"):  # mid-run: the status says so; earlier files are intact
        status = strict_json(run_dir / "status.json")
        assert status["status"] == "failed" and file in status["error"]
        assert checkpoint_state(run_dir)["global_step"] == 25
        assert sorted(p.name for p in (run_dir / "spectra").iterdir()) == [
            "step_00000000.npz",
            "step_00000020.npz",
        ]


def test_a_resume_that_fails_before_training_leaves_a_completed_status_alone(
    tmp_path, reference_run
):
    """A resume that fails before training leaves the completed run's status.json, summary
    and checkpoint untouched."""
    run_dir = tmp_path / "run"
    shutil.copytree(reference_run, run_dir)
    before = {p: p.read_bytes() for p in (run_dir / "status.json", run_dir / "summary.json")}
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    ckpt_bytes = ckpt.read_bytes()
    # a checkpoint that does not fit while it is restored; a bad value found at set-up
    for bad in ("model.width=16", "batch_size=0"):
        result = train([f"ckpt_path={ckpt}", bad], tmp_path)
        assert result.returncode != 0
        for path, content in before.items():
            assert path.read_bytes() == content, (bad, path)
        assert ckpt.read_bytes() == ckpt_bytes


def test_a_diverged_job_of_a_sweep_lets_the_other_jobs_run(tmp_path):
    sweep = tmp_path / "sweep"
    result = train(
        ["-m", f"hydra.sweep.dir={sweep}", "lr=1000,0.1", *SMALL_RUN, "spectral.every_n_steps=60"],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(error_lines(result.stderr)) == 1 and "Traceback" not in result.stderr
    assert strict_json(sweep / "0" / "status.json")["status"] == "diverged"
    assert strict_json(sweep / "1" / "status.json")["status"] == "completed"
