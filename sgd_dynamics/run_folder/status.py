"""``RUN_DIR/status.json``: what a run is doing, written atomically by the global-zero process.

A run owns the file from its start; a resumed run only once its checkpoint has been restored
(`running`), so a resume that cannot start leaves a finished run's status as it was.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
from pathlib import Path
from typing import Any

from sgd_dynamics.run_folder.files import write_json_atomic

STATUS_FILE = "status.json"


def now() -> str:
    """The local time, ISO 8601 to the second."""
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


class StatusFile:
    """The status of one run segment: `running`, then `completed` or an end with an error.

    Args:
        run_dir: the run folder.
        resumed_from: the checkpoint this segment resumes from (None: a new run).
        writes: whether this process writes files (the global-zero process).
    """

    def __init__(self, run_dir: str | os.PathLike, resumed_from: str | None, writes: bool) -> None:
        self.path = Path(run_dir) / STATUS_FILE
        self.writes = writes
        self.owned = resumed_from is None
        self.record: dict[str, Any] = {
            "status": "running",
            "started": now(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "resumed_from": resumed_from,
        }

    def running(self) -> None:
        """Take the file over and record "running"."""
        self.owned = True
        if self.writes:
            write_json_atomic(self.path, self.record)

    def completed(self, global_step: int) -> None:
        if self.writes:
            ended = {"status": "completed", "finished": now(), "global_step": global_step}
            write_json_atomic(self.path, {**self.record, **ended})

    def ended(self, status: str, error: str, global_step: int, checkpoint: str | None) -> None:
        """Record an end that is not a completion, if this segment owns the file; a folder
        that refuses the write leaves it as it was (the error is reported elsewhere)."""
        if not (self.writes and self.owned):
            return
        ended = {
            "status": status,
            "finished": now(),
            "global_step": global_step,
            "error": error,
            "checkpoint": checkpoint,
        }
        with contextlib.suppress(OSError):
            write_json_atomic(self.path, {**self.record, **ended})


def write_failed_status(run_dir: str | os.PathLike, error: str, status: str = "failed") -> None:
    """Record in ``run_dir/status.json`` a run that ended (`status`: failed, or interrupted)
    before training started."""
    write_json_atomic(
        Path(run_dir) / STATUS_FILE,
        {"status": status, "started": now(), "finished": now(), "error": error},
    )
