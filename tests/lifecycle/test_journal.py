"""The wandb journal: what a killed segment logged but wandb had not written is logged again by
the next segment, once; the journal is read as data (no line of any shape makes it raise or
pass a value of another shape)."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sgd_dynamics.lightning.loggers import wandb_logger
from sgd_dynamics.wandb_io import journal
from sgd_dynamics.wandb_io.offline import BLOCK, history_rows, run_files

STEP = "trainer/global_step"

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
scalars = st.one_of(
    st.floats(width=64), st.integers(-(2**53), 2**53), st.booleans(), st.text(max_size=20)
)
histograms = st.integers(1, 12).flatmap(
    lambda b: st.tuples(
        st.lists(finite, min_size=b + 1, max_size=b + 1).map(sorted),
        st.lists(st.integers(0, 10**6), min_size=b, max_size=b),
    )
)
keys = st.text(min_size=1, max_size=30).filter(lambda k: "\n" not in k)


def same(a, b) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b and type(a) is type(b)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**7), st.dictionaries(keys, scalars, min_size=1))))
def test_scalars_round_trip(tmp_path_factory, logged):
    run_dir = tmp_path_factory.mktemp("run")
    writer = journal.JournalWriter(run_dir)
    for step, values in logged:
        writer.write(step, values)
    writer.close()
    back = list(journal.read_journal(run_dir))
    assert len(back) == len(logged)
    for (step, values), (step_back, values_back) in zip(logged, back, strict=True):
        assert step_back == step and values_back.keys() == values.keys()
        assert all(same(values_back[k], values[k]) for k in values)


@settings(max_examples=60, deadline=None)
@given(histograms)
def test_histograms_round_trip(tmp_path_factory, histogram):
    import wandb

    bins, counts = histogram
    run_dir = tmp_path_factory.mktemp("run")
    writer = journal.JournalWriter(run_dir)
    writer.write(3, {"densities/H_f": wandb.Histogram(np_histogram=(counts, bins))})
    writer.close()
    [(step, values)] = journal.read_journal(run_dir)
    assert step == 3
    restored = journal.wandb_value(values["densities/H_f"])
    assert restored.bins == bins and [int(c) for c in restored.histogram] == counts


def test_values_it_cannot_keep_are_left_out(tmp_path):
    import wandb

    writer = journal.JournalWriter(tmp_path)
    image = wandb.Image(np.zeros((4, 4, 3), dtype=np.uint8))
    writer.write(
        1, {"figures/x": image, "a/table": wandb.Table(columns=["a"]), "a/b": np.float32(2)}
    )
    writer.write(2, {"figures/x": image})  # nothing to keep: no line
    writer.close()
    assert list(journal.read_journal(tmp_path)) == [(1, {"a/b": 2.0})]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_line_parses_or_is_refused(line):
    parsed = journal.parse_line(line + "\n")
    if parsed is not None:
        step, values = parsed
        assert isinstance(step, int) and step >= 0 and values
        assert all(journal._valid_value(v) for v in values.values())


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=12,
    ),
    st.sampled_from(["step", "values", "bins"]),
)
def test_records_of_another_shape_are_refused(value, where):
    """A record whose step, values or histogram is anything but the journal's shape is skipped."""
    shapes = {
        "step": {"step": value, "values": {"a/b": 1.0}},
        "values": {"step": 1, "values": value},
        "bins": {"step": 1, "values": {"a/b": {"bins": value, "values": [1]}}},
    }
    parsed = journal.parse_line(json.dumps(shapes[where]) + "\n")
    if parsed is not None:  # the generated value happened to be of the right shape
        step, values = parsed
        assert type(step) is int and step >= 0
        assert all(journal._valid_value(v) for v in values.values())
        if where == "bins":
            assert isinstance(value, list) and len(value) == 2


def test_a_line_cut_by_a_kill_is_ended_and_skipped(tmp_path):
    writer = journal.JournalWriter(tmp_path)
    writer.write(0, {"a/b": 1.0})
    writer.close()
    path = journal.journal_path(tmp_path)
    with path.open("a") as handle:
        handle.write('{"step": 1, "values": {"a/b": 2')  # the killed writer's last line
    writer = journal.JournalWriter(tmp_path)
    writer.write(2, {"a/b": 3.0})
    writer.close()
    assert list(journal.read_journal(tmp_path)) == [(0, {"a/b": 1.0}), (2, {"a/b": 3.0})]


def test_a_journal_that_is_a_link_is_not_read(tmp_path):
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_text('{"step": 0, "values": {"a/b": 1.0}}\n')
    (tmp_path / "run" / "wandb").mkdir(parents=True)
    journal.journal_path(tmp_path / "run").symlink_to(elsewhere)
    assert list(journal.read_journal(tmp_path / "run")) == []


def segment(run_dir: Path, steps: range) -> None:
    """One training segment's wandb logging: a scalar at every step, a histogram every 50."""
    import wandb

    run = wandb_logger(run_dir, offline=True, project="journal-test").experiment
    for step in steps:
        record = {"train/loss": 1.0 / (step + 1), "train/acc": step / 1000, STEP: step}
        if step % 50 == 0:
            record["densities/H_f"] = wandb.Histogram(np_histogram=([1, step], [0.0, 1.0, 2.0]))
        run.log(record)
    run.finish()


def test_what_a_killed_segment_lost_is_logged_once_by_the_next(tmp_path):
    """A first segment logs steps 0..599; its wandb file is cut to its first 32 KiB block (what
    SIGKILL leaves); the second segment (resumed from a checkpoint at step 400) logs 400..799.
    Read back, the two files hold every step 0..799 of each key once, with the first segment's
    values."""
    segment(tmp_path, range(600))
    [first] = run_files(tmp_path)
    size = first.stat().st_size
    assert size > BLOCK + 7, size  # the cut loses records
    with first.open("r+b") as handle:
        handle.truncate(BLOCK + 7)
    kept = {r[STEP] for r in history_rows(first) if STEP in r}
    assert 0 < len(kept) < 400  # the cut went into the steps before the checkpoint
    segment(tmp_path, range(400, 800))
    files = run_files(tmp_path)
    assert len(files) == 2
    counts: Counter = Counter()
    values: dict[tuple[int, str], object] = {}
    for file in files:
        for row in history_rows(file):
            if STEP not in row:
                continue
            for key, value in row.items():
                if not key.startswith("_") and key != STEP:
                    counts[(int(row[STEP]), key)] += 1
                    values[(int(row[STEP]), key)] = value
    assert [pair for pair, n in counts.items() if n > 1] == []
    for key in ("train/loss", "train/acc"):
        assert sorted(s for s, k in counts if k == key) == list(range(800))
    assert sorted(s for s, k in counts if k == "densities/H_f") == list(range(0, 800, 50))
    for step in range(800):
        assert values[(step, "train/loss")] == 1.0 / (step + 1)
    assert values[(350, "densities/H_f")]["values"] == [1, 350]


def test_a_wandb_service_of_another_process_is_not_used(monkeypatch):
    """configure_wandb_environment drops a WANDB_SERVICE that another process started (its
    second field, the starting process's id, is not ours) and keeps one this process started."""
    import os

    from sgd_dynamics.wandb_io.environment import configure_wandb_environment

    for key in ("WANDB_SILENT", "WANDB_CONSOLE", "WANDB_MODE"):  # restored after the test
        if key in os.environ:
            monkeypatch.setenv(key, os.environ[key])
        else:
            monkeypatch.delenv(key, raising=False)
    theirs = f"3-{os.getpid() + 1}-unix-/tmp/wandb-x/socket"
    monkeypatch.setenv("WANDB_SERVICE", theirs)
    configure_wandb_environment()
    assert "WANDB_SERVICE" not in os.environ
    ours = f"3-{os.getpid()}-unix-/tmp/wandb-y/socket"
    monkeypatch.setenv("WANDB_SERVICE", ours)
    configure_wandb_environment()
    assert os.environ["WANDB_SERVICE"] == ours
