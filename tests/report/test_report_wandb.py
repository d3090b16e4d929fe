"""The sweep report logged to wandb (offline) as its own run in the sweep's group.

A synthetic Hydra multirun whose jobs' ``.hydra/config.yaml`` carry the wandb logger entry
exactly as Hydra saves it (unresolved interpolations included); the command runs in a
subprocess with no network, as a user runs it.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sgd_dynamics.report import report
from sgd_dynamics.run_folder.files import write_json_atomic
from sgd_dynamics.run_folder.snapshots import save_snapshot
from sgd_dynamics.wandb_io.report_run import jobs_used_wandb, log_report_to_wandb

K = 10
STEPS = (0, 3, 10, 30)
LOGGER_WANDB = """\
logger:
  wandb:
    _target_: sgd_dynamics.lightning.loggers.wandb_logger
    save_dir: ${run_dir}
    project: sgd-dynamics-test
    name: ${run_name:${run_dir}}
    group: ${sweep_name:${run_dir}}
    offline: true
    log_model: false
"""
LOGGER_CSV = """\
logger:
  csv:
    _target_: pytorch_lightning.loggers.CSVLogger
    save_dir: ${run_dir}
    name: csv
"""


def make_sweep(root: Path, logger_yaml: str) -> Path:
    """2 batch sizes x 2 seeds, random snapshots, completed, with the given logger config."""
    rng = np.random.default_rng(0)
    sweep = root / "2026-01-02_03-04-05_abcdef"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    for j, (batch, seed) in enumerate([(5, 0), (50, 0), (5, 1), (50, 1)]):
        job = sweep / str(j)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- seed={seed}\n- batch_size={batch}\n")
        config = f"seed: {seed}\nbatch_size: {batch}\nrun_dir: ${{hydra:runtime.output_dir}}\n"
        (job / ".hydra" / "config.yaml").write_text(config + logger_yaml)
        for step in STEPS:
            hf_top = np.sort(rng.random(K))[::-1]
            save_snapshot(
                job,
                {
                    "step": step,
                    "epoch": step // 10,
                    "train_loss": 1.0 / (1 + step),
                    "train_acc": 0.5,
                    "hf_top": hf_top,
                    "mt_top": np.sort(rng.random(K))[::-1],
                    "hp_top": hf_top,
                    "hp_bottom": -hf_top,
                    "cosines": np.sort(rng.uniform(0.5, 1.0, K))[::-1],
                },
            )
        write_json_atomic(job / "status.json", {"status": "completed"})
        write_json_atomic(job / "summary.json", {"train_loss": 0.1 * j, "test_acc": 0.5})
    return sweep


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    env.pop("WANDB_MODE", None)  # the command goes offline by itself
    env.pop("WANDB_SILENT", None)
    return subprocess.run(
        [sys.executable, "-m", "sgd_dynamics.cli", "report", *args],
        env=env,
        stdin=subprocess.DEVNULL,  # a prompt would fail, not hang
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_report_is_logged_offline_to_the_sweeps_wandb_group(tmp_path):
    sweep = make_sweep(tmp_path, LOGGER_WANDB)
    run = run_cli(str(sweep))
    assert run.returncode == 0, run.stderr
    (run_dir,) = (sweep / "report" / "wandb").glob("offline-run-*")
    assert run.stdout.split()[-1] == str(run_dir)

    images = sorted(p.name for p in (run_dir / "files" / "media" / "images").rglob("*.png"))
    assert len(images) == 3  # the band, comparison and test-accuracy figures
    assert images[0].startswith("alignment_bands_") and images[1].startswith("comparison_")

    tables = {p.name.split("_")[0]: p for p in (run_dir / "files" / "media").rglob("*.table.json")}
    assert set(tables) == {"jobs", "groups"}
    logged = json.loads(tables["jobs"].read_text())
    with open(sweep / "report" / "jobs.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert logged["columns"] == rows[0]
    assert len(logged["data"]) == 4
    for got, expected in zip(logged["data"], rows[1:], strict=True):
        for value, text in zip(got, expected, strict=True):
            if text == "":
                assert value is None
            elif isinstance(value, float):  # NaN (e.g. hp_to_minus_hf_w1 without densities)
                assert value == float(text) or (math.isnan(value) and text == "nan")
            else:
                assert str(value) == text

    (record,) = run_dir.glob("run-*.wandb")
    content = record.read_bytes()
    group = sweep.name.encode()
    assert group + b"/report" in content  # run name
    assert b"sgd-dynamics-test" in content  # the jobs' project
    assert content.count(group) >= 2  # group and name

    # --no-wandb: the same report without a wandb run
    out = tmp_path / "plain"
    run = run_cli(str(sweep), "--no-wandb", "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert (out / "jobs.csv").is_file() and not (out / "wandb").exists()
    assert run_cli(str(sweep), "--wandb-mode", "sometimes").returncode == 2


def test_wandb_logger_detection_and_bad_mode(tmp_path):
    with_wandb = report(make_sweep(tmp_path / "a", LOGGER_WANDB))
    with_csv = report(make_sweep(tmp_path / "b", LOGGER_CSV))
    assert jobs_used_wandb(with_wandb.jobs) and not jobs_used_wandb(with_csv.jobs)
    with pytest.raises(ValueError, match=r"wandb mode must be one of \('offline', 'online'\)"):
        log_report_to_wandb(with_wandb, mode="sometimes")
    assert not (with_wandb.out_dir / "wandb").exists()
