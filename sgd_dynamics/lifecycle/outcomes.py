"""How a run ends when it does not complete: the status recorded in status.json, the one line
printed (``error: ...``) and the exit code of ``train.py``.

=============  ==========================================  =========
status         cause                                       exit code
=============  ==========================================  =========
completed      training and the end-of-run files written   0
interrupted    SIGINT / SIGTERM (checkpoint written first)  130 / 143
diverged       non-finite loss or parameters               3
failed         a file could not be written (one line)      1
failed         any other error (with its traceback)        1
=============  ==========================================  =========

Bad input found before training is `sgd_dynamics.utils.SetupError` (exit 2).
"""

from __future__ import annotations

import errno
import signal

# errno values that mean "the folder cannot take this file": reported in one line, no traceback
WRITE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG, errno.EIO}
)


class RunStopped(Exception):
    """A run that ended without completing, for a reason that is not a bug."""

    status = "failed"
    exit_code = 1


class RunInterrupted(RunStopped):
    """SIGINT or SIGTERM: training stopped after a finished step and the checkpoint was
    written (`checkpoint`, or None when none exists yet)."""

    status = "interrupted"

    def __init__(self, signum: int, step: int, checkpoint: str | None) -> None:
        self.signum = int(signum)
        self.step = int(step)
        self.checkpoint = checkpoint
        self.exit_code = 128 + self.signum
        where = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint yet"
        super().__init__(
            f"interrupted by {signal.Signals(self.signum).name} at step {self.step} ({where})"
        )


class RunDiverged(RunStopped):
    """The loss (or a parameter) became non-finite; `step` is the number of SGD steps behind
    the parameters that produced it."""

    status = "diverged"
    exit_code = 3

    def __init__(self, quantity: str, value: float, step: int, lr: float | None) -> None:
        self.step = int(step)
        hint = "lower the learning rate" + (f" (lr={lr:g})" if lr is not None else "")
        super().__init__(f"{quantity} became {value} at step {self.step}: {hint}")


class RunFileError(RunStopped):
    """A run file could not be written (full disk, read-only folder, no permission)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(f"cannot write {path}: {reason}")

    @classmethod
    def from_os_error(cls, exc: OSError, folder: str) -> RunFileError:
        """The error naming `exc.filename` (or `folder` when the error names no file)."""
        return cls(str(exc.filename or folder), exc.strerror or str(exc))


def as_run_stopped(exc: BaseException, folder: str) -> RunStopped | None:
    """`exc` as a `RunStopped` when it is one or is a write error of the run folder (looking
    through the chain of causes), else None (a bug: keep its traceback)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, RunStopped):
            return seen
        if isinstance(seen, OSError) and seen.errno in WRITE_ERRNOS:
            return RunFileError.from_os_error(seen, folder)
        seen = seen.__cause__ or seen.__context__
    return None
