"""Sweep report on a synthetic Hydra multirun folder written through the store API.

Sweep: batch_size=5 (jobs 0-2, identical snapshot steps) and batch_size=25 (jobs 3-5,
different steps per job, series linear in log(step + 1) so interpolation has an exact
reference), plus a failed job, a completed job with no snapshots and a running job.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from sgd_dynamics import cli
from sgd_dynamics.report import DEAD_REASON, report
from sgd_dynamics.report.figures import draw_report_figures
from sgd_dynamics.run_folder.files import write_json_atomic
from sgd_dynamics.run_folder.snapshots import RunFolderError, save_snapshot

K = 12
STEPS_A = (0, 1, 3, 10, 30, 100)
STEPS_B = {3: (0, 2, 10, 40), 4: (0, 5, 20, 40, 60), 5: (1, 10, 50)}
GRID_B = (1, 2, 5, 10, 20, 40)  # union of STEPS_B inside [max first, min last] = [1, 40]


def random_snapshot(step: int, rng: np.random.Generator) -> dict:
    cos = np.sort(rng.uniform(0.5, 1.0, K))[::-1]
    return _snapshot(step, cos, np.sort(rng.random(K))[::-1], np.sort(rng.random(K))[::-1])


def linear_snapshot(step: int, a: float, b: float) -> dict:
    """Every series is a + b * log(step + 1) plus a fixed index profile."""
    x = a + b * np.log1p(step)
    cos = np.clip(x - 0.02 * np.arange(K), 0.0, 1.0)
    return _snapshot(step, cos, 10 * x - 0.1 * np.arange(K), 5 * x - 0.1 * np.arange(K))


def _snapshot(step, cos, hf_top, mt_top) -> dict:
    return {
        "step": step,
        "epoch": step // 10,
        "train_loss": 1.0 / (1 + step),
        "train_acc": 0.5,
        "hf_top": hf_top,
        "mt_top": mt_top,
        "hp_top": hf_top,
        "hp_bottom": -hf_top,
        "cosines": cos,
    }


def _job(sweep: Path, name: str, overrides: list[str], status: str | None) -> Path:
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    batch = overrides[0].split("=")[1]
    (job / ".hydra" / "config.yaml").write_text(
        f"batch_size: {batch}\nseed: 0\nmodel:\n  depth: 2\ndataset:\n  name: gauss10\n"
    )
    if status is not None:
        write_json_atomic(job / "status.json", {"status": status})
    return job


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    sweep = tmp_path / "multirun"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    (sweep / ".submitit").mkdir()
    for j in range(6):
        batch, seed = (5, j) if j < 3 else (25, j - 3)
        job = _job(
            sweep,
            str(j),
            [f"batch_size={batch}", f"seed={seed}", f"dataset.seed={seed}"],
            "completed",
        )
        if j < 3:
            for step in STEPS_A:
                save_snapshot(job, random_snapshot(step, rng))
        else:
            a, b = 0.3 + 0.05 * j, 0.1 + 0.02 * j
            for step in STEPS_B[j]:
                save_snapshot(job, linear_snapshot(step, a, b))
        summary = {"train_loss": 0.01 * j, "train_acc": 1.0, "test_loss": 0.1 * j, "test_acc": 0.8}
        summary["wall_time_s"] = 10.0 + j
        write_json_atomic(job / "summary.json", summary)
    failed = _job(sweep, "6", ["batch_size=5", "seed=3", "dataset.seed=3"], "failed")
    save_snapshot(failed, random_snapshot(0, rng))
    _job(sweep, "7", ["batch_size=25", "seed=3", "dataset.seed=3"], "completed")
    _job(sweep, "8", ["batch_size=25", "seed=4", "dataset.seed=4"], "running")
    return sweep


def _files_series(job: Path) -> dict[str, np.ndarray]:
    """Per-snapshot quantities read straight from the .npz files (independent of load_run)."""
    rows = []
    for path in sorted((job / "spectra").glob("step_*.npz")):
        with np.load(path) as data:
            cos = data["cosines"][:10]
            rows.append(
                (
                    int(data["step"]),
                    float(np.mean(cos)),
                    float(np.sum(cos > 0.9)),
                    float(data["hf_top"][0]),
                    float(data["mt_top"][0]),
                )
            )
    table = np.array(rows)
    names = ("step", "mean_top10_cos", "n_top10_cos_gt_0.9", "hf_top_1", "mt_top_1")
    return dict(zip(names, table.T, strict=True))


def test_csv_rows_match_the_snapshot_files_and_summaries(sweep, caplog):
    with caplog.at_level(logging.INFO, logger="sgd_dynamics.report"):
        result = report(sweep)
    draw_report_figures(result)
    assert result.knobs == ["batch_size"]  # seed and dataset.seed ignored
    assert [g.label for g in result.groups] == ["batch_size=5", "batch_size=25"]
    assert result.skipped == [("6", "failed"), ("7", "no snapshots"), ("8", DEAD_REASON)]
    log = caplog.text
    assert "skipping job 6 (failed)" in log and "skipping job 7 (no snapshots)" in log
    assert "9 jobs, 6 used in 2 groups, 3 skipped" in log

    with open(result.csv_path, newline="") as handle:
        rows = {row["job"]: row for row in csv.DictReader(handle)}
    assert list(rows) == [str(j) for j in range(9)]
    for j in range(6):
        row, job = rows[str(j)], sweep / str(j)
        files = _files_series(job)
        summary = json.loads((job / "summary.json").read_text())
        assert row["status"] == "completed" and row["used"] == "yes" and row["skip_reason"] == ""
        assert row["batch_size"] == ("5" if j < 3 else "25") and row["seed"] == str(j % 3)
        assert row["group"] == f"batch_size={row['batch_size']}"
        assert float(row["final_train_loss"]) == summary["train_loss"]
        assert float(row["final_test_loss"]) == summary["test_loss"]
        assert float(row["final_train_acc"]) == summary["train_acc"]
        assert float(row["final_test_acc"]) == summary["test_acc"]
        assert float(row["summary.wall_time_s"]) == summary["wall_time_s"]
        assert float(row["mean_top10_cos"]) == pytest.approx(files["mean_top10_cos"][-1], rel=1e-13)
        assert int(row["n_top10_cos_gt_0.9"]) == files["n_top10_cos_gt_0.9"][-1]
        assert float(row["hf_top_1"]) == files["hf_top_1"][-1]
        assert float(row["mt_top_1"]) == files["mt_top_1"][-1]
        ratio = files["mt_top_1"][-1] / files["mt_top_1"].max()
        assert float(row["mt_top_1_end_over_peak"]) == pytest.approx(ratio, rel=1e-15)
        assert int(row["last_step"]) == files["step"][-1]
        assert int(row["n_snapshots"]) == len(files["step"])
    for j, reason in (("6", "failed"), ("7", "no snapshots"), ("8", DEAD_REASON)):
        assert rows[j]["used"] == "no" and rows[j]["skip_reason"] == reason
        assert rows[j]["hf_top_1"] == "" and rows[j]["group"] == ""
    assert rows["6"]["status"] == "failed" and rows["8"]["status"] == "dead"

    names = sorted(p.name for p in result.figure_paths)
    assert names == ["alignment_bands.png", "comparison.png", "test_accuracy.png"]
    assert all(
        p.parent == sweep / "report" and p.stat().st_size > 10_000 for p in result.figure_paths
    )


def test_bands_equal_numpy_quantiles_on_the_stored_numbers(sweep):
    levels = (0.1, 0.5, 0.9)
    result = report(sweep, quantiles=levels)
    same_steps, mixed_steps = result.groups
    per_job = [_files_series(sweep / str(j)) for j in range(3)]
    for name, band in same_steps.bands.items():
        assert not band.interpolated
        np.testing.assert_array_equal(band.steps, STEPS_A)
        values = np.vstack([series[name] for series in per_job])
        np.testing.assert_allclose(band.values, values, rtol=1e-13, atol=0)
        np.testing.assert_allclose(
            band.quantiles, np.quantile(values, levels, axis=0), rtol=1e-13, atol=0
        )
        np.testing.assert_allclose(band.median, np.quantile(values, 0.5, axis=0), rtol=1e-13)

    grid = np.array(GRID_B, dtype=float)
    band = mixed_steps.bands["hf_top_1"]
    assert band.interpolated
    np.testing.assert_array_equal(band.steps, GRID_B)
    # hf_top_1 = 10 (a + b log(step + 1)) is linear in log(step + 1): interpolation is exact
    exact = np.vstack(
        [10 * (0.3 + 0.05 * j + (0.1 + 0.02 * j) * np.log1p(grid)) for j in (3, 4, 5)]
    )
    np.testing.assert_allclose(band.values, exact, rtol=1e-12)
    np.testing.assert_allclose(band.quantiles, np.quantile(exact, levels, axis=0), rtol=1e-12)

    # the count of cosines > 0.9 is a step function, interpolated linearly between snapshots
    count = mixed_steps.bands["n_top10_cos_gt_0.9"]
    for row, j in enumerate((3, 4, 5)):
        files = _files_series(sweep / str(j))
        for t, g in enumerate(GRID_B):
            i = np.searchsorted(files["step"], g)
            if files["step"][i] == g:
                expected = files["n_top10_cos_gt_0.9"][i]
            else:
                s0, s1 = files["step"][i - 1], files["step"][i]
                w = (np.log1p(g) - np.log1p(s0)) / (np.log1p(s1) - np.log1p(s0))
                v0, v1 = files["n_top10_cos_gt_0.9"][i - 1], files["n_top10_cos_gt_0.9"][i]
                expected = (1 - w) * v0 + w * v1
            assert count.values[row, t] == pytest.approx(expected, rel=1e-12)


def test_groups_csv_holds_numpy_quantiles_of_the_last_snapshots(sweep):
    levels = (0.25, 0.5, 0.75)
    result = report(sweep, quantiles=levels)
    with open(result.groups_csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["group"] for row in rows] == ["batch_size=5", "batch_size=25"]
    for row, jobs in zip(rows, ((0, 1, 2), (3, 4, 5)), strict=True):
        assert row["n_jobs"] == "3" and row["batch_size"] == row["group"].split("=")[1]
        series = [_files_series(sweep / str(j)) for j in jobs]
        for name in ("mean_top10_cos", "n_top10_cos_gt_0.9", "hf_top_1", "mt_top_1"):
            end = np.array([s[name][-1] for s in series])
            assert float(row[f"{name}.median"]) == pytest.approx(np.median(end), rel=1e-14)
            for q in levels:
                assert float(row[f"{name}.q{q:g}"]) == pytest.approx(np.quantile(end, q), rel=1e-14)
        ratio = np.array([s["mt_top_1"][-1] / s["mt_top_1"].max() for s in series])
        assert float(row["mt_top_1_end_over_peak.median"]) == pytest.approx(np.median(ratio))


def test_resumed_job_keeps_its_group_and_the_title_names_shared_settings(sweep):
    # train.py's resume rewrites a job's overrides.yaml with ckpt_path=RUN_DIR/checkpoints/...
    overrides = sweep / "4" / ".hydra" / "overrides.yaml"
    ckpt = sweep / "4" / "checkpoints" / "last.ckpt"
    overrides.write_text(overrides.read_text() + f"- ckpt_path={ckpt}\n")
    for j in range(6):
        path = sweep / str(j) / ".hydra" / "overrides.yaml"
        path.write_text(path.read_text() + "- trainer.max_steps=60\n- logger=csv\n")
    result = report(sweep)
    assert result.knobs == ["batch_size"]
    assert [[job.name for job in g.jobs] for g in result.groups] == [
        ["0", "1", "2"],
        ["3", "4", "5"],
    ]
    # shared by all used jobs and named in the title: max_steps (not logger, nor ckpt_path)
    assert result.title.splitlines()[0] == f"sweep {sweep.name}, trainer.max_steps=60"
    assert report(sweep, group_by=["ckpt_path"]).knobs == ["ckpt_path"]


def test_report_command_options_and_exit_codes(sweep, tmp_path, capsys):
    out = tmp_path / "rep"
    argv = ["report", str(sweep), "--quantiles", "0.25", "0.75", "--by", "model.depth"]
    assert cli.main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [
        str(out / "jobs.csv"),
        str(out / "bands.csv"),
        str(out / "groups.csv"),
        str(out / "alignment_bands.png"),
        str(out / "comparison.png"),
        str(out / "test_accuracy.png"),
    ]
    with open(out / "bands.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames[-2:] == ["q0.25", "q0.75"]
        assert {row["group"] for row in reader} == {"model.depth=2"}  # from the config

    assert cli.main(["report", str(sweep / "0")]) == 2  # a run, not a sweep
    assert "is a run folder" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["report", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sgd-dynamics report: error: no job folders") and err.count("\n") == 1
    with pytest.raises(SystemExit) as refused:  # an option's value: refused by the parser
        cli.main(["report", str(sweep), "--quantiles", "1.5"])
    assert refused.value.code == 2
    assert cli.main(["report", str(sweep), "--by", "no.such.key"]) == 2


def test_sweep_with_no_usable_job_writes_the_csv_and_exits_1(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    _job(sweep, "0", ["batch_size=5", "seed=0"], "failed")
    _job(sweep, "1", ["batch_size=5", "seed=1"], "completed")
    result = report(sweep)
    draw_report_figures(result)
    assert result.skipped == [("0", "failed"), ("1", "no snapshots")]
    assert result.figure_paths == [] and result.csv_path.is_file()
    assert cli.main(["report", str(sweep)]) == 1
    assert "no usable job" in capsys.readouterr().err


def test_report_rejects_bad_input(sweep, tmp_path):
    with pytest.raises(RunFolderError, match="does not exist"):
        report(tmp_path / "missing")
    with pytest.raises(ValueError, match="quantiles"):
        report(sweep, quantiles=())
    with pytest.raises(ValueError, match=r"group_by keys \['nope'\]"):
        report(sweep, group_by=["nope"])
