"""The wandb run of a short default training run, read back record by record from its offline
``.wandb`` file: histograms of H_f, M and H_p at every snapshot step on bins that resolve the
bulk and put the top eigenvalue in a bin of its own, the top-k line charts, cosines and H_p's
extremes at every snapshot step, the figures at more than one step, every key under one of the
workspace sections, and the artifact with every snapshot file."""

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
from sgd_dynamics.wandb_io.run_logging import SECTIONS

REPO_ROOT = Path(__file__).resolve().parents[2]
STEP = "trainer/global_step"
WANDB_OWN = {"_runtime", "_step", "_timestamp", STEP}  # wandb's bookkeeping and the x axis


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> Path:
    """``train.py`` as a user runs it (default config, offline wandb), shortened to 60 steps
    (22 snapshots; the figures every 8 snapshots by default). Returns the run folder."""
    root = tmp_path_factory.mktemp("review")
    run_dir = root / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg", WANDB_DATA_DIR=str(root))
    env.pop("WANDB_MODE", None)  # the logger goes offline by itself
    done = subprocess.run(
        [sys.executable, "train.py", "trainer.max_steps=60", f"hydra.run.dir={run_dir}"],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


def wandb_file(run_dir: Path) -> Path:
    return run_file(run_dir)


def bin_of(edges: np.ndarray, value: float) -> int:
    """The bin of ``np.histogram`` holding `value` (half-open bins, the last one closed)."""
    return min(int(np.searchsorted(edges, value, side="right")) - 1, edges.size - 2)


def check_histogram(logged: dict, values: np.ndarray) -> None:
    """`logged` is a histogram of exactly `values`, with the largest alone in its bin and the
    bulk over several bins."""
    assert logged["_type"] == "histogram"
    edges = np.asarray(logged["bins"])
    counts = np.asarray(logged["values"])
    assert np.all(np.diff(edges) > 0) and counts.size == edges.size - 1
    np.testing.assert_array_equal(counts, np.histogram(values, bins=edges)[0])
    assert counts.sum() == values.size  # every eigenvalue in a bin
    top = values.max()
    top_bin = bin_of(edges, top)
    assert counts[top_bin] == np.count_nonzero(values == top)  # alone in its bin
    bins_of_values = np.array([bin_of(edges, v) for v in values])
    assert np.all(values[bins_of_values == top_bin] == top)
    # the bulk: no bin holds a quarter of the values, and they spread over ten bins or more
    # (64 linear bins put most of them in one)
    assert counts.max() < 0.25 * values.size
    assert np.count_nonzero(counts) >= 10


@pytest.mark.slow
def test_histograms_at_every_snapshot_step_resolve_bulk_and_outliers(default_run):
    history = load_run(default_run)
    rows = {r[STEP]: r for r in history_rows(wandb_file(default_run)) if "densities/H_f" in r}
    assert sorted(rows) == history.steps.tolist()
    for step in history.steps.tolist():
        snap = load_snapshot(snapshot_path(default_run, step))
        row = rows[step]
        for name, values in (
            ("H_f", snap["hf_all"]),
            ("H_p", snap["hp_all"]),
            ("neg_H_f", -snap["hf_all"]),
        ):
            check_histogram(row[f"densities/{name}"], values)
            assert values.size == int(snap["n_params"])
        # M is PSD of rank <= n: its nonzero part on log bins, its zeros counted apart
        mt = snap["mt_all"]
        nonzero = mt[mt > 1e-8 * mt.max()]
        check_histogram(row["densities/M_nonzero"], nonzero)
        assert nonzero.size <= int(snap["n_samples"])
        assert row["densities/M_zeros"] == mt.size - nonzero.size


@pytest.mark.slow
def test_top_k_cosines_and_hp_extremes_at_every_snapshot_step(default_run):
    history = load_run(default_run)
    run_files = wandb_file(default_run).parent / "files"
    rows = [r for r in history_rows(wandb_file(default_run)) if "spectra/hf_top_table" in r]
    steps = history.steps.tolist()
    assert [r[STEP] for r in rows] == steps
    charts = {
        "hf_top": "spectra",
        "mt_top": "spectra",
        "mb_top": "spectra",
        "hp_top": "spectra",
        "hp_bottom": "spectra",
        "cosines": "alignment",
    }
    for row in rows:
        shown = [s for s in steps if s <= row[STEP]]
        at = steps.index(row[STEP])
        for key, section in charts.items():
            table = json.loads((run_files / row[f"{section}/{key}_table"]["path"]).read_text())
            assert table["columns"] == ["step", "lineKey", "lineVal"]
            k = history[key].shape[1]
            finite = np.isfinite(history[key][: at + 1])
            assert len(table["data"]) == finite.sum()  # every index, every step so far
            assert len({series for _, series, _ in table["data"]}) == finite.any(axis=0).sum()
            for step, series, value in table["data"]:
                assert step in shown
                i = int(re.search(r"\d+", series).group()) - 1  # "λ3", "cos γ3"
                assert 0 <= i < k
                assert value == pytest.approx(history[key][steps.index(step), i], rel=1e-12)
        assert row["spectra/hp_max"] == pytest.approx(np.nanmax(history["hp_top"][at]))
        assert row["spectra/hp_min"] == pytest.approx(np.nanmin(history["hp_bottom"][at]))
        assert row["spectra/hf_top_1"] == pytest.approx(history["hf_top"][at, 0])
        assert row["alignment/cosines_1"] == pytest.approx(history["cosines"][at, 0])
    # one scalar panel per index is not made: the indices are drawn together in the charts
    keys = {k for r in history_rows(wandb_file(default_run)) for k in r}
    assert "spectra/hf_top_1" in keys and "spectra/hf_top_2" not in keys


@pytest.mark.slow
def test_figures_at_more_than_one_step_under_the_defaults(default_run):
    history = load_run(default_run)
    run_files = wandb_file(default_run).parent / "files"
    drawings = [r for r in history_rows(wandb_file(default_run)) if "figures/alignment" in r]
    steps = history.steps.tolist()
    # the default draw_every=8: every 8th snapshot, and the end of training (drawn once)
    expected = sorted({*steps[7::8], steps[-1]})
    assert len(expected) > 1 and [r[STEP] for r in drawings] == expected
    for row in drawings:
        for name in ("alignment", "full_spectra"):
            image = row[f"figures/{name}"]
            assert image["_type"] == "image-file"
            assert (run_files / image["path"]).is_file()


@pytest.mark.slow
def test_every_key_is_under_a_workspace_section(default_run):
    keys = {k for r in history_rows(wandb_file(default_run)) for k in r} - WANDB_OWN
    assert {k.split("/", 1)[0] for k in keys} == set(SECTIONS)
    assert all("/" in k for k in keys)
    for expected in ("train/loss", "train/acc", "train/final_test_acc", "train/epoch"):
        assert expected in keys


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
    histograms = [ax for ax in fig.axes if ax.get_title() in HISTOGRAMS]
    assert [ax.get_title() for ax in histograms] == list(HISTOGRAMS)
    steps = load_run(default_run).steps
    for ax in histograms:  # one column per snapshot in every histogram panel, on symlog steps
        assert len(ax.collections) == steps.size
        assert ax.get_xscale() == "symlog"
    for section in ("train/loss", "alignment/cosines", "spectra/hf_top", "spectra/hp_max"):
        assert any(t.startswith(section) for t in titles), section
    assert any(t.startswith("figures/alignment") for t in titles)
    step_axes = [ax for ax in fig.axes if ax.get_xlabel().startswith("training step")]
    assert len(step_axes) >= 12 and all(ax.get_xscale() == "symlog" for ax in step_axes)
