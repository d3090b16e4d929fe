"""Fixtures for the store, plot and report tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from snapshot_factory import dense_snapshot


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def dense_run(tmp_path: Path, rng: np.random.Generator) -> Path:
    """A run folder with dense snapshots at log-spaced steps and a Hydra config."""
    from sgd_dynamics.run_folder.snapshots import save_snapshot

    run = tmp_path / "run"
    for step in (0, 1, 3, 10, 30, 100, 300, 1000):
        save_snapshot(run, dense_snapshot(step, rng))
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text(
        "seed: 3\nbatch_size: 5\ndataset:\n  name: gauss10\n  batch_size: ${batch_size}\n"
        "model:\n  depth: 1\n"
    )
    return run
