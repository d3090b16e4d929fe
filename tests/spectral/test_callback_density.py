"""spectral.density in the callback: densities stored at the chosen snapshots, the density
figure drawn, and a resumed run keeping the same density points."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from trainer_helpers import quiet_trainer

from callbacks.spectral import SpectralSnapshots
from sgd_dynamics.lightning import Gauss10DataModule
from sgd_dynamics.lightning.module import ClassifierModule
from sgd_dynamics.models import MLP
from sgd_dynamics.plots.run_figures import DENSITIES_PNG
from sgd_dynamics.run_folder.snapshots import list_snapshots, load_run


class StopAt(pl.Callback):
    """Stop training at a global step (a run interrupted after its checkpoint there)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            trainer.should_stop = True


def fit(run_dir, stop_at=None, ckpt_path=None):
    pl.seed_everything(0, verbose=False)
    data = Gauss10DataModule(batch_size=10, seed=0)
    data.load()
    module = ClassifierModule(
        MLP(data.input_dim, data.num_classes, width=16), partial(torch.optim.SGD, lr=0.1)
    )
    callbacks = [
        ModelCheckpoint(
            dirpath=run_dir / "checkpoints", save_last=True, save_top_k=0, every_n_train_steps=10
        ),
        SpectralSnapshots(
            run_dir=run_dir,
            k=3,
            method="iterative",
            log_points=None,
            every_n_steps=10,
            density=True,
            density_points=3,
        ),
    ]
    if stop_at is not None:
        callbacks.append(StopAt(stop_at))
    trainer = quiet_trainer(
        max_steps=40, callbacks=callbacks, enable_checkpointing=True, default_root_dir=run_dir
    )
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)


def density_steps_stored(run_dir) -> list[int]:
    history = load_run(run_dir)
    return history.steps[history.density_rows()].tolist()


@pytest.mark.slow
def test_densities_at_the_chosen_points_drawn_and_kept_on_resume(tmp_path):
    whole = tmp_path / "whole"
    fit(whole)
    history = load_run(whole)
    assert history.steps.tolist() == [0, 10, 20, 30, 40]
    # 3 points log-spaced in log(step + 1) over [0, 40]: 0, exp(log(41) / 2) - 1 = 5.4 -> 10, 40
    assert density_steps_stored(whole) == [0, 10, 40]
    w1 = history["hp_to_minus_hf_w1"]
    chosen = np.isin(history.steps, [0, 10, 40])
    assert np.all(np.isfinite(w1[chosen])) and np.all(w1[chosen] > 0)
    assert np.all(np.isnan(w1[~chosen]))  # the other snapshots hold no densities
    assert np.all(history["density_seconds"][chosen] > 0)
    assert (whole / "figures" / DENSITIES_PNG).stat().st_size > 0

    # interrupted after step 20's checkpoint, then resumed: the same density points
    parts = tmp_path / "resumed"
    fit(parts, stop_at=20)
    assert [p.name for p in list_snapshots(parts)][-1] == "step_00000020.npz"
    fit(parts, ckpt_path=parts / "checkpoints" / "last.ckpt")
    assert load_run(parts).steps.tolist() == [0, 10, 20, 30, 40]
    assert density_steps_stored(parts) == [0, 10, 40]
    assert (parts / "figures" / DENSITIES_PNG).exists()


def test_density_scalars_are_logged_and_bad_counts_refused(tmp_path):
    from callbacks.spectral import _scalar_metrics

    arrays = dict(
        cosines=np.array([0.95]), hf_top=np.array([2.0]), hp_to_minus_hf_w1=0.25, density_seconds=3
    )
    metrics = _scalar_metrics(arrays)
    assert metrics["densities/hp_to_minus_hf_w1"] == 0.25
    assert metrics["densities/density_seconds"] == 3.0
    assert "densities/hp_to_minus_hf_w1" not in _scalar_metrics(dict(cosines=np.array([0.9])))
    for bad in (0, True, 1.5):
        with pytest.raises(ValueError, match="spectral.density_points must be an integer >= 1"):
            SpectralSnapshots(run_dir=tmp_path, density=True, density_points=bad)
