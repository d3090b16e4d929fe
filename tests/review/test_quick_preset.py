"""``experiment=quick``, the first thing the quick start suggests: Gauss-10, a short run, and no
more snapshots than the preset states (conf/experiment/quick.yaml, docs/running.md)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from pipeline.pipeline_helpers import REPO_ROOT, load_entry_point, outputs_line, run_train

from sgd_dynamics.schedule import snapshot_steps

STATED_SNAPSHOTS = 10  # "10 log-spaced snapshots" (conf/experiment/quick.yaml, docs/running.md)
load_entry_point()  # registers the resolvers the configs use


def test_the_quick_preset_composes_to_a_short_gauss10_run(tmp_path):
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=quick", f"run_dir={tmp_path}"])
    assert cfg.dataset._target_.endswith("Gauss10DataModule")
    assert cfg.trainer.max_steps <= 500
    assert cfg.spectral.draw_at_end is True and cfg.spectral.density is False
    steps = snapshot_steps(
        cfg.trainer.max_steps, cfg.spectral.every_n_steps, cfg.spectral.log_points
    )
    assert len(steps) <= STATED_SNAPSHOTS and steps[-1] == cfg.trainer.max_steps


@pytest.mark.slow
def test_the_quick_preset_takes_its_stated_snapshots_and_draws_the_figures(tmp_path):
    result = run_train(["experiment=quick", "logger=none"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = outputs_line(result.stdout)
    assert 2 <= len(list((run_dir / "spectra").glob("step_*.npz"))) <= STATED_SNAPSHOTS
    assert sorted(p.name for p in (run_dir / "figures").glob("*.png"))
    plan = [ln for ln in result.stdout.splitlines() if ln.startswith("spectral: ")]
    assert plan and plan[0].startswith(f"spectral: {STATED_SNAPSHOTS} snapshots at steps 0..")
