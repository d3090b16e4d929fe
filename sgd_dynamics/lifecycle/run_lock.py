"""One process per run folder: an advisory lock on ``RUN_DIR/.lock``.

The lock is `fcntl.flock` on that file, so the operating system releases it when the process
ends, however it ends (SIGKILL included): a run folder whose ``status.json`` says ``running``
while nobody holds its lock belongs to a dead process. The file holds the holder's process id,
for the message a second process gets.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sgd_dynamics.utils.errors import SetupError

__all__ = ["LOCK_NAME", "RunFolderInUse", "acquire_run_lock", "lock_holder", "release_run_lock"]

LOCK_NAME = ".lock"
_held: dict[Path, int] = {}  # run folder (resolved) -> open descriptor, for this process's life


class RunFolderInUse(SetupError):
    """Another live process holds the run folder's lock."""


def _lock_file(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir).resolve() / LOCK_NAME


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 32).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def acquire_run_lock(run_dir: str | os.PathLike) -> None:
    """Take `run_dir`'s lock for the rest of this process's life (a no-op when this process
    holds it already). The lock file is opened without following a symlink.

    Raises:
        RunFolderInUse: ``<run_dir> is in use by process <pid>``.
        SetupError: the lock file cannot be created (the message names it and why).
    """
    path = _lock_file(run_dir)
    if path.parent in _held:
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise SetupError(f"cannot lock the run folder {path.parent}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _read_pid(fd)
        os.close(fd)
        who = f"process {pid}" if pid is not None else "another process"
        raise RunFolderInUse(
            f"{path.parent} is in use by {who}: wait for it to end, or stop it first"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[path.parent] = fd


def release_run_lock(run_dir: str | os.PathLike) -> None:
    """Give `run_dir`'s lock back (nothing when this process does not hold it)."""
    fd = _held.pop(_lock_file(run_dir).parent, None)
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the flock


def lock_holder(run_dir: str | os.PathLike) -> int | None:
    """The process id of the live process holding `run_dir`'s lock (this one included), or
    None when no process holds it (no lock file, or its holder has ended)."""
    path = _lock_file(run_dir)
    if path.parent in _held:
        return os.getpid()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_pid(fd) or -1
    finally:
        os.close(fd)
    return None
