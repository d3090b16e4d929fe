"""Console progress: a line as training starts and every few seconds (plain lines off a
terminal, a TQDM bar over all steps on one), progress lines inside long snapshots, the count of
snapshots a resumed run will take. Clocks are fake: no verdict depends on machine speed."""

from __future__ import annotations

import logging
import threading
from functools import partial

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from trainer_helpers import quiet_trainer

import callbacks.spectral as spectral_module
from callbacks.progress import (
    PeriodicProgressBar,
    StepTQDMProgressBar,
    console_progress_bar,
)
from callbacks.spectral import SpectralSnapshots
from sgd_dynamics.curvature import SpectraOptions, compute_spectra
from sgd_dynamics.curvature.progress import ProgressReporter, reporting, tick
from sgd_dynamics.lightning import Gauss10DataModule
from sgd_dynamics.lightning.module import ClassifierModule
from sgd_dynamics.models import MLP
from sgd_dynamics.run_folder.snapshots import load_run


class FakeClock:
    """Advances by `step` seconds at every reading."""

    def __init__(self, step: float = 1.0) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def fit(run_dir, max_steps, bar=None, ckpt_path=None, **spectral_kwargs):
    """Gauss-10, MLP 20-16-10, batch 10 (10 steps per epoch), dense snapshots every 10 steps."""
    pl.seed_everything(0, verbose=False)
    data = Gauss10DataModule(batch_size=10, seed=0)
    data.load()
    module = ClassifierModule(
        MLP(data.input_dim, data.num_classes, width=16), partial(torch.optim.SGD, lr=0.1)
    )
    callbacks = [ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, save_top_k=0)]
    if bar is not None:
        callbacks.append(bar)
    options = dict(k=5, method="dense", log_points=None, every_n_steps=10, draw_at_end=False)
    callbacks.append(SpectralSnapshots(run_dir=run_dir, **(options | spectral_kwargs)))
    trainer = quiet_trainer(
        max_steps=max_steps,
        callbacks=callbacks,
        enable_checkpointing=True,
        enable_progress_bar=bar is not None,
        default_root_dir=run_dir,
    )
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return trainer


def test_the_reporter_emits_a_line_per_interval_naming_the_operation_and_counts():
    clock, lines = FakeClock(step=2.0), []
    with reporting(
        lines.append, every_seconds=5.0, prefix="snapshot step 7: ", clock=clock, watch=False
    ) as reporter:
        # the clock reads 2 s at the start and 2 s more at every tick
        tick("H_f products", 16)  # 2 s in: nothing yet
        assert lines == []
        tick("H_f products", 16)  # 4 s
        tick("M products", 3)  # 6 s: a line
        tick("eigendecompositions")  # 8 s
        tick("H_f products", 1)  # 10 s
        tick("H_f products", 1)  # 12 s: 6 s since the last line
    assert lines == [
        "snapshot step 7: 6 s, now M products; done 32 H_f products, 3 M products",
        "snapshot step 7: 12 s, now H_f products; done 34 H_f products, 3 M products, "
        "1 eigendecompositions",
    ]
    assert reporter.lines == 2
    tick("H_f products", 1)  # outside the block: nobody counts it
    assert reporter.counts["H_f products"] == 34


def test_a_long_step_without_ticks_still_gets_its_line():
    """The watcher thread polls the clock while one long operation runs (no tick comes)."""
    seen = threading.Event()
    clock = FakeClock(step=100.0)  # every reading is 100 s later: a line is due at once
    with reporting(lambda line: seen.set(), every_seconds=5.0, clock=clock):
        tick("eigendecompositions")
        assert seen.wait(timeout=60)


def test_the_engine_reports_its_products(tmp_path):
    data = Gauss10DataModule(batch_size=10, seed=0)
    data.load()
    net = MLP(data.input_dim, data.num_classes, width=16)
    x, y = data.spectral_samples(None)
    counted = {}
    for method in ("dense", "iterative"):
        with reporting(lambda line: None, watch=False) as reporter:
            compute_spectra(net, x, y, SpectraOptions(k=4, method=method), batch_size=10)
        counted[method] = dict(reporter.counts)
    n_params = 20 * 16 + 16 + 16 * 10 + 10
    assert counted["dense"]["H_f products"] == n_params  # H_f assembled column by column
    assert counted["dense"]["eigendecompositions"] >= 2
    assert counted["iterative"]["H_f products"] > 0


def test_every_long_snapshot_prints_progress(tmp_path, monkeypatch, caplog):
    """Each snapshot reads the (fake) clock several times, 1 s per reading: every snapshot
    lasts longer than the 2 s interval and must print at least one progress line."""
    clocks = []

    def fake_reporting(*args, **kwargs):
        clocks.append(FakeClock(step=1.0))
        return reporting(*args, **kwargs, clock=clocks[-1], watch=False)

    monkeypatch.setattr(spectral_module, "reporting", fake_reporting)
    with caplog.at_level(logging.INFO, logger="sgd_dynamics.spectral"):
        fit(tmp_path, max_steps=20, progress_every=2.0)
    steps = load_run(tmp_path).steps.tolist()
    assert steps == [0, 10, 20] and len(clocks) == 3
    for step, clock in zip(steps, clocks, strict=True):
        assert clock.now > 2.0  # the snapshot took longer than the interval
        lines = [r.getMessage() for r in caplog.records]
        progress = [m for m in lines if m.startswith(f"snapshot step {step}: ") and "done" in m]
        assert progress, lines
        assert "H_f products" in progress[0]


def test_plain_progress_starts_with_training_and_before_the_first_snapshot(tmp_path, caplog):
    events = []
    bar = PeriodicProgressBar(
        every_n_seconds=5.0,
        clock=FakeClock(step=1.0),
        write=lambda line: events.append(("bar", line)),
    )

    class Collect(logging.Handler):
        def emit(self, record):
            events.append(("log", record.getMessage()))

    handler = Collect()
    logging.getLogger("sgd_dynamics.spectral").addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger="sgd_dynamics.spectral"):
            fit(tmp_path, max_steps=30, bar=bar)
    finally:
        logging.getLogger("sgd_dynamics.spectral").removeHandler(handler)
    bar_lines = [line for kind, line in events if kind == "bar"]
    assert events[0] == ("bar", "step 0/30 (epoch 0)  | 0.0 s")  # before any snapshot
    assert bar_lines[-1].startswith("step 30/30 (epoch 3)  train/loss ")
    # the clock advances 1 s per step: a line every 5 steps, the first and the last
    assert [line.split()[1] for line in bar_lines] == [f"{s}/30" for s in range(0, 31, 5)] + [
        "30/30"
    ]


def test_the_terminal_bar_counts_global_steps_across_epochs(tmp_path):
    assert isinstance(console_progress_bar(terminal=False), PeriodicProgressBar)
    bar = console_progress_bar(terminal=True)
    assert isinstance(bar, StepTQDMProgressBar)
    trainer = fit(tmp_path, max_steps=25, bar=bar)  # 10 steps per epoch: 3 epochs
    assert trainer.global_step == 25
    assert (bar.train_progress_bar.n, bar.train_progress_bar.total) == (25, 25)


def test_a_resumed_run_counts_the_snapshots_it_will_take(tmp_path, caplog):
    fit(tmp_path, max_steps=30)
    with caplog.at_level(logging.INFO, logger="sgd_dynamics.spectral"):
        fit(tmp_path, max_steps=60, ckpt_path=tmp_path / "checkpoints" / "last.ckpt")
    (line,) = [r.getMessage() for r in caplog.records if "snapshots at steps" in r.getMessage()]
    assert line.startswith("spectral: 3 snapshots at steps 40..60")  # 40, 50, 60
    assert load_run(tmp_path).steps.tolist() == [0, 10, 20, 30, 40, 50, 60]


def test_reporter_refuses_a_non_positive_interval():
    with pytest.raises(ValueError, match="every_seconds"):
        ProgressReporter(print, every_seconds=0)
