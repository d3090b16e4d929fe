"""The thread policy in train.py runs: the start-up line of a single run, of each job of a
joblib sweep and of each DDP rank; a bad `threads` value stops the run with exit status 2."""

from __future__ import annotations

import re

import pytest
from pipeline.pipeline_helpers import run_train

TINY = ["trainer.max_steps=3", "spectral=off", "logger=csv", "callbacks.progress=null"]


def thread_lines(stdout: str) -> list[str]:
    """The start-up lines ``threads: N (reasons)`` in `stdout`, in order. Processes that share
    one stdout (joblib workers, DDP ranks) each write their line in one write, but another
    process's buffered output can end just before it on the same line, so a line is found
    wherever it starts, not only at the start of a line."""
    return re.findall(r"threads: \d+ \([^()\n]*\)", stdout)


@pytest.mark.slow
def test_single_run_prints_its_choice_and_honours_an_override(tmp_path):
    result = run_train([*TINY, "threads=2"], cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    line = "threads: 2 (threads=2 in the config, above the limit: OMP_NUM_THREADS=1)"
    assert thread_lines(result.stdout) == [line]
    result = run_train(TINY, cwd=tmp_path, timeout=120)  # run_train sets OMP_NUM_THREADS=1
    assert result.returncode == 0, result.stderr[-3000:]
    assert thread_lines(result.stdout) == ["threads: 1 (OMP_NUM_THREADS=1)"]


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["0", "two", "-1"])
def test_bad_threads_value_stops_the_run(tmp_path, bad):
    result = run_train([*TINY, f"threads={bad}"], cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stderr == f"error: threads={bad}: an integer >= 1 or auto\n"  # the schema's words


@pytest.mark.slow
def test_each_joblib_job_gets_its_share(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1", *TINY]
    result = run_train([*args, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, timeout=150)
    assert result.returncode == 0, result.stderr[-3000:]
    line = "threads: 1 (OMP_NUM_THREADS=1, 2 joblib workers)"
    assert thread_lines(result.stdout) == [line, line]


@pytest.mark.slow
def test_each_ddp_rank_gets_its_share(tmp_path):
    args = ["trainer=ddp_cpu", "trainer.devices=2", "batch_size=10", *TINY]
    result = run_train(args, cwd=tmp_path, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    line = "threads: 1 (OMP_NUM_THREADS=1, 2 DDP ranks on this machine)"
    assert thread_lines(result.stdout) == [line, line]
