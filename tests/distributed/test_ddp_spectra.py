"""Acceptance: a short Gauss-10 run through train.py with trainer=ddp_cpu (2 processes, gloo)
stores the same spectra as the single-process run with the same seed, in one run folder, with
one wandb run, the snapshots written once (by rank 0).

Full-batch gradient descent (batch_size = n_train = 100): under DDP each rank trains on half of
every global batch and DDP averages the gradients, so the parameters, and hence the spectra,
agree with one process up to float rounding at every step, not only at step 0."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pipeline.pipeline_helpers import run_train

COMMON = [
    "batch_size=100",
    "trainer.max_steps=4",
    "spectral.every_n_steps=2",
    "spectral.log_points=null",
    "spectral.k=5",
    "model.width=8",
    "callbacks.progress=null",
]
COMPARED = (
    "step",
    "epoch",
    "train_loss",
    "train_acc",
    "hf_top",
    "mt_top",
    "hp_top",
    "hp_bottom",
    "cosines",
    "hf_all",
    "mt_all",
    "hp_all",
    "mb_top",
    "trace_hf",
    "trace_mt",
    "trace_hp",
    "grad_norm",
)


def single_run_folder(root: Path) -> Path:
    """The only run folder under root/outputs (and no sweep folder)."""
    assert not (root / "outputs" / "multirun").exists()
    runs = sorted((root / "outputs" / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def snapshots(run: Path) -> dict[int, dict[str, np.ndarray]]:
    out = {}
    for path in sorted((run / "spectra").glob("step_*.npz")):
        with np.load(path) as data:
            out[int(data["step"])] = {key: data[key] for key in data.files}
    return out


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b| (0 when both are 0)."""
    scale = float(np.max(np.abs(b)))
    diff = float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
    return diff / scale if scale > 0 else diff


def train(root: Path, *args: str) -> tuple[Path, str]:
    root.mkdir()
    result = run_train([*COMMON, *args], cwd=root, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return single_run_folder(root), result.stderr + result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dense", "iterative"])
def test_ddp_spectra_equal_single_process(tmp_path, method):
    single, _ = train(tmp_path / "single", f"spectral.method={method}")
    ddp, log = train(tmp_path / "ddp", f"spectral.method={method}", "trainer=ddp_cpu")

    # one run folder holding only what a single-process run holds: no rank-1 files
    assert sorted(p.name for p in ddp.iterdir()) == sorted(p.name for p in single.iterdir())
    assert len(list((ddp / "wandb").glob("offline-run-*"))) == 1
    assert json.loads((ddp / "status.json").read_text())["status"] == "completed"
    # each snapshot logged (hence written) by one process only; one closing "Outputs:" line
    assert log.count(f"Outputs: {ddp}") == 1, log[-3000:]
    for step in (0, 2, 4):
        assert log.count(f"snapshot step {step}:") == 1, log[-3000:]

    expected, got = snapshots(single), snapshots(ddp)
    assert sorted(got) == sorted(expected) == [0, 2, 4]
    for step in expected:
        assert int(got[step]["n_samples"]) == 100
        for key in COMPARED:
            if key not in expected[step]:
                assert method == "iterative" and key.endswith("_all"), key
                continue
            error = relative_error(got[step][key], expected[step][key])
            assert error <= 1e-6, f"step {step} {key}: relative error {error:.2e}"

    # the same training trajectory: final metrics of the full-batch run agree
    final = [json.loads((run / "summary.json").read_text()) for run in (single, ddp)]
    for key in ("train_loss", "test_loss", "global_step"):
        assert abs(final[0][key] - final[1][key]) <= 1e-6 * max(1.0, abs(final[0][key])), key


@pytest.mark.slow
def test_ddp_jobs_of_a_sweep_land_in_their_own_folders(tmp_path):
    """A 2-job sweep (Hydra's basic launcher) of 2-process DDP runs: Lightning re-launches
    rank 1 of each job into that job's folder, and the second job starts a process group of
    its own; no other folder appears."""
    sweep = tmp_path / "sweep"
    args = ["-m", "trainer=ddp_cpu", "seed=0,1", *COMMON, f"hydra.sweep.dir={sweep}"]
    result = run_train(args, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1", "multirun.yaml"]
    assert not (tmp_path / "outputs").exists()
    losses = []
    for job, seed in ((sweep / "0", 0), (sweep / "1", 1)):
        assert json.loads((job / "status.json").read_text())["status"] == "completed"
        assert f"seed={seed}" in (job / ".hydra" / "overrides.yaml").read_text()
        assert sorted(snapshots(job)) == [0, 2, 4]
        assert len(list((job / "wandb").glob("offline-run-*"))) == 1
        assert not list(job.glob("train_ddp_process_*"))
        losses.append(json.loads((job / "summary.json").read_text())["train_loss"])
    assert losses[0] != losses[1]
