"""A run killed (SIGKILL) at step ~1000 and resumed with the command it printed is one record:
one wandb run id over its segments, every (step, key) once and none missing, read back record
by record from the offline files; one CSV file with every step once."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from reliability_helpers import REPO_ROOT, resume_command, train

from sgd_dynamics.plots.dashboard import dashboard_figure
from sgd_dynamics.wandb_io.offline import records, run_files

STEP = "trainer/global_step"
MAX_STEPS = 1200
CHECKPOINT_EVERY = 250
KILLED_AT = 1010  # the checkpoint it resumes from: step 1000
VALIDATIONS = [250, 500, 750, 1000]
RUN = [
    "logger=[wandb,csv]",
    "model.width=8",
    f"trainer.max_steps={MAX_STEPS}",
    f"trainer.val_check_interval={CHECKPOINT_EVERY}",
    "spectral.method=dense",
    "spectral.k=5",
    "spectral.log_points=null",
    "spectral.every_n_steps=100",
    "spectral.draw_at_end=false",
    f"callbacks.checkpoint.every_n_steps={CHECKPOINT_EVERY}",
    "callbacks.checkpoint.every_n_seconds=null",
    "callbacks.progress=null",
]


def segment_history(path: Path) -> tuple[str, Counter]:
    """(run id, Counter of (step, key)) of one .wandb file, from its raw records."""
    run_id, counts = "", Counter()
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run_id = record.run.run_id
        elif kind == "history":
            # a dict value (a histogram) is one item per field, nested_key = (key, field)
            row = {
                (item.key or item.nested_key[0]): json.loads(item.value_json)
                for item in record.history.item
            }
            if STEP not in row:  # a record of wandb's own, at no training step
                assert set(row) <= {"_step", "_runtime", "_timestamp"}, row
                continue
            for key in row.keys() - {STEP, "_step", "_runtime", "_timestamp"}:
                counts[(int(row[STEP]), key)] += 1
    return run_id, counts


def segment_values(path: Path, key: str) -> dict[int, float]:
    """step -> the value of the scalar `key` in one .wandb file."""
    values = {}
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            row = {item.key: item.value_json for item in record.history.item if item.key}
            if key in row and STEP in row:
                values[int(json.loads(row[STEP]))] = json.loads(row[key])
    return values


def steps_of(counts: Counter, key: str) -> list[int]:
    return sorted(step for step, k in counts if k == key)


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory) -> Path:
    """Killed at step 1010, resumed with the printed command. Both runs are started from a
    process that runs a wandb service of its own (as a notebook, a launcher or this test
    process may): the runs inherit its WANDB_SERVICE and must not use it (a stream of the killed
    run left registered there made the resume fail with "run ID ... is in use")."""
    import wandb

    wandb.setup()
    assert os.environ.get("WANDB_SERVICE", "").split("-")[1] == str(os.getpid())
    cwd = tmp_path_factory.mktemp("resumed")
    run_dir = cwd / "run"
    killed = train([*RUN, f"hydra.run.dir={run_dir}"], cwd=cwd, fault=f"step:{KILLED_AT}=kill")
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = train([], cwd=cwd, command=resume_command(killed))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    return run_dir


@pytest.mark.slow
def test_one_wandb_run_with_every_step_once(resumed_run):
    files = run_files(resumed_run)
    assert len(files) == 2  # the killed segment and the resumed one
    (first_id, first), (second_id, second) = map(segment_history, files)
    assert first_id == second_id == (resumed_run / "wandb" / "run_id.txt").read_text().strip()
    total = first + second
    assert [pair for pair, n in total.items() if n > 1] == []  # nothing logged twice
    # wandb writes its file in blocks: the killed process's file ends at some step before the
    # kill; the resumed segment logs the rest of what it had logged from the journal, then
    # trains on from its checkpoint (1000)
    last_written = max(steps_of(first, "train/loss"))
    assert steps_of(first, "train/loss") == list(range(last_written + 1))
    assert min(steps_of(second, "train/loss")) == last_written + 1
    for key in ("train/loss", "train/acc", "train/epoch"):
        assert [s for s in steps_of(total, key) if s < MAX_STEPS] == list(range(MAX_STEPS)), key
    assert steps_of(total, "train/test_acc") == VALIDATIONS
    snapshots = sorted(int(p.stem.split("_")[1]) for p in (resumed_run / "spectra").glob("*.npz"))
    for key in ("spectra/loss", "spectra/hp_max", "alignment/cosines_1", "densities/H_f"):
        assert steps_of(total, key) == snapshots, key
    assert steps_of(total, "train/final_test_acc") == [MAX_STEPS]
    assert steps_of(total, "train/epoch")[-1] == MAX_STEPS  # with the final record


@pytest.mark.slow
def test_restored_values_are_the_killed_segments(resumed_run):
    """Each value the resumed segment logged at a step before its checkpoint (restored from the
    journal) equals the killed segment's CSV row at that step."""
    with (resumed_run / "csv" / "metrics.csv").open(newline="") as handle:
        rows = {
            int(r["step"]): float(r["train/loss"])
            for r in csv.DictReader(handle)
            if r["train/loss"]
        }
    resumed_from = KILLED_AT // CHECKPOINT_EVERY * CHECKPOINT_EVERY
    values = segment_values(run_files(resumed_run)[1], "train/loss")
    restored = {step: value for step, value in values.items() if step < resumed_from}
    assert {step: rows[step] for step in restored} == restored


@pytest.mark.slow
def test_the_dashboard_draws_every_segment(resumed_run):
    """The picture of the workspace holds both segments: train/loss at every step once."""
    figure = dashboard_figure(resumed_run)
    [panel] = [ax for ax in figure.get_axes() if ax.get_title().startswith("train/loss")]
    steps = panel.get_lines()[0].get_xdata()
    assert list(steps) == list(range(MAX_STEPS))


@pytest.mark.slow
def test_one_csv_file_with_every_step_once(resumed_run):
    assert sorted(p.name for p in (resumed_run / "csv").iterdir()) == [
        "hparams.yaml",
        "metrics.csv",
    ]
    with (resumed_run / "csv" / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    counts = Counter((int(r["step"]), k) for r in rows for k, v in r.items() if v and k != "step")
    assert [pair for pair, n in counts.items() if n > 1] == []
    # rows reach the file at every step: the killed segment's rows up to the kill are kept,
    # the replayed steps 150..188 are not written again
    assert steps_of(counts, "train/loss") == list(range(MAX_STEPS))
    assert steps_of(counts, "test/loss") == VALIDATIONS
    snapshots = sorted(int(p.stem.split("_")[1]) for p in (resumed_run / "spectra").glob("*.npz"))
    assert steps_of(counts, "spectra/loss") == snapshots


@pytest.mark.slow
def test_the_read_back_script_reports_one_run(resumed_run):
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "read_wandb_offline.py"), str(resumed_run)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(one run)" in done.stdout
    assert "(step, key) logged more than once: 0" in done.stdout
    assert done.stdout.count("segment ") == 2
