"""The sweep report's "H_p -> -H_f" column: W1 at the last snapshot holding densities."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from sgd_dynamics.report.analysis import end_of_training, end_quantities
from sgd_dynamics.run_folder.snapshots import RunHistory


def _history(w1: list[float] | None) -> RunHistory:
    steps = np.array([0, 10, 20])
    arrays = {
        "cosines": np.array([[0.95, 0.5], [0.99, 0.2], [0.97, np.nan]]),
        "hf_top": np.array([[3.0, 1.0], [5.0, 2.0], [4.0, 1.5]]),
        "mt_top": np.array([[2.0, 1.0], [6.0, 2.0], [3.0, 1.0]]),
    }
    if w1 is not None:
        arrays["hp_to_minus_hf_w1"] = np.array(w1)
    return RunHistory(run_dir=Path("run"), steps=steps, arrays=arrays)


def test_end_of_training_takes_the_last_stored_distance() -> None:
    # densities at steps 0 and 10 only (the last snapshot without: NaN-padded by load_run)
    end = end_of_training(_history([0.3, 0.1, math.nan]))
    assert end["hp_to_minus_hf_w1"] == 0.1
    assert end_of_training(_history([0.3, 0.1, 0.05]))["hp_to_minus_hf_w1"] == 0.05
    assert math.isnan(end_of_training(_history(None))["hp_to_minus_hf_w1"])
    assert math.isnan(end_of_training(_history([math.nan] * 3))["hp_to_minus_hf_w1"])
    assert "hp_to_minus_hf_w1" in end_quantities()
