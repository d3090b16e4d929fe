"""Console lines that processes sharing one stdout (joblib workers, DDP ranks) cannot interleave,
in one format: the message alone (``warning: ...`` for warnings and errors), after the job's
label in a sweep (``[job 3] ``), so that every line names the job that printed it.

`say` prints a line; `ConsoleFormatter` gives the logging records the same format (conf/hydra/
job_logging/console.yaml installs it on the console handler; train.log keeps timestamps); the
Hydra callback `sgd_dynamics.launch.job_console.JobConsole` sets the label while a job of a
sweep runs (`job_label`)."""

from __future__ import annotations

import logging
import sys

_label = ""  # this process's current job label: "" outside a sweep, "[job N] " inside one


def job_label() -> str:
    """The label that starts every console line of the job running in this process."""
    return _label


def set_job_label(label: str) -> None:
    """Start every console line with `label` from now on (``""``: none)."""
    global _label
    _label = label


def labelled(text: str) -> str:
    """`text` with the job label before each of its lines."""
    return "\n".join(f"{_label}{line}" for line in text.split("\n")) if _label else text


def say(line: str) -> None:
    """Print `line` (after the job label) and a newline in one write, then flush. (`print`
    writes the text and the newline separately; on an unbuffered stream two processes' lines
    then interleave.)"""
    sys.stdout.write(f"{labelled(line)}\n")
    sys.stdout.flush()


class ConsoleFormatter(logging.Formatter):
    """Logging records as console lines: the message for INFO and DEBUG, ``warning: <message>``
    (``error: ``, ``critical: ``) above, each line after the job label. Tracebacks follow, also
    labelled."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            text = f"{record.levelname.lower()}: {text}"
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        if record.stack_info:
            text = f"{text}\n{self.formatStack(record.stack_info)}"
        return labelled(text)
