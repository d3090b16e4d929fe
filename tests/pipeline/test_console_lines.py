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


def test_a_sweep_jobs_lines_carry_its_label_until_the_job_ends(monkeypatch):
    from omegaconf import OmegaConf

    from sgd_dynamics.launch.job_console import JobConsole

    stream = RecordingStream()
    monkeypatch.setattr(sys, "stdout", stream)
    job = OmegaConf.create({"hydra": {"mode": "MULTIRUN", "job": {"num": 3}}})
    single = OmegaConf.create({"hydra": {"mode": "RUN", "job": {"num": 0}}})
    callback = JobConsole()
    callback.on_job_start(config=job)
    say("step 0/20 (epoch 0)")
    callback.on_job_end(config=job, job_return=None)
    say("Sweep outputs: /x")
    callback.on_job_start(config=single)
    say("Outputs: /y")
    assert stream.writes == [
        "[job 3] step 0/20 (epoch 0)\n",
        "Sweep outputs: /x\n",
        "Outputs: /y\n",
    ]


def test_logged_records_have_the_console_format():
    import logging

    from sgd_dynamics.utils.console import ConsoleFormatter, set_job_label

    def record(level: int, message: str) -> logging.LogRecord:
        return logging.LogRecord("sgd_dynamics.spectral", level, __file__, 1, message, (), None)

    formatter = ConsoleFormatter()
    try:
        set_job_label("[job 1] ")
        assert formatter.format(record(logging.INFO, "snapshot step 4: loss 2")) == (
            "[job 1] snapshot step 4: loss 2"
        )
        assert formatter.format(record(logging.WARNING, "skipped\nsecond line")) == (
            "[job 1] warning: skipped\n[job 1] second line"
        )
    finally:
        set_job_label("")
    assert formatter.format(record(logging.ERROR, "no disk")) == "error: no disk"
