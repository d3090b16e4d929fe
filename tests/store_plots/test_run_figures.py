"""Figures 1 and 2 of a run, drawn from stored snapshots; the `plot` command."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from snapshot_factory import iterative_snapshot

from sgd_dynamics import cli
from sgd_dynamics.plots import (
    ALIGNMENT_PNG,
    FULL_SPECTRA_PNG,
    TRAINING_PNG,
    alignment_figure,
    choose_steps,
    draw_run_figures,
    full_spectra_figure,
)
from sgd_dynamics.plots.common import run_title, symlog_linthresh
from sgd_dynamics.run_folder import snapshots as store
from sgd_dynamics.run_folder.snapshots import list_snapshots, load_run, load_snapshot, save_snapshot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    return (
        path.is_file() and path.stat().st_size > 10_000 and path.read_bytes()[:8] == PNG_SIGNATURE
    )


def test_dense_run_gets_both_figures(dense_run):
    paths = draw_run_figures(dense_run)
    assert [p.name for p in paths] == [FULL_SPECTRA_PNG, ALIGNMENT_PNG, TRAINING_PNG]
    assert all(p.parent == dense_run / "figures" and _is_png(p) for p in paths)
    assert sorted(p.name for p in (dense_run / "figures").iterdir()) == sorted(
        [FULL_SPECTRA_PNG, ALIGNMENT_PNG, TRAINING_PNG]
    )


def test_iterative_run_gets_figure_2_only(tmp_path, rng):
    for step in (0, 5, 50):
        save_snapshot(tmp_path, iterative_snapshot(step, rng))
    paths = draw_run_figures(tmp_path)
    assert [p.name for p in paths] == [ALIGNMENT_PNG, TRAINING_PNG] and _is_png(paths[0])
    with pytest.raises(ValueError, match="none has full spectra"):
        draw_run_figures(tmp_path, steps=[5])


def test_full_spectra_panels_show_every_stored_eigenvalue(dense_run):
    history = load_run(dense_run)
    fig = full_spectra_figure(history, steps=[0, 1000])
    ax_hf, ax_m, ax_hp = fig.axes
    assert [ax.get_title() for ax in fig.axes] == [
        "$H_f$ (loss Hessian)",
        "$M$ (gradient second moment)",
        "$H_p = M - H_f$ (residual)",
    ]
    snap = load_snapshot(dense_run / "spectra" / "step_00001000.npz")
    assert ax_hf.get_yscale() == ax_hp.get_yscale() == "symlog"
    assert [line.get_label() for line in ax_hf.lines[:2]] == [
        "step 0 (train loss 2.3)",
        "step 1000 (train loss 0.0023)",
    ]
    np.testing.assert_array_equal(ax_hf.lines[1].get_ydata(), np.sort(snap["hf_all"])[::-1])
    # M panel: the n = 8 nonzero eigenvalues of M = G^T G / n (P = 40), largest first, log y
    assert ax_m.get_yscale() == "log"
    nonzero = np.sort(snap["mt_all"])[::-1][:8]
    np.testing.assert_array_equal(ax_m.lines[1].get_ydata(), nonzero)
    # H_p panel: solid H_p then dashed -H_f, per step
    hp_solid, neg_hf = ax_hp.lines[2], ax_hp.lines[3]
    np.testing.assert_array_equal(hp_solid.get_ydata(), np.sort(snap["hp_all"])[::-1])
    np.testing.assert_array_equal(neg_hf.get_ydata(), np.sort(-snap["hf_all"])[::-1])
    assert neg_hf.get_linestyle() == "--"
    everything = np.concatenate([snap[k] for k in ("hf_all", "hp_all")])
    assert ax_hf.yaxis.get_transform().linthresh == symlog_linthresh(everything)


def test_full_spectra_rejects_unstored_steps(dense_run):
    with pytest.raises(ValueError, match=r"no full spectra stored at steps \[2\]"):
        full_spectra_figure(load_run(dense_run), steps=[2, 10])


def test_alignment_figure_draws_one_line_per_index(dense_run):
    history = load_run(dense_run)
    fig = alignment_figure(history, k=3)
    ax_cos, ax_hf, ax_mt = fig.axes[:3]
    data_lines = [line for line in ax_cos.lines if len(line.get_xdata()) == len(history)]
    assert len(data_lines) == 3
    np.testing.assert_array_equal(data_lines[1].get_ydata(), history["cosines"][:, 1])
    assert ax_cos.get_xscale() == "symlog"  # steps 0..1000 span three decades
    assert ax_mt.get_yscale() == "log"
    assert ax_hf.get_yscale() in ("log", "symlog")


def test_alignment_figure_leaves_out_the_zero_eigenvalues_of_m(tmp_path, rng):
    # n = 8 samples, k = 12 > n: M's eigenvalues 9..12 are zero up to rounding
    for step in (0, 10, 20):
        save_snapshot(tmp_path, iterative_snapshot(step, rng, k=12))
    history = load_run(tmp_path)
    assert np.all(np.abs(history["mt_top"][:, 8:]) < 1e-12 * history["mt_top"][:, :1])
    ax_mt = alignment_figure(history).axes[2]
    drawn = np.array([line.get_ydata() for line in ax_mt.lines])  # (k, S)
    np.testing.assert_array_equal(drawn[:8], history["mt_top"][:, :8].T)
    assert np.all(np.isnan(drawn[8:]))


def test_choose_steps():
    steps = [0, 1, 3, 10, 30, 100, 300, 1000]
    # log(step + 1) targets 0, 2.30, 4.61, 6.91 -> nearest 0, 10 (2.40), 100 (4.62), 1000
    assert choose_steps(steps, 4) == [0, 10, 100, 1000]
    loss = [2.0, 1.9, 1.0, 0.5, 0.2, 0.05, 0.01, 0.002]
    # log-loss targets at 1/3 and 2/3 of the way: 2 * 0.001**(1/3) = 0.2, 2 * 0.001**(2/3) = 0.02
    assert choose_steps(steps, 4, train_loss=loss) == [0, 30, 300, 1000]
    assert choose_steps(steps, 1) == [1000]
    with pytest.raises(ValueError):
        choose_steps([], 3)


def test_run_title_reads_the_usual_config_keys():
    cfg = {
        "batch_size": 64,
        "dataset": {"name": "mnist", "label_noise": 0.2},
        "model": {"depth": 2},
    }
    assert run_title(cfg) == "mnist, batch size 64, depth 2, label noise 0.2"
    assert run_title(None, fallback="run") == "run"


def test_failed_figure_write_keeps_the_previous_png(dense_run, monkeypatch):
    paths = draw_run_figures(dense_run, steps=[0, 1000])
    before = {p: p.read_bytes() for p in paths}

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(store.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        draw_run_figures(dense_run, steps=[1, 30])
    assert {p: p.read_bytes() for p in paths} == before
    assert sorted(p.name for p in (dense_run / "figures").iterdir()) == sorted(
        [FULL_SPECTRA_PNG, ALIGNMENT_PNG, TRAINING_PNG]
    )


def test_plot_command_redraws_from_files_alone(dense_run, tmp_path):
    out = tmp_path / "redrawn"
    result = subprocess.run(
        [sys.executable, "-m", "sgd_dynamics.cli", "plot", str(dense_run), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    printed = result.stdout.split()
    names = (FULL_SPECTRA_PNG, ALIGNMENT_PNG, TRAINING_PNG)
    assert printed == [str(out / name) for name in names]
    assert all(_is_png(out / name) for name in names)
    assert len(list_snapshots(dense_run)) == 8  # the snapshots were only read


def test_plot_command_bad_folder_exits_2_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sgd_dynamics.cli", "plot", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("sgd-dynamics plot: error: no snapshots in")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plot", "{missing}"], "does not exist"),
        (["plot", "{run}", "--steps", "2"], "no full spectra stored at steps [2]"),
    ],
)
def test_plot_command_errors_in_process(dense_run, tmp_path, capsys, argv, message):
    argv = [a.format(missing=tmp_path / "missing", run=dense_run) for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
