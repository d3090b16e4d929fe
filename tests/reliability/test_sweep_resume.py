"""A 4-job sweep killed (SIGKILL) during its second job is completed by one command,
``sgd-dynamics resume SWEEP_DIR``: the finished job's folder is not changed by a byte, and every
job ends as in the same sweep run without interruption in another folder (snapshots, summary
and parameters, bit for bit on CPU). The uninterrupted sweep is also Hydra's own reference for
the job expansion: its jobs' ``.hydra/overrides.yaml`` are what `read_sweep_record` expands."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pipeline.pipeline_helpers import train_env
from reliability_helpers import REPO_ROOT, assert_same_results, train

from sgd_dynamics.launch.sweep_jobs import read_sweep_record

pytestmark = pytest.mark.slow

# Gauss-10, MLP 20-8-10, 30 steps: snapshots (dense, k = 5) and checkpoints every 10 steps.
# Two seeds x two batch sizes: jobs 0..3. Figures off (they take longer than the training).
SWEEP = [
    "logger=none",
    "model.width=8",
    "trainer.max_steps=30",
    "trainer.val_check_interval=10",
    "spectral.method=dense",
    "spectral.k=5",
    "spectral.log_points=null",
    "spectral.every_n_steps=10",
    "spectral.draw_at_end=false",
    "callbacks.checkpoint.every_n_steps=10",
    "callbacks.checkpoint.every_n_seconds=null",
    "callbacks.progress=null",
    "seed=0,1",
    "batch_size=5,10",
]
KILL_IN_SECOND_JOB = "step:15#2=kill"  # the basic launcher runs the jobs in one process


def sweep(cwd: Path, fault: str | None = None) -> tuple[subprocess.CompletedProcess, Path]:
    """``train.py -m SWEEP`` in `cwd`; the result and the sweep folder."""
    cwd.mkdir()
    result = train(["-m", *SWEEP, f"hydra.sweep.dir={cwd / 'sweep'}"], cwd=cwd, fault=fault)
    return result, cwd / "sweep"


def folder_digest(folder: Path) -> dict[str, tuple[str, int]]:
    """Relative path -> (sha256, mtime in ns) of every file under `folder`, hidden ones too."""
    return {
        str(path.relative_to(folder)): (
            hashlib.sha256(path.read_bytes()).hexdigest(),
            path.stat().st_mtime_ns,
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def resume(sweep_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "sgd_dynamics.cli", "resume", str(sweep_dir)]
    env = train_env()
    env.pop("SGD_DYNAMICS_FAULT", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_a_sweep_killed_in_its_second_job_completes_with_one_command(tmp_path):
    reference_result, reference = sweep(tmp_path / "reference")
    assert reference_result.returncode == 0, reference_result.stderr

    # Hydra's own expansion: the overrides it gave each job equal those read from the record
    record = read_sweep_record(reference)
    assert [job.number for job in record.jobs] == [0, 1, 2, 3]
    for job in record.jobs:
        written = yaml.safe_load(
            (reference / str(job.number) / ".hydra" / "overrides.yaml").read_text()
        )
        assert list(job.overrides) == written

    killed_result, killed = sweep(tmp_path / "killed", fault=KILL_IN_SECOND_JOB)
    assert killed_result.returncode == -9, killed_result.stderr
    assert json.loads((killed / "0" / "status.json").read_text())["status"] == "completed"
    assert json.loads((killed / "1" / "status.json").read_text())["status"] == "running"
    assert not (killed / "2").exists() and not (killed / "3").exists()
    finished = folder_digest(killed / "0")

    result = resume(killed, cwd=tmp_path / "killed")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert f"job 0 ({killed / '0'}): completed; left as it is" in lines
    assert any(
        line.startswith(f"job 1 ({killed / '1'}): dead (status running, no live process); resuming")
        for line in lines
    )
    assert f"job 2 ({killed / '2'}): missing; running it from the start" in lines
    assert f"Sweep outputs: {killed.resolve()}" in lines
    assert any(
        line.startswith("Report: ") and line.endswith(f"report {killed.resolve()}")
        for line in lines
    )

    assert folder_digest(killed / "0") == finished  # not a byte, not a time stamp changed
    for number in range(4):
        status = json.loads((killed / str(number) / "status.json").read_text())
        assert status["status"] == "completed"
        assert_same_results(killed / str(number), reference / str(number))
    assert json.loads((killed / "1" / "status.json").read_text())["resumed_from"] is not None

    again = resume(killed, cwd=tmp_path / "killed")  # a completed sweep: nothing to run
    assert again.returncode == 0 and "all 4 jobs have ended: nothing to run" in again.stdout
