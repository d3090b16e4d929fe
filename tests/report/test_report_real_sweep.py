"""The sweep report on a real Hydra multirun of train.py: 2 batch sizes x 3 seeds of short
Gauss-10 runs, one job resumed from its checkpoint (its overrides gain ``ckpt_path=...``), and a
copy of a job without its snapshots. Every expected number is read straight from the job
folders (``spectra/step_*.npz`` with numpy, ``summary.json``), never from the report's code.

Measured on the 2-core machine (shared): the sweep with Hydra's basic launcher ~32 s, with
``hydra/launcher=joblib hydra.launcher.n_jobs=2`` ~38 s (worker start-up outweighs the gain for
jobs this short), so the basic launcher is used.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from pipeline.pipeline_helpers import run_train

from sgd_dynamics.report import report

SEEDS = (0, 1, 2)
BATCH_SIZES = (5, 10)
LEVELS = (0.1, 0.5, 0.9)
TRAIN_ARGS = [
    "trainer.max_steps=60",
    "spectral.log_points=5",
    "spectral.k=10",
    "model.width=16",
    "logger=csv",
]
QUANTITIES = ("mean_top10_cos", "n_top10_cos_gt_0.9", "hf_top_1", "mt_top_1")


def files_series(job: Path) -> dict[str, np.ndarray]:
    """Per-snapshot quantities from the .npz files: steps, mean and count (> 0.9) of the first
    10 cosines, largest eigenvalue of H_f and of M."""
    rows = []
    for path in sorted((job / "spectra").glob("step_*.npz")):
        with np.load(path) as data:
            cos = data["cosines"][:10]
            rows.append(
                (
                    int(data["step"]),
                    np.mean(cos),
                    np.sum(cos > 0.9),
                    data["hf_top"][0],
                    data["mt_top"][0],
                )
            )
    table = np.array(rows, dtype=np.float64)
    return dict(zip(("step", *QUANTITIES), table.T, strict=True))


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("real_sweep")
    sweep = root / "sweep"
    seeds = ",".join(map(str, SEEDS))
    batches = ",".join(map(str, BATCH_SIZES))
    args = ["-m", f"seed={seeds}", f"batch_size={batches}", *TRAIN_ARGS]
    result = run_train([*args, f"hydra.sweep.dir={sweep}"], cwd=root, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    n_jobs = len(SEEDS) * len(BATCH_SIZES)
    # each job's lines carry its "[job N] " prefix
    lines = [re.sub(r"^\[job \d+\] ", "", ln) for ln in result.stdout.splitlines()]
    outputs = [ln for ln in lines if ln.startswith("Outputs: ")]
    assert sorted(outputs) == sorted(f"Outputs: {sweep / str(j)}" for j in range(n_jobs))

    # resume job 1 from its last checkpoint: Hydra rewrites its overrides with ckpt_path=...
    ckpt = sweep / "1" / "checkpoints" / "last.ckpt"
    resumed = run_train([f"ckpt_path={ckpt}"], cwd=root, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    overrides = yaml.safe_load((sweep / "1" / ".hydra" / "overrides.yaml").read_text())
    assert f"ckpt_path={ckpt}" in overrides

    # a completed job whose snapshots are gone
    shutil.copytree(sweep / "0", sweep / "6")
    shutil.rmtree(sweep / "6" / "spectra")
    return sweep


@pytest.mark.slow
def test_report_of_a_real_sweep_matches_the_job_files(sweep, tmp_path):
    result = report(sweep, quantiles=LEVELS, out_dir=tmp_path / "lib")
    assert result.knobs == ["batch_size"]  # seed and the resumed job's ckpt_path ignored
    assert [g.label for g in result.groups] == [f"batch_size={b}" for b in BATCH_SIZES]
    assert [[job.name for job in g.jobs] for g in result.groups] == [
        ["0", "2", "4"],
        ["1", "3", "5"],
    ]
    assert result.skipped == [("6", "no snapshots")]

    # the bands: numpy.quantile over the jobs of a group on the numbers stored in the files
    for group in result.groups:
        per_job = [files_series(sweep / job.name) for job in group.jobs]
        steps = per_job[0]["step"]
        assert all(np.array_equal(series["step"], steps) for series in per_job)
        for name in QUANTITIES:
            band = group.bands[name]
            values = np.vstack([series[name] for series in per_job])
            assert not band.interpolated
            np.testing.assert_array_equal(band.steps, steps)
            np.testing.assert_allclose(
                band.quantiles, np.quantile(values, LEVELS, axis=0), rtol=1e-12, atol=0
            )
            np.testing.assert_allclose(band.median, np.median(values, axis=0), rtol=1e-12)


@pytest.mark.slow
def test_report_command_on_a_real_sweep(sweep):
    env = dict(os.environ, MPLBACKEND="Agg", WANDB_MODE="offline", OMP_NUM_THREADS="1")
    run = subprocess.run(
        [sys.executable, "-m", "sgd_dynamics.cli", "report", str(sweep)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    out = sweep / "report"
    names = (
        "jobs.csv",
        "bands.csv",
        "groups.csv",
        "alignment_bands.png",
        "comparison.png",
        "test_accuracy.png",
    )
    assert run.stdout.split() == [str(out / name) for name in names]
    assert "skipping job 6 (no snapshots)" in run.stderr
    assert "7 jobs, 6 used in 2 groups, 1 skipped: 6 (no snapshots)" in run.stderr
    assert not (out / "wandb").exists()  # the jobs logged to CSV files, not wandb
    assert all((out / name).stat().st_size > 10_000 for name in names[3:])

    # jobs.csv: one row per job folder, values from the snapshot files and summary.json
    rows = {row["job"]: row for row in read_csv(out / "jobs.csv")}
    assert list(rows) == [str(j) for j in range(7)]
    for j in range(6):
        row, job = rows[str(j)], sweep / str(j)
        summary = json.loads((job / "summary.json").read_text())
        files = files_series(job)
        seed, batch = SEEDS[j // len(BATCH_SIZES)], BATCH_SIZES[j % len(BATCH_SIZES)]
        assert (row["seed"], row["batch_size"]) == (str(seed), str(batch))
        assert row["group"] == f"batch_size={batch}" and row["used"] == "yes"
        assert row["status"] == "completed"
        for column, key in (
            ("final_train_loss", "train_loss"),
            ("final_train_acc", "train_acc"),
            ("final_test_loss", "test_loss"),
            ("final_test_acc", "test_acc"),
        ):
            assert float(row[column]) == summary[key]
        assert int(row["last_step"]) == files["step"][-1] == 60
        assert int(row["n_snapshots"]) == len(files["step"])
        assert float(row["mean_top10_cos"]) == pytest.approx(files["mean_top10_cos"][-1], rel=1e-14)
        assert int(row["n_top10_cos_gt_0.9"]) == files["n_top10_cos_gt_0.9"][-1]
        assert float(row["hf_top_1"]) == files["hf_top_1"][-1]
        assert float(row["mt_top_1"]) == files["mt_top_1"][-1]
        peak = files["mt_top_1"].max()
        assert float(row["mt_top_1_end_over_peak"]) == pytest.approx(
            files["mt_top_1"][-1] / peak, rel=1e-14
        )
    assert rows["1"]["ckpt_path"] == str(sweep / "1" / "checkpoints" / "last.ckpt")
    assert rows["6"]["used"] == "no" and rows["6"]["skip_reason"] == "no snapshots"
    assert rows["6"]["group"] == "" and rows["6"]["hf_top_1"] == ""

    # bands.csv and groups.csv against numpy.quantile on the stored numbers
    bands = read_csv(out / "bands.csv")
    groups = {row["group"]: row for row in read_csv(out / "groups.csv")}
    for batch, jobs in ((5, (0, 2, 4)), (10, (1, 3, 5))):
        label = f"batch_size={batch}"
        per_job = [files_series(sweep / str(j)) for j in jobs]
        assert groups[label]["n_jobs"] == "3" and groups[label]["batch_size"] == str(batch)
        for name in QUANTITIES:
            values = np.vstack([series[name] for series in per_job])
            expected = np.quantile(values, LEVELS, axis=0)
            table = [r for r in bands if r["group"] == label and r["quantity"] == name]
            assert [int(r["step"]) for r in table] == list(per_job[0]["step"])
            for q, level in enumerate(LEVELS):
                got = [float(r[f"q{level:g}"]) for r in table]
                np.testing.assert_allclose(got, expected[q], rtol=1e-14, atol=0)
            end = np.quantile(values[:, -1], LEVELS)
            got = [float(groups[label][f"{name}.q{level:g}"]) for level in LEVELS]
            np.testing.assert_allclose(got, end, rtol=1e-14, atol=0)
