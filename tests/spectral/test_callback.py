"""The spectral callback inside a real (short) Lightning fit on Gauss-10, in-process."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from trainer_helpers import quiet_trainer

from callbacks.spectral import SpectralSnapshots
from sgd_dynamics.config_schema import KEYS
from sgd_dynamics.lightning import Gauss10DataModule
from sgd_dynamics.lightning.module import ClassifierModule
from sgd_dynamics.lightning.run import DrawsAtRunEnd
from sgd_dynamics.models import MLP
from sgd_dynamics.run_folder.snapshots import list_snapshots, load_run, load_snapshot, snapshot_path


def fit(run_dir, max_steps, spectral=True, ckpt_path=None, seed=0, **spectral_kwargs):
    """Train the default Gauss-10 MLP for `max_steps` with batch 10; returns (trainer, module)."""
    pl.seed_everything(seed, verbose=False)
    data = Gauss10DataModule(batch_size=10, seed=seed)
    data.load()
    module = ClassifierModule(
        MLP(data.input_dim, data.num_classes, width=16), partial(torch.optim.SGD, lr=0.1)
    )
    callbacks = [ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, save_top_k=0)]
    if spectral:
        options = dict(k=5, method="dense", log_points=None, every_n_steps=10) | spectral_kwargs
        callbacks.append(SpectralSnapshots(run_dir=run_dir, **options))
    trainer = quiet_trainer(
        max_steps=max_steps,
        callbacks=callbacks,
        enable_checkpointing=True,
        default_root_dir=run_dir,
    )
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return trainer, module


def test_snapshots_hold_consistent_spectra(tmp_path):
    fit(tmp_path, max_steps=35)
    history = load_run(tmp_path)
    assert history.steps.tolist() == [0, 10, 20, 30, 35]  # step 0 and the last step always
    n_params = 20 * 16 + 16 + 16 * 10 + 10
    for i, step in enumerate(history.steps):
        snap = load_snapshot(snapshot_path(tmp_path, int(step)))
        hf, mt, hp = snap["hf_all"], snap["mt_all"], snap["hp_all"]
        assert hf.shape == mt.shape == hp.shape == (n_params,)
        scale = np.abs(hf).max() + np.abs(mt).max()
        # trace(H_f) = trace(M) - trace(H_p), from the stored full spectra
        assert abs(hf.sum() - (mt.sum() - hp.sum())) <= 1e-10 * scale * n_params
        # M is positive semi-definite with at most n_samples nonzero eigenvalues
        assert mt.min() >= -1e-10 * mt.max()
        assert (mt > 1e-9 * mt.max()).sum() <= int(snap["n_samples"]) == 100
        # the top-k arrays are the top of the full spectra
        np.testing.assert_allclose(snap["hf_top"], hf[::-1][:5], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(snap["mt_top"], mt[::-1][:5], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(snap["hp_bottom"], hp[:5], rtol=1e-10, atol=1e-14)
        assert snap["train_loss"] == history["train_loss"][i]
        assert np.all(np.diff(snap["cosines"]) <= 1e-12) and snap["cosines"].max() <= 1 + 1e-12
    assert np.all(np.diff(history.steps) > 0)
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "alignment.png",
        "full_spectra.png",
        "training.png",
    ]


def test_the_callback_does_not_change_the_training_trajectory(tmp_path):
    _, with_spectra = fit(tmp_path / "on", max_steps=25, method="iterative", k=3)
    _, without = fit(tmp_path / "off", max_steps=25, spectral=False)
    for a, b in zip(with_spectra.parameters(), without.parameters(), strict=True):
        assert torch.equal(a, b)
    assert len(list_snapshots(tmp_path / "on")) == 4


def test_resume_continues_the_history_without_loss_or_duplicates(tmp_path):
    fit(tmp_path, max_steps=30)  # 3 epochs of 10 steps: last.ckpt at step 30
    # a crash after the checkpoint leaves a snapshot the resumed run will take again
    stale = snapshot_path(tmp_path, 37)
    stale.write_bytes(snapshot_path(tmp_path, 30).read_bytes())
    fit(tmp_path, max_steps=60, ckpt_path=tmp_path / "checkpoints" / "last.ckpt")
    history = load_run(tmp_path)
    assert history.steps.tolist() == [0, 10, 20, 30, 40, 50, 60]
    assert not stale.exists()
    # the resumed snapshots continue from the checkpoint: losses keep going down
    assert np.all(np.diff(history["train_loss"]) < 0)


def test_snapshot_under_inference_mode_restores_the_model_state(tmp_path):
    data = Gauss10DataModule(batch_size=10, seed=0)
    data.load()
    module = ClassifierModule(
        MLP(data.input_dim, data.num_classes, width=8), partial(torch.optim.SGD, lr=0.1)
    )
    module.train()
    callback = SpectralSnapshots(run_dir=tmp_path, k=3, method="dense")
    callback._samples = data.spectral_samples(None)
    trainer = pl.Trainer(logger=False, max_steps=1, enable_progress_bar=False)
    trainer.datamodule = data  # what Lightning sets during fit
    before = [p.detach().clone() for p in module.parameters()]
    with torch.inference_mode():
        callback._snapshot(trainer, module)
    assert module.training and module.net.training
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))
    assert load_snapshot(snapshot_path(tmp_path, 0))["hf_all"].shape == (20 * 8 + 8 + 8 * 10 + 10,)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(dtype="float16"), "spectral.dtype"),
        (dict(method="lanczos"), "spectral.method"),
        (dict(k=0), "spectral.k"),
        (dict(n_samples=0), "spectral.n_samples"),
        (dict(hp_method="exact"), "spectral.hp_method"),
    ],
)
def test_bad_settings_are_named(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        SpectralSnapshots(run_dir=tmp_path, **kwargs)


@pytest.mark.parametrize("name", ["n_samples", "progress_every", "density_points"])
@pytest.mark.parametrize("value", [None, 0, -1, 1, 3, 2.5, 0.25, True, "4", float("inf")])
def test_the_callback_refuses_what_the_schema_refuses(tmp_path, name, value):
    """The callback's own settings follow their key's rule in the schema, with its text."""
    kind = KEYS[f"spectral.{name}"].kind
    if kind.accepts(value):
        SpectralSnapshots(run_dir=tmp_path, **{name: value})
    else:
        with pytest.raises(ValueError) as info:
            SpectralSnapshots(run_dir=tmp_path, **{name: value})
        assert str(info.value) == f"spectral.{name} must be {kind.text}, got {value!r}"


@pytest.mark.parametrize("name", ["method", "dtype", "hp_method"])
def test_the_schema_offers_exactly_the_engine_choices(tmp_path, name):
    """Every choice the schema accepts builds the engine's options; a value outside it is
    refused by both."""
    values = KEYS[f"spectral.{name}"].kind.values
    assert len(values) >= 2
    for value in values:
        assert SpectralSnapshots(run_dir=tmp_path, **{name: value}).options is not None
    with pytest.raises(ValueError, match=f"spectral.{name}"):
        SpectralSnapshots(run_dir=tmp_path, **{name: "other"})
    assert not KEYS[f"spectral.{name}"].kind.accepts("other")


def test_the_run_function_finds_the_callback_by_its_interface(tmp_path):
    """`train_and_measure` defers the drawing of the callbacks that implement DrawsAtRunEnd:
    the spectral callback does; a callback with only one of its two members does not."""
    assert isinstance(SpectralSnapshots(run_dir=tmp_path), DrawsAtRunEnd)
    assert not isinstance(ModelCheckpoint(dirpath=tmp_path), DrawsAtRunEnd)

    class OnlyTheFlag(pl.Callback):
        defer_drawing = False

    assert not isinstance(OnlyTheFlag(), DrawsAtRunEnd)


def test_figures_can_be_left_for_later(tmp_path):
    fit(tmp_path, max_steps=10, draw_at_end=False)
    assert len(list_snapshots(tmp_path)) == 2
    assert not (tmp_path / "figures").exists()


@pytest.mark.parametrize("hp_method", ["ritz", "none"])
def test_iterative_snapshots_with_cheaper_hp(tmp_path, hp_method):
    """hp_method reaches the engine: H_f and M as in the dense run of the same trajectory; H_p's
    extremes are Ritz estimates inside H_p's spectrum ("ritz") or NaN ("none")."""
    fit(tmp_path / "dense", max_steps=10)
    fit(tmp_path / "it", max_steps=10, method="iterative", hp_method=hp_method)
    dense, iterative = load_run(tmp_path / "dense"), load_run(tmp_path / "it")
    assert iterative.steps.tolist() == dense.steps.tolist() == [0, 10]
    np.testing.assert_allclose(iterative["hf_top"], dense["hf_top"], rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(iterative["mt_top"], dense["mt_top"], rtol=1e-7, atol=1e-12)
    if hp_method == "none":
        assert np.all(np.isnan(iterative["hp_top"])) and np.all(np.isnan(iterative["hp_bottom"]))
    else:
        top_exact, bottom_exact = dense["hp_top"], dense["hp_bottom"]
        scale = np.abs(dense["hp_all"]).max()
        assert np.all(iterative["hp_top"] <= top_exact + 1e-10 * scale)  # Cauchy interlacing
        assert np.all(iterative["hp_bottom"] >= bottom_exact - 1e-10 * scale)
        assert np.all(np.isfinite(iterative["hp_max_residual"]))
