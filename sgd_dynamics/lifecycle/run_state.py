"""What a run folder holds now, read from its files and its lock: finished, in use, dead,
stopped, missing. Used by the sweep report (which jobs to name) and by ``sgd-dynamics resume``
(which jobs to leave, resume, or start).

A folder whose ``status.json`` says ``running`` is *in use* while a live process holds its lock
(`sgd_dynamics.lifecycle.run_lock.lock_holder`), or, for a folder without a lock file, while the
process that ``status.json`` names is alive on this host; otherwise the process that wrote
``running`` has died (SIGKILL, power loss, out of memory) and the run is *dead*.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from sgd_dynamics.lifecycle.run_lock import LOCK_NAME, lock_holder
from sgd_dynamics.run_folder.status import STATUS_FILE

__all__ = ["CHECKPOINT", "RunState", "RunView", "view_run"]

CHECKPOINT = Path("checkpoints") / "last.ckpt"  # the checkpoint a resume continues from


class RunState(str, Enum):
    """A run folder's state. ``completed`` and ``diverged`` are ends (a resume changes nothing
    in them); the others are runs that did not end, or never started."""

    COMPLETED = "completed"
    DIVERGED = "diverged"
    IN_USE = "in use"  # a live process is running it
    DEAD = "dead"  # status.json says running, no live process holds it
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    NO_STATUS = "no status"  # a folder without a readable status.json
    MISSING = "missing"  # no folder at all

    @property
    def finished(self) -> bool:
        return self in (RunState.COMPLETED, RunState.DIVERGED)


@dataclass(frozen=True)
class RunView:
    """`state` of the folder `path`; `pid`: the live process running it (state ``in use``);
    `checkpoint`: its ``checkpoints/last.ckpt`` when that file exists."""

    path: Path
    state: RunState
    pid: int | None = None
    checkpoint: Path | None = None

    def describe(self) -> str:
        """``in use by process 123``, ``dead (status running, no live process)``, ``failed``."""
        if self.state is RunState.IN_USE:
            return f"in use by process {self.pid}" if self.pid and self.pid > 0 else "in use"
        if self.state is RunState.DEAD:
            return "dead (status running, no live process)"
        return self.state.value


def _read_status(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _alive_here(record: dict) -> int | None:
    """The pid that `record` (status.json) names when that process is alive on this host."""
    pid = record.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    if record.get("host") != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        return pid
    return pid


def view_run(run_dir: str | os.PathLike) -> RunView:
    """The state of `run_dir` now (see the module docstring)."""
    path = Path(run_dir)
    if not path.is_dir():
        return RunView(path, RunState.MISSING)
    checkpoint = path / CHECKPOINT if (path / CHECKPOINT).is_file() else None
    holder = lock_holder(path)
    if holder is not None:
        return RunView(path, RunState.IN_USE, pid=holder, checkpoint=checkpoint)
    record = _read_status(path / STATUS_FILE)
    status = record.get("status") if record is not None else None
    if status == "running":
        pid = None if (path / LOCK_NAME).exists() else _alive_here(record)
        state = RunState.IN_USE if pid is not None else RunState.DEAD
        return RunView(path, state, pid=pid, checkpoint=checkpoint)
    ends = (RunState.COMPLETED, RunState.DIVERGED, RunState.INTERRUPTED, RunState.FAILED)
    state = next((s for s in ends if s.value == status), RunState.NO_STATUS)
    return RunView(path, state, checkpoint=checkpoint)
