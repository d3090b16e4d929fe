"""Progress of a long curvature computation: which operation runs, how much of it is done.

The engine calls `tick` where it makes products (``tick("H_f products", m)`` for a block of m
vectors) or starts a long step (``tick("eigendecompositions")``). Outside `reporting` a tick
costs one context-variable read and does nothing. Inside ``with reporting(emit):`` the ticks are
counted and, every `every_seconds`, one line goes to `emit`, e.g.::

    snapshot step 300: 12 s, now H_f products; done 1002 H_f products, 1 eigendecompositions

A watcher thread also checks the clock between ticks, so a single long step (a P x P
eigendecomposition) still gets its line. The reporter lives in a `contextvars.ContextVar`, so
only the code run inside the ``with`` block (in its thread) reports to it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar

__all__ = ["ProgressReporter", "reporting", "tick"]


class ProgressReporter:
    """Counts ticks per operation and emits a progress line at most every `every_seconds`.

    Args:
        emit: receives each line (e.g. ``logging.getLogger(...).info``).
        every_seconds: the interval between lines; the first comes `every_seconds` after the start,
            so a computation shorter than that prints nothing.
        prefix: put before each line (e.g. ``"snapshot step 300: "``).
        clock: seconds, monotonic (``time.monotonic``; tests pass a fake one).
    """

    def __init__(
        self,
        emit: Callable[[str], None],
        every_seconds: float = 5.0,
        prefix: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not every_seconds > 0:
            raise ValueError(f"every_seconds must be positive, got {every_seconds!r}")
        self.emit = emit
        self.every_seconds = float(every_seconds)
        self.prefix = prefix
        self.clock = clock
        self.counts: dict[str, int] = {}
        self.current = "starting"
        self.lines = 0
        self._lock = threading.Lock()
        self._start = self._last = clock()

    def tick(self, operation: str, count: int = 1) -> None:
        """Record `count` units of `operation` (now the current one), then `poll`."""
        with self._lock:
            self.counts[operation] = self.counts.get(operation, 0) + int(count)
            self.current = operation
        self.poll()

    def line(self, now: float) -> str:
        """``<prefix><elapsed> s, now <current operation>; done <count> <operation>, ...``."""
        with self._lock:
            done = ", ".join(f"{n} {name}" for name, n in self.counts.items()) or "nothing yet"
            current = self.current
        return f"{self.prefix}{now - self._start:.0f} s, now {current}; done {done}"

    def poll(self) -> bool:
        """Emit a line if `every_seconds` have passed since the last one (or the start)."""
        now = self.clock()
        with self._lock:
            due = now - self._last >= self.every_seconds
            if due:
                self._last = now
                self.lines += 1
        if due:
            self.emit(self.line(now))
        return due


_REPORTER: ContextVar[ProgressReporter | None] = ContextVar(
    "sgd_dynamics_curvature_progress", default=None
)


def tick(operation: str, count: int = 1) -> None:
    """Count work for the reporter installed by `reporting`, if any (else do nothing).

    Args:
        operation: what runs now, e.g. "H_f products".
        count: units of it done.
    """
    reporter = _REPORTER.get()
    if reporter is not None:
        reporter.tick(operation, count)


@contextlib.contextmanager
def reporting(
    emit: Callable[[str], None],
    every_seconds: float = 5.0,
    prefix: str = "",
    clock: Callable[[], float] = time.monotonic,
    watch: bool = True,
) -> Iterator[ProgressReporter]:
    """Install a `ProgressReporter` for the code inside the ``with`` block.

    Args:
        emit, every_seconds, prefix, clock: those of `ProgressReporter`.
        watch: poll the reporter from a daemon thread (every `every_seconds` / 4, at most 1 s) until
            the block ends, so one long step still gets its lines.

    Yields:
        The reporter (its `counts` and `lines` say what was reported).
    """
    reporter = ProgressReporter(emit, every_seconds, prefix, clock)
    token = _REPORTER.set(reporter)
    stop = threading.Event()
    watcher = None
    if watch:

        def watch_clock() -> None:
            while not stop.wait(min(1.0, every_seconds / 4)):
                reporter.poll()

        watcher = threading.Thread(target=watch_clock, name="curvature-progress", daemon=True)
        watcher.start()
    try:
        yield reporter
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()
        _REPORTER.reset(token)
