"""What a run logged at each training step, kept beside wandb's files so that a killed segment
loses none of it.

wandb writes its transaction log (``run-<id>.wandb``) from a process of its own, in 32 KiB
blocks: a segment stopped by SIGKILL loses the records that were not written yet, often the
last few hundred steps. The journal ``RUN_DIR/wandb/journal.jsonl`` holds every record logged
at a training step, one JSON line per ``log`` call, handed to the operating system before
``log`` returns (a killed process loses no line; a machine that loses power may):

    {"step": 1234, "values": {"train/loss": 0.31, "densities/H_f": {"bins": [..], "values": [..]}}}

A value is a number (``NaN`` and ``Infinity`` as Python's json writes them), a string, a
boolean, or a histogram (``bins``: the B + 1 edges, ``values``: the B counts). Images and
charts are not journaled: the figures are drawn again at the next drawing, and each line chart
holds every snapshot so far.

When a segment starts, `sgd_dynamics.wandb_io.segments.SegmentRun` logs again each journaled
(step, key) that no earlier segment's wandb file holds (`missing`), so the synced run holds
every step once. The journal is read as data: a line that is not a record of this shape (the
last line of a killed writer, a damaged or crafted file) is skipped.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

JOURNAL_FILE = "journal.jsonl"
MAX_LINE = 1 << 20  # characters; a record of scalars and a few histograms is far smaller
MAX_BINS = 512  # wandb.Histogram's limit
MAX_KEY = 256


def journal_path(run_dir: str | os.PathLike) -> Path:
    """``RUN_DIR/wandb/journal.jsonl``."""
    return Path(run_dir) / "wandb" / JOURNAL_FILE


def _histogram_parts(value: Any) -> tuple[list[float], list[float]] | None:
    """(bins, counts) of a ``wandb.Histogram``, else None."""
    bins, counts = getattr(value, "bins", None), getattr(value, "histogram", None)
    if bins is None or counts is None or type(value).__name__ != "Histogram":
        return None
    return [float(b) for b in bins], [float(c) for c in counts]


def journal_value(value: Any) -> Any | None:
    """`value` as the journal writes it, or None for a value it does not keep (an image, a
    chart, a tensor)."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return float(value) if isinstance(value, float) else int(value)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a numpy or torch scalar
        return journal_value(value.item())
    parts = _histogram_parts(value)
    if parts is not None:
        return {"bins": parts[0], "values": parts[1]}
    return None


def _valid_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _valid_value(value: Any) -> bool:
    if isinstance(value, bool | str) or _valid_number(value):
        return True
    if isinstance(value, dict) and set(value) == {"bins", "values"}:
        bins, counts = value["bins"], value["values"]
        return (
            isinstance(bins, list)
            and isinstance(counts, list)
            and 1 <= len(counts) <= MAX_BINS
            and len(bins) == len(counts) + 1
            and all(_valid_number(b) and math.isfinite(b) for b in bins)
            and all(_valid_number(c) and math.isfinite(c) and c >= 0 for c in counts)
        )
    return False


def parse_line(line: str) -> tuple[int, dict[str, Any]] | None:
    """(step, values) of one journal line, or None if it is not a well-formed record."""
    if len(line) > MAX_LINE or not line.endswith("\n"):
        return None  # too long, or the writer was stopped inside it
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or set(record) != {"step", "values"}:
        return None
    step, values = record["step"], record["values"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        return None
    if not isinstance(values, dict) or not values:
        return None
    for key, value in values.items():
        if not (0 < len(key) <= MAX_KEY) or not _valid_value(value):
            return None
    return step, values


def read_journal(run_dir: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """The journal's records, (step, values) in the order they were logged; none without a
    journal. Lines that `parse_line` rejects are skipped."""
    path = journal_path(run_dir)
    if not path.is_file() or path.is_symlink():
        return
    with path.open(encoding="utf-8", errors="replace", newline="\n") as handle:
        while True:
            line = handle.readline(MAX_LINE + 1)
            if not line:
                return
            if len(line) > MAX_LINE:  # skip the rest of an over-long line
                while line and not line.endswith("\n"):
                    line = handle.readline(MAX_LINE + 1)
                continue
            parsed = parse_line(line)
            if parsed is not None:
                yield parsed


def missing(
    run_dir: str | os.PathLike, logged: Mapping[int, set[str]]
) -> list[tuple[int, dict[str, Any]]]:
    """The journaled (step, values) with the keys `logged` (step -> keys that the run's wandb
    files hold) does not have at that step; each (step, key) once, steps ascending."""
    found: dict[int, dict[str, Any]] = {}
    for step, values in read_journal(run_dir):
        done = logged.get(step, set())
        for key, value in values.items():
            if key not in done:
                found.setdefault(step, {}).setdefault(key, value)
    return sorted(found.items())


def wandb_value(value: Any) -> Any:
    """A journaled value as wandb logs it (a histogram becomes a ``wandb.Histogram``)."""
    if isinstance(value, dict):
        import wandb

        return wandb.Histogram(np_histogram=(value["values"], value["bins"]))
    return value


def _ends_inside_a_line(path: Path) -> bool:
    """Whether the file at `path` is not empty and its last byte is not a newline."""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return False
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) != b"\n"


class JournalWriter:
    """Appends records to ``RUN_DIR/wandb/journal.jsonl``, one line per `write`, each handed to
    the operating system before `write` returns (line-buffered)."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = journal_path(run_dir)
        self._handle: TextIO | None = None

    def write(self, step: int, values: Mapping[str, Any]) -> None:
        """Journal the values of `values` that `journal_value` keeps, at `step`."""
        kept = {}
        for key, value in values.items():
            written = journal_value(value)
            if written is not None:
                kept[key] = written
        if not kept:
            return
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
            descriptor = os.open(self.path, flags, 0o644)
            self._handle = open(descriptor, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
            if _ends_inside_a_line(self.path):  # a killed writer's last line: end it
                self._handle.write("\n")
        self._handle.write(json.dumps({"step": int(step), "values": kept}) + "\n")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
