"""Sweeps through the Hydra launcher plugins (joblib, submitit_local) on real train.py runs: every
job gets its own complete folder (status completed, snapshots, figures) and its own finished
offline wandb run; a failing job still finishes its wandb run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pipeline.pipeline_helpers import run_train

SHORT = [
    "trainer.max_steps=20",
    "spectral.log_points=3",
    "spectral.k=5",
    "model.width=8",
    "callbacks.progress=null",
]


def wandb_runs(job: Path) -> list[Path]:
    return sorted((job / "wandb").glob("offline-run-*"))


def check_job(job: Path, seed: int) -> str:
    """Asserts a complete job folder; returns its wandb run id."""
    status = json.loads((job / "status.json").read_text())
    assert status["status"] == "completed", status
    assert (job / "summary.json").is_file()
    overrides = (job / ".hydra" / "overrides.yaml").read_text()
    assert f"seed={seed}" in overrides
    steps = []
    for path in sorted((job / "spectra").glob("step_*.npz")):
        with np.load(path) as data:
            steps.append(int(data["step"]))
    assert steps[0] == 0 and steps[-1] == 20, steps
    assert sorted(p.name for p in (job / "figures").glob("*.png")), "no figures"
    runs = wandb_runs(job)
    assert len(runs) == 1, runs
    assert list(runs[0].glob("*.wandb")), "wandb run has no data file"
    run_id = runs[0].name.rsplit("-", 1)[-1]
    debug = (runs[0] / "logs" / "debug.log").read_text()
    assert f"finishing run sgd-dynamics/{run_id}" in debug and "got exitcode: 0" in debug
    return run_id


def sweep_jobs(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())


@pytest.mark.slow
@pytest.mark.parametrize(
    "launcher",
    [["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], ["hydra/launcher=submitit_local"]],
    ids=["joblib", "submitit_local"],
)
def test_two_job_sweep_gives_two_complete_jobs(tmp_path, launcher):
    sweep = tmp_path / "sweep"
    args = ["-m", *launcher, "seed=0,1", *SHORT, f"hydra.sweep.dir={sweep}"]
    result = run_train(args, cwd=tmp_path, timeout=150)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sweep_jobs(sweep)
    assert [j.name for j in jobs] == ["0", "1"]
    ids = [check_job(job, seed) for job, seed in zip(jobs, (0, 1), strict=True)]
    assert len(set(ids)) == 2, ids
    # the two jobs trained different models (different seeds), so they are not one run twice
    finals = [json.loads((j / "summary.json").read_text())["train_loss"] for j in jobs]
    assert finals[0] != finals[1]
    # nothing else in the sweep folder but the jobs, Hydra's multirun.yaml and submitit's folder
    others = {p.name for p in sweep.iterdir()} - {"0", "1"}
    assert others <= {"multirun.yaml", ".submitit"}, others


@pytest.mark.slow
def test_failing_job_of_a_joblib_sweep_finishes_its_wandb_run(tmp_path):
    """Job 1 fails inside training (Lightning refuses, when fit sets up its loops, a test-set
    evaluation every 5000 steps counted per epoch of 20 steps, after the job's wandb run
    started): it is recorded as failed, its wandb run is finished with exit code 1 (wandb's own
    debug log says so), and job 0 completes."""
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "hydra/launcher=joblib",
        "trainer.val_check_interval=5000",
        "trainer.check_val_every_n_epoch=null,1",
        *SHORT,
        f"hydra.sweep.dir={sweep}",
    ]
    result = run_train(args, cwd=tmp_path, timeout=150)
    assert result.returncode != 0
    assert "val_check_interval" in result.stderr
    assert json.loads((sweep / "0" / "status.json").read_text())["status"] == "completed"
    failed = json.loads((sweep / "1" / "status.json").read_text())
    assert failed["status"] == "failed" and "val_check_interval" in failed["error"]
    for job, code in (("0", 0), ("1", 1)):
        (run,) = wandb_runs(sweep / job)
        run_id = run.name.rsplit("-", 1)[-1]
        debug = (run / "logs" / "debug.log").read_text()
        assert f"finishing run sgd-dynamics/{run_id}" in debug
        assert f"got exitcode: {code}" in debug


@pytest.mark.slow
def test_ddp_in_a_joblib_worker_is_refused_clearly(tmp_path):
    """Lightning cannot re-launch a joblib worker as rank 1: the job stops with a message that
    names the way out, before training (status failed, no snapshots)."""
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=joblib", "trainer=ddp_cpu", "seed=0", *SHORT, "batch_size=4"]
    result = run_train([*args, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert "not supported" in result.stderr and "submitit_slurm" in result.stderr
    status = json.loads((sweep / "0" / "status.json").read_text())
    assert status["status"] == "failed" and "basic launcher" in status["error"]
    assert not (sweep / "0" / "spectra").exists()
