"""End to end: train.py with spectral snapshots, wandb offline, then `sgd-dynamics plot`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pipeline.pipeline_helpers import outputs_line, run_train

from sgd_dynamics.run_folder.snapshots import load_run

RUN_FIGURES = {"alignment.png", "full_spectra.png", "training.png"}


@pytest.mark.slow
def test_run_writes_snapshots_figures_and_a_wandb_run_then_plot_redraws(tmp_path):
    result = run_train(
        ["trainer.max_steps=200", "spectral.log_points=6", "spectral.k=10"], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    run_dir = outputs_line(result.stdout)
    history = load_run(run_dir)
    assert history.steps[0] == 0 and history.steps[-1] == 200
    assert history["hf_all"].shape == (len(history.steps), 1002)
    figures = run_dir / "figures"
    assert {p.name for p in figures.iterdir()} == RUN_FIGURES

    (run_record,) = (run_dir / "wandb").glob("offline-run-*")
    images = list((run_record / "files" / "media" / "images").rglob("*.png"))
    assert len(images) == 3  # the three figures as wandb images (6 snapshots: once, at the end)
    (record,) = run_record.glob("*.wandb")
    content = record.read_bytes()
    # scalars for index 1; every index in the line charts; the spectra as histograms
    for key in (
        b"spectra/hf_top_1",
        b"spectra/mt_top_1",
        b"alignment/cosines_table",
        b"densities/H_f",
    ):
        assert key in content

    # the plot command redraws the figures from the stored snapshots alone
    for png in figures.iterdir():
        png.unlink()
    env = dict(os.environ, MPLBACKEND="Agg")
    plot = subprocess.run(
        [sys.executable, "-m", "sgd_dynamics.cli", "plot", str(run_dir)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert plot.returncode == 0, plot.stderr
    assert {p.name for p in figures.iterdir()} == RUN_FIGURES
    assert all(p.stat().st_size > 10_000 for p in figures.iterdir())
