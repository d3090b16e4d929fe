"""What a run folder's wandb files hold, read record by record (``scripts/read_wandb_offline.py``).

For every ``.wandb`` file under ``RUN_DIR/wandb/`` (one per training segment, in the order
``wandb sync`` uploads them): its run id and the steps its history covers; over all segments
of the run: the (step, key) pairs logged more than once, the steps between the first and the
last with no record, the histogram keys and the images per step, and the artifacts.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sgd_dynamics.wandb_io.offline import records, run_files

STEP_METRIC = "trainer/global_step"
_BOOKKEEPING = {"_step", "_runtime", "_timestamp", STEP_METRIC}


@dataclass
class Segment:
    """One ``.wandb`` file: its run id, whether it ended (an exit record), its history steps."""

    path: Path
    run_id: str
    name: str
    ended: bool
    steps: list[int]
    artifacts: list[str]


@dataclass
class HistoryCheck:
    """The history of a run folder's wandb files, all segments together."""

    segments: list[Segment]
    counts: Counter = field(default_factory=Counter)  # (step, key) -> times logged
    types: dict[str, str] = field(default_factory=dict)  # key -> wandb value type

    @property
    def run_ids(self) -> list[str]:
        return sorted({s.run_id for s in self.segments})

    @property
    def steps(self) -> list[int]:
        return sorted({step for step, _ in self.counts})

    @property
    def duplicated(self) -> list[tuple[int, str, int]]:
        """(step, key, times) for every (step, key) logged more than once."""
        return sorted((s, k, n) for (s, k), n in self.counts.items() if n > 1)

    @property
    def missing(self) -> list[int]:
        """Steps between the first and the last with no record at all."""
        steps = self.steps
        return sorted(set(range(steps[0], steps[-1] + 1)) - set(steps)) if steps else []

    def keys_of_type(self, kind: str) -> dict[int, list[str]]:
        """step -> the keys of wandb type `kind` (``histogram``, ``image-file``) logged there."""
        out: dict[int, list[str]] = defaultdict(list)
        for (step, key), _ in sorted(self.counts.items()):
            if self.types.get(key) == kind:
                out[step].append(key)
        return dict(out)


def check_history(run_dir: str | os.PathLike) -> HistoryCheck:
    """Read every wandb file of `run_dir` (`run_files`) record by record."""
    check = HistoryCheck(segments=[])
    for path in run_files(run_dir):
        run_id, name, ended, steps, artifacts = "", "", False, set(), []
        for record in records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run_id, name = record.run.run_id, record.run.display_name
            elif kind == "exit":
                ended = True
            elif kind == "artifact":
                if record.artifact.name not in artifacts:  # a chart's table: once per log
                    artifacts.append(record.artifact.name)
            elif kind == "history":
                items: dict = {}
                for item in record.history.item:
                    value = json.loads(item.value_json)
                    parts = [item.key] if item.key else list(item.nested_key)
                    if len(parts) == 1:
                        items[parts[0]] = value
                    else:  # a dict value (histogram, image): one item per field
                        items.setdefault(parts[0], {})[parts[-1]] = value
                if STEP_METRIC not in items:
                    continue
                step = int(items[STEP_METRIC])
                steps.add(step)
                for key, value in items.items():
                    if key in _BOOKKEEPING:
                        continue
                    check.counts[(step, key)] += 1
                    if isinstance(value, dict) and "_type" in value:
                        check.types[key] = str(value["_type"])
        check.segments.append(Segment(path, run_id, name, ended, sorted(steps), artifacts))
    return check


def _ranges(steps: list[int]) -> str:
    """``0-119, 150`` for [0, 1, ..., 119, 150]."""
    parts, start = [], None
    for i, step in enumerate(steps):
        if start is None:
            start = step
        if i + 1 == len(steps) or steps[i + 1] != step + 1:
            parts.append(str(start) if start == step else f"{start}-{step}")
            start = None
    return ", ".join(parts) if parts else "none"


def format_check(check: HistoryCheck, root: str | os.PathLike | None = None) -> str:
    """The report `scripts/read_wandb_offline.py` prints."""
    lines = []
    for i, s in enumerate(check.segments, start=1):
        where = os.path.relpath(s.path, root) if root is not None else str(s.path)
        lines.append(
            f"segment {i}: {where}\n  run id {s.run_id} ({s.name}), "
            f"{'ended' if s.ended else 'no exit record (killed)'}, "
            f"steps {_ranges(s.steps)}, artifacts: {', '.join(s.artifacts) or 'none'}"
        )
    ids = check.run_ids
    verdict = "one run" if len(ids) == 1 else "NOT one run"
    lines.append(f"run ids: {', '.join(ids) or 'none'} ({verdict})")
    lines.append(f"steps covered: {_ranges(check.steps)}")
    lines.append(f"steps missing between the first and the last: {_ranges(check.missing)}")
    duplicated = check.duplicated
    lines.append(f"(step, key) logged more than once: {len(duplicated)}")
    lines += [f"  step {s}: {k} x{n}" for s, k, n in duplicated[:20]]
    if len(duplicated) > 20:
        lines.append(f"  ... and {len(duplicated) - 20} more")
    for title, kind in (("histograms", "histogram"), ("figures", "image-file")):
        per_step = check.keys_of_type(kind)
        lines.append(f"{title} at {len(per_step)} step(s):")
        lines += [f"  step {step}: {', '.join(keys)}" for step, keys in per_step.items()]
    return "\n".join(lines)
