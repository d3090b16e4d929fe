"""Console lines from processes sharing one stdout (joblib workers, DDP ranks) must not interleave:
each line reaches the stream in a single write."""

from __future__ import annotations

import sys

from sgd_dynamics.utils.console import say


class RecordingStream:
    def __init__(self) -> None:
        self.writes: list[str] = []
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        self.flushes += 1


def test_a_line_is_one_write_then_a_flush(monkeypatch):
    stream = RecordingStream()
    monkeypatch.setattr(sys, "stdout", stream)
    say("threads: 1 (OMP_NUM_THREADS=1, 2 joblib workers)")
    assert stream.writes == ["threads: 1 (OMP_NUM_THREADS=1, 2 joblib workers)\n"]
    assert stream.flushes == 1
