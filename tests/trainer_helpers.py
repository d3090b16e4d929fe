"""A quiet Lightning Trainer for the in-process fits of the test suite."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

QUIET_TRAINER_DEFAULTS: dict[str, Any] = {
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "num_sanity_val_steps": 0,
    "limit_val_batches": 0,
    "accelerator": "cpu",
}


def quiet_trainer(**overrides: Any) -> pl.Trainer:
    """A `pl.Trainer` on the CPU with no logger, no checkpointing, no progress bar, no model
    summary and no validation; every keyword replaces or adds to `QUIET_TRAINER_DEFAULTS`
    (pass `enable_checkpointing=True` with a ModelCheckpoint callback, `limit_val_batches=1.0`
    to validate)."""
    return pl.Trainer(**(QUIET_TRAINER_DEFAULTS | overrides))
