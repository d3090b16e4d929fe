"""One wandb run for a run folder, however many training segments it took.

A run that is stopped and resumed (``ckpt_path=RUN_DIR/checkpoints/last.ckpt``) trains in
segments, one process each; every segment writes its own wandb transaction log
(``RUN_DIR/wandb/offline-run-*/run-<id>.wandb``, or ``run-*`` online). They are one wandb run:

- **the run id** belongs to the run folder: drawn once, at the first segment's start, and kept
  in ``RUN_DIR/wandb/run_id.txt`` (`run_id`), so it survives moving the folder; every segment
  starts wandb with that id and ``resume="allow"``. ``wandb sync`` uploads the files of one
  run id one after the other, in the order they started, and appends each to the same run.
- **every (step, key) once**: a segment resumes from its checkpoint, at or before the last step
  the previous segment reached, and replays the steps in between with the same values (the
  training order is keyed by the step). `SegmentRun` drops from each ``log`` call the keys that
  an earlier segment of the run already logged at that ``trainer/global_step``
  (`earlier_keys`), so the synced history holds every step of every key once.
- **nothing lost to a kill**: wandb writes its file in blocks, so a segment stopped by SIGKILL
  loses the records it had not written. Each record logged at a training step is also written
  to ``RUN_DIR/wandb/journal.jsonl`` (`sgd_dynamics.wandb_io.journal`) before wandb gets it;
  the next segment logs again, first, what the journal holds and no wandb file does
  (`SegmentRun.restore`).

The step is the number of SGD updates taken; a record at step s describes the parameters after
s updates (docs/wandb.md).
"""

from __future__ import annotations

import os
import re
import secrets
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sgd_dynamics.run_folder.files import atomic_write
from sgd_dynamics.wandb_io.journal import JournalWriter, wandb_value
from sgd_dynamics.wandb_io.offline import records, run_files, run_record

STEP_METRIC = "trainer/global_step"
RUN_ID_FILE = "run_id.txt"
_RUN_ID = re.compile(r"^[a-z0-9]{8,32}$")
# wandb's own bookkeeping in a history record, not a logged value
_BOOKKEEPING = {"_step", "_runtime", "_timestamp", "_wandb", STEP_METRIC}
# a custom chart (wandb.plot.*) logged under `key` is stored in the history as `key_table`
_CHART_SUFFIX = "_table"


def run_id_path(run_dir: str | os.PathLike) -> Path:
    """``RUN_DIR/wandb/run_id.txt``: the run folder's wandb run id."""
    return Path(run_dir) / "wandb" / RUN_ID_FILE


def stored_run_id(run_dir: str | os.PathLike) -> str | None:
    """The run id stored in the run folder; else the id of its earliest wandb segment (a run
    folder written before the id was stored); None for a run folder without either."""
    path = run_id_path(run_dir)
    if path.is_file():
        text = path.read_text(encoding="utf-8").strip()
        if _RUN_ID.match(text):
            return text
    for file in run_files(run_dir):
        run = run_record(file)
        if run is not None and run.run_id:
            return run.run_id
    return None


def run_id(run_dir: str | os.PathLike) -> str:
    """The run folder's wandb run id: `stored_run_id`, else a new one (16 random lowercase
    hexadecimal digits). Stores nothing: `store_run_id` does, once wandb has started."""
    return stored_run_id(run_dir) or secrets.token_hex(8)


def store_run_id(run_dir: str | os.PathLike, value: str) -> None:
    """Write `value` to ``RUN_DIR/wandb/run_id.txt`` (atomically) unless it holds it already."""
    path = run_id_path(run_dir)
    if path.is_file() and path.read_text(encoding="utf-8").strip() == value:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as handle:
        handle.write(value + "\n")


def history_keys(rows: Iterable[Any]) -> dict[int, set[str]]:
    """step -> the keys logged at that ``trainer/global_step``, from history records."""
    logged: dict[int, set[str]] = defaultdict(set)
    for history in rows:
        items = {}
        for item in history.item:
            # a dict value (a histogram, an image) is stored as one item per field, under
            # nested_key = (logged key, field)
            key = item.key or item.nested_key[0]
            items[key] = item.value_json
        if STEP_METRIC not in items:
            continue
        step = int(float(items[STEP_METRIC]))
        logged[step].update(k for k in items if k not in _BOOKKEEPING)
    return dict(logged)


def earlier_keys(run_dir: str | os.PathLike, run_id_value: str) -> dict[int, set[str]]:
    """step -> keys that the segments of run `run_id_value` already in `run_dir` logged."""
    rows = []
    for file in run_files(run_dir):
        run = run_record(file)
        if run is None or run.run_id != run_id_value:
            continue
        rows += [r.history for r in records(file) if r.WhichOneof("record_type") == "history"]
    return history_keys(rows)


def unlogged(data: Mapping[str, Any], logged: Mapping[int, set[str]]) -> dict[str, Any] | None:
    """`data` without the keys already logged at its ``trainer/global_step`` (a chart's key
    also counts as logged when its ``<key>_table`` is); None when nothing new is left. Records
    without the step metric pass unchanged."""
    if STEP_METRIC not in data:
        return dict(data)
    done = logged.get(int(data[STEP_METRIC]), set())
    kept = {
        key: value
        for key, value in data.items()
        if key == STEP_METRIC or (key not in done and key + _CHART_SUFFIX not in done)
    }
    return kept if len(kept) > 1 else None


class SegmentRun:
    """A wandb run seen through the history of the run's earlier segments: ``log`` drops what
    they logged already (`unlogged`) and journals what it logs at a training step
    (`sgd_dynamics.wandb_io.journal`); everything else is the run's own attribute."""

    def __init__(
        self,
        run: Any,
        logged: Mapping[int, set[str]],
        journal: JournalWriter | None = None,
    ) -> None:
        self._run = run
        self._logged: dict[int, set[str]] = defaultdict(set, {s: set(k) for s, k in logged.items()})
        self._journal = journal

    @property
    def wrapped(self) -> Any:
        """The wandb run itself."""
        return self._run

    def restore(self, lost: Iterable[tuple[int, Mapping[str, Any]]]) -> int:
        """Log the journaled records `lost` (`journal.missing`: what an earlier segment logged
        but its wandb file does not hold) at their steps, ascending; they are not journaled
        again, and a replayed step does not log them twice. Returns the number of keys."""
        count = 0
        for step, values in lost:
            record = {key: wandb_value(value) for key, value in values.items()}
            self._run.log({**record, STEP_METRIC: int(step)})
            self._logged[int(step)].update(values)
            count += len(values)
        return count

    def log(self, data: Mapping[str, Any], *args: Any, **kwargs: Any) -> None:
        kept = unlogged(data, self._logged) if self._logged else dict(data)
        if kept is None:
            return
        if self._journal is not None and STEP_METRIC in kept:
            # journaled first: a record the kill keeps from wandb's file is restored later
            values = {k: v for k, v in kept.items() if k != STEP_METRIC}
            self._journal.write(int(float(kept[STEP_METRIC])), values)
        self._run.log(kept, *args, **kwargs)

    def finish(self, *args: Any, **kwargs: Any) -> Any:
        if self._journal is not None:
            self._journal.close()
        return self._run.finish(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._run, name)
