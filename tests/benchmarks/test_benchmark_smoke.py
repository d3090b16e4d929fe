"""Smoke run of benchmarks/spectra.py --quick: it runs and prints its table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "spectra.py"


def test_quick_benchmark_prints_table() -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert any(line.startswith("workload") and "max relerr" in line for line in lines)
    rows = [line.split() for line in lines if line.startswith(("gauss10", "mnist"))]
    methods = {" ".join(r[1:-6]) for r in rows}
    assert any(m.startswith("this: dense") for m in methods), methods
    assert any(m.startswith("this: cold") for m in methods), methods
    assert any(m.startswith("this: warm") for m in methods), methods
    assert any(m.startswith("curvlinops+eigsh") for m in methods), methods
    for r in rows:  # the seconds column parses as a number; its size depends on the machine
        float(r[-6])
