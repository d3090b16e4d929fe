"""The wandb workspace layout is the keys' prefixes: every key a run logs is under one of the
sections train/, spectra/, alignment/, densities/, figures/."""

from __future__ import annotations

import numpy as np
import pytest

from callbacks.spectral import _scalar_metrics
from sgd_dynamics.wandb_io.run_logging import (
    SECTIONS,
    STEP_METRIC,
    histogram_pairs,
    wandb_scalars,
    workspace_key,
)


@pytest.mark.parametrize(
    ("logged", "shown"),
    [
        ("train/loss", "train/loss"),
        ("test/acc", "train/test_acc"),
        ("final/test_loss", "train/final_test_loss"),
        ("epoch", "train/epoch"),
        ("spectra/hf_top_1", "spectra/hf_top_1"),
        ("figures/alignment", "figures/alignment"),
        (STEP_METRIC, STEP_METRIC),
    ],
)
def test_training_metrics_go_to_the_train_section(logged, shown):
    assert workspace_key(logged) == shown


def snapshot_arrays(rng: np.random.Generator, k: int = 4, p: int = 40) -> dict:
    hf = np.sort(rng.normal(size=p) * 10.0 ** rng.uniform(-6, 0, p))[::-1]
    mt = np.concatenate([np.sort(rng.exponential(size=5))[::-1], np.zeros(p - 5)])
    hp = np.sort(mt - hf)
    return dict(
        step=7,
        hf_all=hf,
        mt_all=mt,
        hp_all=hp,
        hf_top=hf[:k],
        mt_top=mt[:k],
        mb_top=mt[:k] * 2,
        hp_top=hp[::-1][:k],
        hp_bottom=hp[:k],
        cosines=np.array([0.99, 0.5, np.nan, np.nan]),
        trace_hf=hf.sum(),
        trace_mt=mt.sum(),
        trace_hp=hp.sum(),
        grad_norm=1.0,
        loss=0.3,
        seconds=2.0,
        hp_to_minus_hf_w1=0.1,
        density_seconds=1.0,
    )


def test_every_snapshot_key_is_under_a_section():
    arrays = snapshot_arrays(np.random.default_rng(0))
    metrics = _scalar_metrics(arrays)
    scalars = wandb_scalars(arrays, metrics)
    keys = set(metrics) | set(scalars) | set(histogram_pairs(arrays))
    assert {key.split("/", 1)[0] for key in keys} <= set(SECTIONS)
    assert metrics["spectra/hf_top_4"] == arrays["hf_top"][3]  # every index for the CSV
    assert "spectra/hf_top_2" not in scalars and "spectra/hf_top_1" in scalars
    assert scalars["spectra/hp_max"] == arrays["hp_all"].max()
    assert scalars["spectra/hp_min"] == arrays["hp_all"].min()
    assert scalars["densities/M_zeros"] == 35  # P - 5 nonzero eigenvalues of M
    assert "alignment/cosines_3" not in metrics  # an undefined cosine is not logged
    counts, _ = histogram_pairs(arrays)["densities/M_nonzero"]
    assert counts.sum() == 5


def test_the_line_charts_come_with_every_snapshot_then_at_a_bounded_count():
    from sgd_dynamics.wandb_io.run_logging import CHARTS_AT_EVERY_SNAPSHOT_UP_TO, charts_due

    cap = CHARTS_AT_EVERY_SNAPSHOT_UP_TO
    assert all(charts_due(n) for n in range(1, cap + 1))
    for total in (cap + 1, 3 * cap, 1000):
        logged = [n for n in range(1, total + 1) if charts_due(n)]
        # each chart holds n steps: the points written stay within a few times cap x total
        assert sum(logged) <= 4 * cap * total
        assert len(logged) >= cap


def test_chart_history_agrees_with_load_run_and_follows_rewritten_files(tmp_path):
    from sgd_dynamics.run_folder.snapshots import load_run, save_snapshot
    from sgd_dynamics.wandb_io.run_logging import CHARTS, chart_history

    rng = np.random.default_rng(1)

    def save(step: int, k: int) -> None:
        top = np.sort(rng.uniform(0, 1, k))[::-1]
        save_snapshot(
            tmp_path,
            dict(
                step=step,
                epoch=0,
                train_loss=1.0,
                train_acc=0.5,
                hf_top=top,
                mt_top=top / 2,
                hp_top=top / 3,
                hp_bottom=-top,
                cosines=top,
            ),
        )

    for step, k in ((0, 3), (5, 4), (9, 4)):
        save(step, k)
        history, charts = load_run(tmp_path), chart_history(tmp_path)
        np.testing.assert_array_equal(charts.steps, history.steps)
        for key in CHARTS:
            if key in history:
                np.testing.assert_array_equal(charts[key], history[key])
    save(5, 4)  # a resumed run rewrites a snapshot: its new values are read
    np.testing.assert_array_equal(chart_history(tmp_path)["hf_top"], load_run(tmp_path)["hf_top"])
