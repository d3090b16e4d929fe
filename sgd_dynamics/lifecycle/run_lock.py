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

__all__ = [
    "LOCK_NAME",
    "RunFolderInUse",
    "abandon_run_locks",
    "acquire_run_lock",
    "lock_holder",
    "release_run_lock",
]

LOCK_NAME = ".lock"
_held: dict[Path, int] = {}  # run folder (resolved) -> open descriptor, for this process's life
_before: dict[Path, bytes | None] = {}  # run folder -> its lock file's bytes before (None: none)


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
    existed = path.is_file() and not path.is_symlink()
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
    _before[path.parent] = _read_all(fd) if existed else None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[path.parent] = fd


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def release_run_lock(run_dir: str | os.PathLike) -> None:
    """Give `run_dir`'s lock back (nothing when this process does not hold it)."""
    folder = _lock_file(run_dir).parent
    _before.pop(folder, None)
    fd = _held.pop(folder, None)
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the flock


def abandon_run_locks() -> None:
    """Give back every lock this process holds and leave each lock file as it was before this
    process took it (removed when it created it): a command refused after it took a folder's
    lock changes no byte of that folder."""
    for folder in list(_held):
        fd = _held.pop(folder)
        before = _before.pop(folder, None)
        try:
            if before is None:
                os.unlink(folder / LOCK_NAME)  # while still held: no other process took it
            else:
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, before)
        except OSError:
            pass  # the folder went away or cannot be written: nothing more to put back
        finally:
            os.close(fd)


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
