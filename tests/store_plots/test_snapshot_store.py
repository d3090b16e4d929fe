"""Snapshot store: atomic writes, round trips, stacking a run's history, resume clean-up."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from snapshot_factory import dense_snapshot

from sgd_dynamics.run_folder import snapshots as store
from sgd_dynamics.run_folder.files import write_json_atomic
from sgd_dynamics.run_folder.hydra_record import read_run_config, read_run_overrides
from sgd_dynamics.run_folder.snapshots import (
    RunFolderError,
    list_snapshots,
    load_run,
    load_snapshot,
    remove_snapshots_after,
    save_snapshot,
)


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_round_trip_keeps_every_key_value_and_dtype(tmp_path, rng):
    snap = dense_snapshot(42, rng)
    snap["mb_top"] = np.sort(rng.random(5))[::-1]
    snap["grad_norm"] = 0.5
    snap["batch_size"] = 5
    snap["solver_converged"] = np.bool_(True)
    snap["solver_iterations"] = np.int32(17)
    path = save_snapshot(tmp_path, snap)
    assert path == tmp_path / "spectra" / "step_00000042.npz"
    assert _files(path.parent) == ["step_00000042.npz"]  # no temporary file left
    back = load_snapshot(path)
    assert set(back) == set(snap)
    for key, value in snap.items():
        expected = np.asarray(value)
        got = np.asarray(back[key])
        assert got.shape == expected.shape, key
        np.testing.assert_array_equal(got, expected, err_msg=key)
        if key != "step":  # the step is normalised to int64
            assert got.dtype == expected.dtype, key
    assert isinstance(back["step"], np.int64) and back["step"] == 42
    assert np.ndim(back["train_loss"]) == 0 and np.ndim(back["hf_all"]) == 1


def test_torch_tensors_are_stored_as_arrays(tmp_path, rng):
    snap = dense_snapshot(1, rng)
    snap["hf_top"] = torch.tensor(snap["hf_top"].copy())
    snap["step"] = torch.tensor(1)
    back = load_snapshot(save_snapshot(tmp_path, snap))
    np.testing.assert_array_equal(back["hf_top"], snap["hf_top"].numpy())
    assert back["step"] == 1


def test_saving_the_same_step_again_replaces_the_file(tmp_path, rng):
    first = dense_snapshot(7, rng)
    second = dense_snapshot(7, rng)
    save_snapshot(tmp_path, first)
    save_snapshot(tmp_path, second)
    assert _files(tmp_path / "spectra") == ["step_00000007.npz"]
    np.testing.assert_array_equal(
        load_snapshot(list_snapshots(tmp_path)[0])["hf_all"], second["hf_all"]
    )


def test_crash_at_rename_leaves_the_previous_snapshot_intact(tmp_path, rng, monkeypatch):
    old = dense_snapshot(5, rng)
    path = save_snapshot(tmp_path, old)
    old_bytes = path.read_bytes()

    def crash(src, dst):
        raise OSError("simulated crash at rename")

    monkeypatch.setattr(store.os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        save_snapshot(tmp_path, dense_snapshot(5, rng))
    assert path.read_bytes() == old_bytes
    assert _files(path.parent) == ["step_00000005.npz"]


def test_crash_while_writing_leaves_the_previous_snapshot_intact(tmp_path, rng, monkeypatch):
    path = save_snapshot(tmp_path, dense_snapshot(5, rng))
    old_bytes = path.read_bytes()

    def half_written(handle, **arrays):
        handle.write(b"PK\x03\x04 partial zip")
        raise KeyboardInterrupt  # e.g. the job is killed mid-write

    monkeypatch.setattr(store.np, "savez", half_written)
    with pytest.raises(KeyboardInterrupt):
        save_snapshot(tmp_path, dense_snapshot(5, rng))
    assert path.read_bytes() == old_bytes
    assert _files(path.parent) == ["step_00000005.npz"]


def test_write_json_atomic_round_trip_and_crash(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    write_json_atomic(path, {"status": "running", "step": np.int64(3), "x": np.float32(0.5)})
    assert json.loads(path.read_text()) == {"status": "running", "step": 3, "x": 0.5}
    monkeypatch.setattr(store.os, "replace", lambda s, d: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        write_json_atomic(path, {"status": "completed"})
    assert json.loads(path.read_text())["status"] == "running"
    assert _files(tmp_path) == ["status.json"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("cosines"), "missing required keys \\['cosines'\\]"),
        (lambda s: s.update(hf_top=s["hf_top"][::-1]), "'hf_top' must be sorted in descending"),
        (lambda s: s.update(hp_bottom=s["hp_bottom"][::-1]), "'hp_bottom' must be sorted in asc"),
        (lambda s: s.update(hf_all=np.eye(3)), "'hf_all': scalars or 1-d arrays only"),
        (lambda s: s.update(train_loss=np.ones(2)), "'train_loss' must be a scalar"),
        (lambda s: s.update(note="text"), "'note': only bool/int/float"),
        (lambda s: s.update(step=-1), "step must be >= 0"),
        (lambda s: s.update(step=2.5), "step must be an integer"),
    ],
)
def test_save_rejects_snapshots_that_break_the_contract(tmp_path, rng, change, message):
    snap = dense_snapshot(3, rng)
    change(snap)
    with pytest.raises(ValueError, match=message):
        save_snapshot(tmp_path, snap)
    assert list_snapshots(tmp_path) == []


def test_list_snapshots_sorts_by_step_and_ignores_other_files(tmp_path, rng):
    for step in (10, 2, 123_456_789):
        save_snapshot(tmp_path, dense_snapshot(step, rng))
    folder = tmp_path / "spectra"
    (folder / ".step_00000005.npz.k2j3.tmp").write_bytes(b"half")
    (folder / "notes.txt").write_text("x")
    (folder / "step_5.npz").write_bytes(b"not 8 digits")
    names = [p.name for p in list_snapshots(tmp_path)]
    assert names == ["step_00000002.npz", "step_00000010.npz", "step_123456789.npz"]


def test_load_run_stacks_pads_and_fills_missing_with_nan(tmp_path, rng):
    a = dense_snapshot(0, rng, k=5)
    b = dense_snapshot(50, rng, k=3)  # shorter top-k
    c = dense_snapshot(20, rng, k=5)
    for key in ("hf_all", "mt_all", "hp_all", "trace_hf"):
        del c[key]  # an iterative snapshot in between
    a["extra"] = 1.5  # a key present in one snapshot only
    for snap in (a, b, c):
        save_snapshot(tmp_path, snap)
    (tmp_path / "spectra" / ".step_00000099.npz.x.tmp").write_bytes(b"stray")
    history = load_run(tmp_path)
    ordered = [a, c, b]  # by step
    np.testing.assert_array_equal(history.steps, [0, 20, 50])
    assert history.steps.dtype == np.int64
    assert history["hf_top"].shape == (3, 5)
    for row, snap in enumerate(ordered):
        k = snap["hf_top"].shape[0]
        np.testing.assert_array_equal(history["hf_top"][row, :k], snap["hf_top"])
        assert np.all(np.isnan(history["hf_top"][row, k:]))
        assert history["train_loss"][row] == snap["train_loss"]
    assert history["hf_all"].shape == (3, 40)
    assert np.all(np.isnan(history["hf_all"][1])) and np.isnan(history["trace_hf"][1])
    np.testing.assert_array_equal(history["hf_all"][2], b["hf_all"])
    np.testing.assert_array_equal(history["extra"], [1.5, np.nan, np.nan])
    np.testing.assert_array_equal(history.full_spectrum_rows(), [0, 2])
    assert history.has_full_spectra
    assert len(history) == 3 and "steps" in history and "hp_bottom" in history.keys()


def test_load_run_errors_are_clear(tmp_path, rng):
    with pytest.raises(RunFolderError, match="does not exist"):
        load_run(tmp_path / "missing")
    with pytest.raises(RunFolderError, match="no snapshots in .*spectra"):
        load_run(tmp_path)
    save_snapshot(tmp_path, dense_snapshot(1, rng))
    (tmp_path / "spectra" / "step_00000002.npz").write_bytes(b"garbage")
    with pytest.raises(RunFolderError, match="cannot read snapshot .*step_00000002.npz"):
        load_run(tmp_path)
    os.replace(
        tmp_path / "spectra" / "step_00000001.npz", tmp_path / "spectra" / "step_00000002.npz"
    )
    with pytest.raises(RunFolderError, match="stores step 1"):
        load_run(tmp_path)


def test_remove_snapshots_after_keeps_the_checkpoint_step(tmp_path, rng):
    for step in (0, 10, 20, 30):
        save_snapshot(tmp_path, dense_snapshot(step, rng))
    (tmp_path / "spectra" / ".step_00000040.npz.abc.tmp").write_bytes(b"crash")
    removed = remove_snapshots_after(tmp_path, 20)
    assert [p.name for p in removed] == ["step_00000030.npz"]
    assert _files(tmp_path / "spectra") == [
        "step_00000000.npz",
        "step_00000010.npz",
        "step_00000020.npz",
    ]
    assert remove_snapshots_after(tmp_path / "no_run", 0) == []


def test_hydra_files_are_read_without_hydra(tmp_path):
    hydra = tmp_path / ".hydra"
    hydra.mkdir()
    (hydra / "config.yaml").write_text("batch_size: 64\ndataset:\n  batch_size: ${batch_size}\n")
    (hydra / "overrides.yaml").write_text("- batch_size=64\n- +dataset.label_noise=0.2\n")
    assert read_run_config(tmp_path) == {"batch_size": 64, "dataset": {"batch_size": 64}}
    assert read_run_overrides(tmp_path) == ["batch_size=64", "+dataset.label_noise=0.2"]
    assert read_run_config(tmp_path / "none") is None
    assert read_run_overrides(tmp_path / "none") is None


def test_atomic_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = save_snapshot(tmp_path, SNAPSHOT_FOR_MODE)
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600


SNAPSHOT_FOR_MODE = {
    "step": 0,
    "epoch": 0,
    "train_loss": 1.0,
    "train_acc": 0.5,
    "hf_top": [2.0, 1.0],
    "mt_top": [2.0, 1.0],
    "hp_top": [1.0, 0.5],
    "hp_bottom": [-1.0, -0.5],
    "cosines": [1.0, 0.9],
}
