"""Console lines that processes sharing one stdout (joblib workers, DDP ranks) cannot interleave."""

from __future__ import annotations

import sys


def say(line: str) -> None:
    """Print `line` and a newline in one write, then flush. (`print` writes the text and the
    newline separately; on an unbuffered stream two processes' lines then interleave.)"""
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()
