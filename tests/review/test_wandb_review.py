"""The wandb run of a short default training run, read back from its offline ``.wandb`` file:
histograms of H_f, M and H_p at every snapshot step, the line charts and figures at each
drawing, and the artifact with every snapshot file."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sgd_dynamics.run_folder.snapshots import load_run, load_snapshot, snapshot_path
from sgd_dynamics.wandb_io.offline import artifacts, history_rows, run_file

REPO_ROOT = Path(__file__).resolve().parents[2]
STEP = "trainer/global_step"


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> Path:
    """``train.py`` as a user runs it (default config, offline wandb), shortened: 120 steps, 5
    snapshots, figures drawn every 2 snapshots. Returns the run folder."""
    root = tmp_path_factory.mktemp("review")
    run_dir = root / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg", WANDB_DATA_DIR=str(root))
    env.pop("WANDB_MODE", None)  # the logger goes offline by itself
    done = subprocess.run(
        [
            sys.executable,
            "train.py",
            "trainer.max_steps=120",
            "spectral.log_points=5",
            "spectral.draw_every=2",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


def wandb_file(run_dir: Path) -> Path:
    return run_file(run_dir)


@pytest.mark.slow
def test_histograms_of_the_spectra_at_every_snapshot_step(default_run):
    history = load_run(default_run)
    rows = {r[STEP]: r for r in history_rows(wandb_file(default_run)) if "spectrum/H_f" in r}
    assert sorted(rows) == history.steps.tolist()
    for step in history.steps.tolist():
        snap = load_snapshot(snapshot_path(default_run, step))
        logged = {k.removeprefix("spectrum/"): v for k, v in rows[step].items()}
        for name, values in (
            ("H_f", snap["hf_all"]),
            ("M", snap["mt_all"]),
            ("H_p", snap["hp_all"]),
            ("neg_H_f", -snap["hf_all"]),
        ):
            counts, edges = np.histogram(values, bins=64)  # all P eigenvalues, 64 bins
            assert logged[name]["_type"] == "histogram"
            np.testing.assert_allclose(logged[name]["bins"], edges, rtol=1e-12, atol=1e-15)
            assert logged[name]["values"] == counts.tolist()
            assert sum(logged[name]["values"]) == values.size == int(snap["n_params"])
        # M's nonzero eigenvalues: at most n of them, on a log scale
        nonzero = snap["mt_all"][snap["mt_all"] > 1e-8 * snap["mt_all"].max()]
        assert sum(logged["log10_M_nonzero"]["values"]) == nonzero.size <= int(snap["n_samples"])


@pytest.mark.slow
def test_line_charts_and_figures_at_each_drawing(default_run):
    history = load_run(default_run)
    run_files = wandb_file(default_run).parent / "files"
    rows = history_rows(wandb_file(default_run))
    drawings = [r for r in rows if "figures/alignment" in r]
    steps = history.steps.tolist()
    # every 2nd snapshot, and the end of training
    assert [r[STEP] for r in drawings] == [steps[1], steps[3], steps[-1]]
    for row in drawings:
        for name in ("alignment", "full_spectra"):
            image = row[f"figures/{name}"]
            assert image["_type"] == "image-file"
            assert (run_files / image["path"]).is_file()
        for key in ("hf_top", "mt_top", "hp_top", "hp_bottom", "cosines", "mb_top"):
            chart = row[f"charts/{key}_table"]
            table = json.loads((run_files / chart["path"]).read_text())
            assert table["columns"] == ["step", "lineKey", "lineVal"]
            shown = [s for s in steps if s <= row[STEP]]
            k = history[key].shape[1]
            assert len(table["data"]) == k * len(shown)  # one series per index, every step
            for step, series, value in table["data"]:
                i = int(re.search(r"\d+", series).group()) - 1  # "λ3", "cos γ3"
                assert value == pytest.approx(history[key][steps.index(step), i], rel=1e-12)
    # one scalar panel per index is gone: only index 1 of each vector is a scalar
    keys = {k for r in rows for k in r}
    assert "spectral/hf_top_1" in keys and "spectral/hf_top_2" not in keys


@pytest.mark.slow
def test_the_artifact_holds_every_snapshot_file(default_run):
    (artifact,) = [a for a in artifacts(wandb_file(default_run)) if a.type == "run-spectra"]
    assert artifact.name == f"spectra-{default_run.name}"
    entries = {e.path: e.digest for e in artifact.manifest.contents}
    expected = sorted(p.relative_to(default_run).as_posix() for p in default_run.glob("spectra/*"))
    assert sorted(p for p in entries if p.startswith("spectra/")) == expected
    assert len(expected) == len(load_run(default_run).steps)
    for path in [*expected, "summary.json", ".hydra/config.yaml"]:
        md5 = hashlib.md5((default_run / path).read_bytes()).digest()
        assert entries[path] == base64.b64encode(md5).decode()


@pytest.mark.slow
def test_the_dashboard_picture_is_drawn_from_the_offline_records(default_run):
    from sgd_dynamics.plots.dashboard import HISTOGRAMS, dashboard_figure

    fig = dashboard_figure(default_run)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:4] == list(HISTOGRAMS)
    steps = load_run(default_run).steps
    for ax in fig.axes[:4]:  # one column per snapshot in every histogram panel
        (mesh,) = ax.collections
        assert mesh.get_array().shape[1] == steps.size
    assert any(t.startswith("figures/alignment") for t in titles)
