"""The run-folder lock, across real processes: held while the holder lives, free after it
dies of SIGKILL, and a second taker refused with the holder's process id."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from sgd_dynamics.lifecycle.run_lock import (
    RunFolderInUse,
    abandon_run_locks,
    acquire_run_lock,
    lock_holder,
    release_run_lock,
)

HOLD = textwrap.dedent(
    """
    import sys, time
    from sgd_dynamics.lifecycle.run_lock import acquire_run_lock
    acquire_run_lock(sys.argv[1])
    print("held", flush=True)
    time.sleep(120)
    """
)


@pytest.fixture
def holder_process(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait()


def test_second_process_is_refused_with_the_holders_pid(tmp_path, holder_process):
    assert lock_holder(tmp_path) == holder_process.pid
    with pytest.raises(RunFolderInUse, match=f"in use by process {holder_process.pid}"):
        acquire_run_lock(tmp_path)


def test_lock_is_free_after_the_holder_is_killed(tmp_path, holder_process):
    os.kill(holder_process.pid, signal.SIGKILL)
    holder_process.wait()
    assert lock_holder(tmp_path) is None
    acquire_run_lock(tmp_path)
    try:
        assert lock_holder(tmp_path) == os.getpid()
        acquire_run_lock(tmp_path)  # a second take by the holder is a no-op
    finally:
        release_run_lock(tmp_path)
    assert lock_holder(tmp_path) is None


def test_lock_file_symlink_is_not_followed(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("keep\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").symlink_to(target)
    with pytest.raises(Exception, match="cannot lock the run folder"):
        acquire_run_lock(run)
    assert target.read_text() == "keep\n"
    assert lock_holder(tmp_path / "no-such-folder") is None


def test_an_abandoned_lock_leaves_the_lock_file_as_it_was(tmp_path):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    acquire_run_lock(fresh)
    assert (fresh / ".lock").read_text() == f"{os.getpid()}\n"
    old = tmp_path / "old"
    old.mkdir()
    (old / ".lock").write_bytes(b"12345\n")
    acquire_run_lock(old)
    abandon_run_locks()
    assert not (fresh / ".lock").exists()  # this process created it: removed
    assert (old / ".lock").read_bytes() == b"12345\n"  # the bytes it had
    assert lock_holder(fresh) is None and lock_holder(old) is None
