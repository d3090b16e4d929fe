"""Smoke run of benchmarks/density.py cost --quick: it runs and prints its ratio table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "density.py"


@pytest.mark.slow
def test_quick_density_cost_prints_ratios() -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "cost", "--quick", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    rows = {line[:36].strip(): line[36:].split() for line in lines if len(line) > 36}
    assert rows["one full-data gradient pass"][1] == "1.0"
    snapshot = rows["density snapshot (all three)"]
    float(snapshot[0]), float(snapshot[1])  # seconds, x t_grad: numbers (sizes: the machine's)
    assert any(line.startswith("H_f columns 64 ") for line in lines), lines
