"""The spectral callback's logging: wandb runs get the review records of
`sgd_dynamics.wandb_io.run_logging` (histograms, line charts and scalars at each snapshot;
figures at each drawing); other loggers (CSV) get every scalar of the snapshot."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger

from sgd_dynamics.wandb_io import run_logging


def log_snapshot(
    trainer: pl.Trainer,
    run_dir: str | os.PathLike,
    arrays: Mapping[str, Any],
    metrics: Mapping[str, float],
    final: bool = False,
) -> None:
    """Send a snapshot (stored in `run_dir`) to every logger of `trainer` at its step; `final`:
    the run's last scheduled snapshot (wandb gets the line charts there whatever their cadence)."""
    step = int(arrays["step"])
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            run = logger.experiment
            run_logging.define_step_metrics(run)
            run_logging.log_snapshot(run, run_dir, arrays, metrics, final=final)
        else:
            logger.log_metrics(dict(metrics), step=step)


def log_drawings(trainer: pl.Trainer, paths: Sequence[str | os.PathLike], step: int) -> None:
    """Send the PNG figures `paths` to every wandb logger of `trainer`, at `step`."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            run_logging.log_drawings(logger.experiment, paths, step)
