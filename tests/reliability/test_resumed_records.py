"""A run killed mid-way and resumed with the command it printed is one record: one wandb run id
over its segments, every (step, key) once, read back record by record from the offline files;
one CSV file with every step once."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from reliability_helpers import REPO_ROOT, resume_command, train

from sgd_dynamics.wandb_io.offline import records, run_files

STEP = "trainer/global_step"
MAX_STEPS = 200
CHECKPOINT_EVERY = 50
KILLED_AT = 190  # the checkpoint it resumes from: step 150
VALIDATIONS = [50, 100, 150, 200]
RUN = [
    "logger=[wandb,csv]",
    "model.width=8",
    f"trainer.max_steps={MAX_STEPS}",
    f"trainer.val_check_interval={CHECKPOINT_EVERY}",
    "spectral.method=dense",
    "spectral.k=5",
    "spectral.log_points=null",
    "spectral.every_n_steps=40",
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


def steps_of(counts: Counter, key: str) -> list[int]:
    return sorted(step for step, k in counts if k == key)


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory) -> Path:
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
    # the killed process wrote its records up to some step (wandb writes its file in blocks:
    # a SIGKILL loses the unwritten tail); the resumed one from its checkpoint (150) to the end
    last_written = max(steps_of(first, "train/loss"))
    resumed_from = KILLED_AT // CHECKPOINT_EVERY * CHECKPOINT_EVERY
    assert steps_of(first, "train/loss") == list(range(last_written + 1))
    assert min(steps_of(second, "train/loss")) == max(last_written + 1, resumed_from)
    lost = set(range(last_written + 1, resumed_from))
    expected = [s for s in range(MAX_STEPS) if s not in lost]
    for key in ("train/loss", "train/acc", "train/epoch"):
        assert [s for s in steps_of(total, key) if s < MAX_STEPS] == expected, key
    assert steps_of(total, "train/test_acc") == [s for s in VALIDATIONS if s not in lost]
    snapshots = sorted(int(p.stem.split("_")[1]) for p in (resumed_run / "spectra").glob("*.npz"))
    assert steps_of(total, "spectra/loss") == [s for s in snapshots if s not in lost]
    assert steps_of(total, "densities/H_f") == steps_of(total, "spectra/loss")
    assert steps_of(total, "train/final_test_acc") == [MAX_STEPS]
    assert steps_of(total, "train/epoch")[-1] == MAX_STEPS  # with the final record


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
