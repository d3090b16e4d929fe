"""SIGINT and SIGTERM: stop cleanly instead of dying mid-write.

Two regimes:

- set-up (imports, config, data, before training): the first signal prints one line and exits
  with 128 + signal number (`SetupInterrupted`, a SystemExit: no traceback); nothing was
  trained, so nothing is saved;
- training: the first signal only records a request (`STOP`); the checkpoint callback sees it
  at the end of the current step, writes ``last.ckpt`` and raises `RunInterrupted`. A second
  SIGINT raises KeyboardInterrupt at once (files stay intact: every write is atomic).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SetupInterrupted(SystemExit):
    """A signal during set-up; the exit code is 128 + signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + int(signum))
        self.signum = int(signum)


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _say(line: str) -> None:
    """Write a line to stderr from a signal handler (os.write: no buffered-IO re-entrance)."""
    with contextlib.suppress(OSError):
        os.write(2, (line + "\n").encode())


def _setup_handler(signum: int, frame: object) -> None:
    line = f"interrupted by {signal.Signals(signum).name} during set-up: nothing was trained"
    commands = sys.modules.get("sgd_dynamics.utils.commands")  # no import in a signal handler
    command = None if commands is None else commands.original_command()
    _say(line if command is None else f"{line}; start again with: {command}")
    raise SetupInterrupted(signum)


def exit_on_signal_during_setup() -> None:
    """Install the set-up regime's handler for SIGINT and SIGTERM (main thread only)."""
    if _on_main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, _setup_handler)


class StopRequest:
    """The first SIGINT / SIGTERM received during training (`signum`, None before)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def handler(self, signum: int, frame: object) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signum is None:
            self.signum = int(signum)
            again = " (Ctrl-C again to stop at once)" if signum == signal.SIGINT else ""
            _say(
                f"\n{signal.Signals(signum).name}: stopping after this step and writing the "
                f"checkpoint{again}"
            )

    def install(self) -> None:
        """Take SIGINT and SIGTERM (again: Lightning installs its own SIGTERM handler when
        `fit` starts; under SLURM its SIGUSR1 auto-requeue handler is left in place)."""
        if _on_main_thread():
            for signum in STOP_SIGNALS:
                signal.signal(signum, self.handler)


STOP = StopRequest()


@contextlib.contextmanager
def graceful_stop(active: bool = True) -> Iterator[StopRequest]:
    """Within the block, SIGINT and SIGTERM only set `STOP.signum` when `active` (a callback
    acts on it); else they have Python's default handlers (KeyboardInterrupt, and Lightning's
    own SIGTERM handling). The previous handlers are restored afterwards and the request is
    cleared."""
    main = _on_main_thread()
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS} if main else {}
    STOP.signum = None
    if main and active:
        STOP.install()
    elif main:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield STOP
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        STOP.signum = None
