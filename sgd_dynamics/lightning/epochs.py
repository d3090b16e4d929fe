"""The epoch number of a run, defined once for every record (summary.json, snapshots, loggers).

epoch = completed epochs = global_step // steps_per_epoch, where global_step counts the SGD
steps taken and steps_per_epoch the batches of one pass over the training set. It depends on
the step alone, so it is the same before and after a resume from any step (Lightning's own
epoch counter restarts a partly done epoch as a new, shorter one and counts ahead when
training stops mid-epoch).
"""

from __future__ import annotations

import math

import pytorch_lightning as pl


def completed_epochs(trainer: pl.Trainer, global_step: int | None = None) -> int:
    """Completed passes over the training set after `global_step` steps (default: the
    trainer's). Falls back to Lightning's counter when the epoch length is unknown."""
    step = trainer.global_step if global_step is None else int(global_step)
    batches = trainer.num_training_batches
    if not batches or not math.isfinite(batches):
        return int(trainer.current_epoch)
    steps_per_epoch = max(1, math.ceil(batches / trainer.accumulate_grad_batches))
    return int(step) // steps_per_epoch
