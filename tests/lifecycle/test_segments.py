"""The pieces that make a resumed run one record: the run folder's wandb run id, the filter that
keeps a resumed segment from logging a (step, key) again, and the CSV file every segment
appends to."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sgd_dynamics.lightning.loggers import AppendingCSVLogger
from sgd_dynamics.wandb_io import segments

STEP = segments.STEP_METRIC


class FakeRun:
    """Records what reaches wandb's ``log``."""

    def __init__(self) -> None:
        self.logged: list[dict] = []
        self.id = "abc"

    def log(self, data, *args, **kwargs) -> None:
        self.logged.append(dict(data))


def test_a_new_run_folder_gets_a_new_id_and_keeps_the_stored_one(tmp_path):
    first, second = segments.run_id(tmp_path / "a"), segments.run_id(tmp_path / "b")
    assert first != second and len(first) == 16
    assert not segments.run_id_path(tmp_path / "a").exists()  # nothing written before wandb
    segments.store_run_id(tmp_path / "a", first)
    assert segments.run_id(tmp_path / "a") == first
    moved = tmp_path / "elsewhere"
    (tmp_path / "a").rename(moved)  # the id belongs to the folder, not to its path
    assert segments.run_id(moved) == first


def test_a_damaged_id_file_is_not_used(tmp_path):
    path = segments.run_id_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("../../etc\n")
    assert segments.stored_run_id(tmp_path) is None


def test_the_filter_drops_what_an_earlier_segment_logged_at_that_step():
    run = FakeRun()
    view = segments.SegmentRun(run, {5: {"train/loss", "spectrum/H_f", "charts/hf_top_table"}})
    view.log({"train/loss": 1.0, "train/acc": 0.5, STEP: 5})  # acc is new at step 5
    view.log({"train/loss": 1.0, STEP: 5})  # nothing new: not logged at all
    view.log({"spectrum/H_f": {}, "charts/hf_top": object(), STEP: 5})  # a chart's _table
    view.log({"train/loss": 2.0, STEP: 6})
    view.log({"no_step": 1})
    assert [set(r) for r in run.logged] == [{STEP, "train/acc"}, {STEP, "train/loss"}, {"no_step"}]
    assert view.id == "abc"  # everything else is the run's


@settings(max_examples=50, deadline=None)
@given(
    first=st.lists(st.tuples(st.integers(0, 30), st.sampled_from("abc")), max_size=40),
    resumed_from=st.integers(0, 30),
)
def test_two_segments_log_each_step_and_key_once(first, resumed_from):
    """Whatever the killed segment logged, the resumed one (logging every key from its
    checkpoint to the end) adds exactly the missing (step, key) pairs."""
    earlier: dict[int, set[str]] = {}
    for step, key in first:
        earlier.setdefault(step, set()).add(key)
    run = FakeRun()
    view = segments.SegmentRun(run, earlier)
    for step in range(resumed_from, 31):
        view.log({"a": 0, "b": 0, "c": 0, STEP: step})
    second = Counter((r[STEP], k) for r in run.logged for k in r if k != STEP)
    union = Counter({pair: 1 for pair in set(first)}) + second
    assert all(n == 1 for n in union.values())
    assert set(union) == set(first) | {(s, k) for s in range(resumed_from, 31) for k in "abc"}


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_csv_logger_appends_to_one_file_without_repeating_a_step(tmp_path):
    first = AppendingCSVLogger(tmp_path)
    for step in range(5):
        first.log_metrics({"train/loss": float(step)}, step=step)
    first.save()
    second = AppendingCSVLogger(tmp_path)  # a resumed segment, from step 3
    for step in range(3, 7):
        second.log_metrics({"train/loss": float(step), "test/acc": 0.5}, step=step)
    second.save()
    path = tmp_path / "csv" / "metrics.csv"
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.csv"]
    rows = read_rows(path)
    pairs = Counter((int(r["step"]), k) for r in rows for k, v in r.items() if v and k != "step")
    assert all(n == 1 for n in pairs.values())
    assert sorted(s for s, k in pairs if k == "train/loss") == list(range(7))
    assert sorted(s for s, k in pairs if k == "test/acc") == [3, 4, 5, 6]
