"""Smoke run of benchmarks/dense_eigen.py --quick: it runs, prints its table, and every path
finds the baseline's top-k eigenpairs."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "dense_eigen.py"


def test_quick_dense_eigen_benchmark_agrees_with_its_baseline(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--quick"])
    runpy.run_path(str(SCRIPT), run_name="__main__")  # one thread inside (limit_threads)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["P", "path", "seconds", "x", "base", "max", "relerr", "vec", "err"]
    rows = [line for line in lines[1:] if line.strip()]
    assert len(rows) == 2 * 4  # two sizes, four paths
    assert sum("lapack top (this project)" in row for row in rows) == 2
    for row in rows:  # seconds and ratio parse; eigenvalues and vectors match the baseline's
        seconds, ratio, relerr, vec_err = map(float, row.split()[-4:])
        assert seconds > 0 and ratio > 0
        assert relerr < 1e-12 and vec_err < 1e-12
