"""The life-cycle pieces in-process: atomic checkpoint files, strict JSON, the outcome of an
error, the epoch count, stop requests, the spectral callback on non-finite parameters."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from trainer_helpers import quiet_trainer

from callbacks.spectral import SpectralSnapshots
from sgd_dynamics.launch.overrides import output_folder
from sgd_dynamics.lifecycle import faults
from sgd_dynamics.lifecycle.outcomes import RunDiverged, RunFileError, as_run_stopped
from sgd_dynamics.lifecycle.stop import StopRequest
from sgd_dynamics.lightning import Gauss10DataModule
from sgd_dynamics.lightning.checkpoint_io import AtomicCheckpointIO
from sgd_dynamics.lightning.epochs import completed_epochs
from sgd_dynamics.lightning.module import ClassifierModule
from sgd_dynamics.models import MLP
from sgd_dynamics.run_folder.files import write_json_atomic
from sgd_dynamics.run_folder.location import unwritable_output
from sgd_dynamics.run_folder.snapshots import list_snapshots


@pytest.fixture
def fault(monkeypatch):
    """Set SGD_DYNAMICS_FAULT for this test, with fresh occurrence counts."""
    monkeypatch.setattr(faults, "_counts", {})
    return lambda spec: monkeypatch.setenv(faults.FAULT_VARIABLE, spec)


def test_checkpoint_is_written_beside_its_target_and_survives_a_failed_write(
    tmp_path, monkeypatch, fault
):
    io = AtomicCheckpointIO()
    target = tmp_path / "checkpoints" / "last.ckpt"
    first = {"state_dict": {"w": torch.arange(6.0)}, "global_step": 3}
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (renames.append((a, b)), real_replace(a, b)))
    io.save_checkpoint(first, target)
    ((source, destination),) = renames
    assert Path(source).parent == target.parent and Path(destination) == target  # no copy
    loaded = torch.load(target, weights_only=True)
    assert loaded["global_step"] == 3 and torch.equal(loaded["state_dict"]["w"], torch.arange(6.0))

    good = target.read_bytes()
    fault("write:last.ckpt=enospc")  # the disk fills up during the next write
    with pytest.raises(OSError) as raised:
        io.save_checkpoint({"state_dict": {"w": torch.zeros(6)}, "global_step": 4}, target)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(target)
    assert target.read_bytes() == good  # the previous checkpoint is intact
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]  # no temporary file


def test_json_files_hold_null_for_non_finite_numbers(tmp_path):
    path = write_json_atomic(
        tmp_path / "x.json",
        {
            "a": float("nan"),
            "b": [1.5, float("inf"), np.float32("-inf")],
            "c": np.array([np.nan, 2]),
        },
    )

    def refuse(constant):
        raise ValueError(constant)

    assert json.loads(path.read_text(), parse_constant=refuse) == {
        "a": None,
        "b": [1.5, None, None],
        "c": [None, 2.0],
    }


def test_a_write_error_anywhere_in_the_chain_becomes_one_line_naming_the_file():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/runs/x/summary.json")
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        stopped = as_run_stopped(outer, "/runs/x")
    assert isinstance(stopped, RunFileError)
    assert str(stopped) == "cannot write /runs/x/summary.json: No space left on device"
    nameless = as_run_stopped(OSError(errno.EROFS, "Read-only file system"), "/runs/x")
    assert str(nameless) == "cannot write /runs/x: Read-only file system"
    assert as_run_stopped(ValueError("a bug"), "/runs/x") is None  # keeps its traceback


def test_epoch_counts_the_completed_passes_over_the_training_set():
    for batches, accumulate in ((20, 1), (7, 1), (10, 3)):
        steps_per_epoch = -(-batches // accumulate)
        completed, in_epoch = 0, 0
        for step in range(0, 200):  # count epochs one step at a time
            trainer = SimpleNamespace(
                global_step=step,
                num_training_batches=batches,
                accumulate_grad_batches=accumulate,
                current_epoch=-1,
            )
            assert completed_epochs(trainer) == completed, (batches, step)
            in_epoch += 1
            if in_epoch == steps_per_epoch:
                completed, in_epoch = completed + 1, 0


def test_first_signal_requests_a_stop_and_a_second_ctrl_c_stops_at_once():
    stop = StopRequest()
    stop.handler(signal.SIGTERM, None)
    assert stop.signum == signal.SIGTERM
    stop.handler(signal.SIGTERM, None)  # repeated SIGTERM: still one request
    assert stop.signum == signal.SIGTERM
    with pytest.raises(KeyboardInterrupt):
        stop.handler(signal.SIGINT, None)


def test_output_folder_that_cannot_take_files_is_named(tmp_path):
    (tmp_path / "f").write_text("")
    assert unwritable_output(output_folder([f"hydra.run.dir={tmp_path}/runs/${{now:%H}}"])) is None
    assert unwritable_output(output_folder(["x=1"]), cwd=tmp_path) is None  # outputs/ under cwd
    problem = unwritable_output(output_folder(["-m", f"hydra.sweep.dir='{tmp_path}/f/sweep'"]))
    assert problem == f"cannot write {tmp_path}/f/sweep: {tmp_path}/f is not a folder"


class PoisonAfterStep(pl.Callback):
    """Set one weight to NaN at the end of global step `step` (before the snapshot)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.parameters())[0, 0] = float("nan")


def test_non_finite_parameters_skip_the_snapshot_and_stop_training(tmp_path, caplog):
    pl.seed_everything(0, verbose=False)
    data = Gauss10DataModule(batch_size=10, seed=0)
    data.load()
    module = ClassifierModule(
        MLP(data.input_dim, data.num_classes, width=4), partial(torch.optim.SGD, lr=0.1)
    )
    spectral = SpectralSnapshots(
        run_dir=tmp_path, k=2, method="dense", log_points=None, every_n_steps=1, draw_at_end=False
    )
    trainer = quiet_trainer(
        max_steps=10, callbacks=[PoisonAfterStep(3), spectral], default_root_dir=tmp_path
    )
    with caplog.at_level(logging.WARNING, logger="sgd_dynamics.spectral"):
        with pytest.raises(RunDiverged, match=r"^loss became nan at step 3: lower the"):
            trainer.fit(module, datamodule=data)
    assert [p.name for p in list_snapshots(tmp_path)] == [f"step_0000000{i}.npz" for i in range(3)]
    assert "snapshot at step 3 skipped: the parameters are not all finite" in caplog.text


def test_checkpoints_follow_steps_and_seconds_whichever_comes_first(tmp_path, monkeypatch):
    """A fake clock (1 s per step, then 4 s per step) and a trainer that records its saves:
    with every 5 steps and every 10 s, saves fall where either is due since the last save."""
    from callbacks import last_checkpoint

    clock = [0.0]
    monkeypatch.setattr(last_checkpoint.time, "perf_counter", lambda: clock[0])
    saved = []
    trainer = SimpleNamespace(
        global_step=0,
        ckpt_path=None,
        max_steps=40,
        world_size=1,
        is_global_zero=True,
        save_checkpoint=lambda path: saved.append(trainer.global_step),
    )
    module = torch.nn.Linear(2, 2)
    callback = last_checkpoint.LastCheckpoint(tmp_path, every_n_steps=5, every_n_seconds=10.0)
    callback.on_train_start(trainer, module)
    expected, last_step, last_time = [0], 0, 0.0
    for step in range(1, 41):
        trainer.global_step, clock[0] = step, float(step if step <= 20 else 4 * step - 60)
        callback.on_train_batch_end(trainer, module, None, None, step - 1)
        if step - last_step >= 5 or clock[0] - last_time >= 10 or step == 40:
            expected.append(step)
            last_step, last_time = step, clock[0]
    assert saved == expected and saved[:7] == [0, 5, 10, 15, 20, 23, 26]  # steps, then seconds
    callback.on_train_end(trainer, module)
    assert saved == expected  # the last step is already saved
