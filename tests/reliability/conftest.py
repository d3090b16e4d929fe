"""The uninterrupted reference run that the fault and signal tests compare against."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_helpers import SMALL_RUN, train


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> Path:
    """The small run of `SMALL_RUN`, trained without interruption; its folder."""
    cwd = tmp_path_factory.mktemp("reference")
    result = train([*SMALL_RUN, f"hydra.run.dir={cwd / 'run'}"], cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd / "run"
