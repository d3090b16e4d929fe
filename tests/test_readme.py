"""The README's Python snippets run as written (documentation that matches the code)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_curvature_engine_snippet_runs(capsys):
    (snippet,) = [b for b in python_blocks() if "compute_spectra" in b]
    exec(compile(snippet, "README.md", "exec"), {})
    last = capsys.readouterr().out.strip().splitlines()[-1]
    # the iterative top-15 eigenspace of H_f is the dense one
    assert float(last) == pytest.approx(1.0, abs=1e-6)


def test_the_quick_start_names_existing_scripts():
    text = README.read_text()
    for script in ("scripts/setup.sh", "scripts/test.sh", ".ci/run", "train.py"):
        assert script in text
        assert (README.parent / script).is_file()
