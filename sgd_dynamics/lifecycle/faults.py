"""Fault injection for the reliability tests: make the process fail at a named point.

``SGD_DYNAMICS_FAULT="<point>[#<n>]=<action>"`` (read at every call, so tests set it per
subprocess): at the n-th time (default 1) this process reaches a point whose name matches
``<point>`` (an fnmatch pattern), perform ``<action>``:

- ``kill``: SIGKILL this process (nothing runs after it: no handler, no ``finally``);
- ``sigint`` / ``sigterm``: send this process SIGINT / SIGTERM (as Ctrl-C or a scheduler
  would, at a known moment);
- ``enospc`` / ``erofs``: raise OSError(ENOSPC / EROFS) naming the file.

Points: ``write:<file name>`` inside every atomic file write, after the data are in the
temporary file and before it replaces the target (``write:last.ckpt``, ``write:step_*.npz``,
``write:status.json``, ``write:summary.json``); ``step:<S>`` at the end of global step S;
``setup`` before train.py builds the run; ``figures`` before the figures are drawn.
Without the variable this is one dictionary lookup.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import signal

FAULT_VARIABLE = "SGD_DYNAMICS_FAULT"
_SIGNALS = {"kill": signal.SIGKILL, "sigint": signal.SIGINT, "sigterm": signal.SIGTERM}
_ERRNOS = {"enospc": errno.ENOSPC, "erofs": errno.EROFS}
_ACTIONS = (*_SIGNALS, *_ERRNOS)
_counts: dict[str, int] = {}


def fault_point(name: str, path: str | os.PathLike | None = None) -> None:
    """Reach the point `name` (`path`: the file being written, named by injected OSErrors)."""
    spec = os.environ.get(FAULT_VARIABLE)
    if not spec:
        return
    target, _, action = spec.partition("=")
    pattern, _, nth = target.partition("#")
    if action not in _ACTIONS:
        raise ValueError(f"{FAULT_VARIABLE}={spec}: the action must be one of {_ACTIONS}")
    if not fnmatch.fnmatchcase(name, pattern):
        return
    _counts[pattern] = _counts.get(pattern, 0) + 1
    if _counts[pattern] != int(nth or 1):
        return
    if action in _SIGNALS:
        os.kill(os.getpid(), _SIGNALS[action])
        return
    code = _ERRNOS[action]
    raise OSError(code, os.strerror(code), None if path is None else os.fspath(path))
