"""Lightning callback: keep ``last.ckpt`` current, so that a run can be resumed from wherever
it stopped, and turn stop requests and divergence into checkpointed, clean ends."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint

from sgd_dynamics.lifecycle.faults import fault_point
from sgd_dynamics.lifecycle.outcomes import RunDiverged, RunInterrupted
from sgd_dynamics.lifecycle.stop import STOP
from sgd_dynamics.lightning.announce import announce_resume

log = logging.getLogger("sgd_dynamics.checkpoint")


def parameters_are_finite(module: torch.nn.Module) -> bool:
    """Whether every parameter entry of `module` is finite (one device sync)."""
    flags = [torch.isfinite(p).all() for p in module.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


class LastCheckpoint(Checkpoint):
    """Write the whole training state to ``dirpath/filename`` (``last.ckpt``):

    - at the start of a new run (step 0), so that a resumable checkpoint exists from the first
      step on; then it prints the command that resumes the run (`announce_resume`): the
      command is printed only once its checkpoint exists;
    - every `every_n_steps` global steps and/or every `every_n_seconds` seconds of training,
      whichever comes first (None: that trigger is off);
    - at the last step (``trainer.max_steps``) and at the end of training;
    - when SIGINT or SIGTERM was received (`sgd_dynamics.lifecycle.stop`): after the current
      step, then it raises `RunInterrupted`.

    A state whose parameters are not all finite is never written (`RunDiverged` instead), so
    after a divergence ``last.ckpt`` holds the last finite state written. Writes go through
    the trainer's CheckpointIO (atomic with `AtomicCheckpointIO`). Being a Lightning
    `Checkpoint`, it runs after the other callbacks at each hook: the step's snapshot is on
    disk before its checkpoint. `seconds_writing` and `n_written` count this process's writes.
    `sgd_dynamics.lightning` finds it by ``keeps_resumable_checkpoint`` and ``path``
    (`sgd_dynamics.lightning.checkpoint_io.checkpoint_files`).
    """

    keeps_resumable_checkpoint = True

    def __init__(
        self,
        dirpath: str | Path,
        every_n_steps: int | None = 500,
        every_n_seconds: float | None = 300.0,
        filename: str = "last.ckpt",
    ) -> None:
        super().__init__()
        for name, value in (("every_n_steps", every_n_steps), ("every_n_seconds", every_n_seconds)):
            if value is not None and not value > 0:
                raise ValueError(f"callbacks.checkpoint.{name} must be > 0 or null, got {value}")
        self.path = Path(dirpath) / filename
        self.every_n_steps = None if every_n_steps is None else int(every_n_steps)
        self.every_n_seconds = None if every_n_seconds is None else float(every_n_seconds)
        self.seconds_writing = 0.0
        self.n_written = 0
        self._saved_step = -1
        self._saved_at = 0.0

    # ------------------------------------------------------------------ Lightning hooks
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        STOP.install()  # take SIGTERM back from Lightning's handler, installed by fit
        self._saved_step = trainer.global_step
        self._saved_at = time.perf_counter()
        fresh = trainer.ckpt_path is None and trainer.global_step == 0
        if fresh:
            self._save(trainer, pl_module)
        if trainer.is_global_zero and self.path.is_file():  # printed once the checkpoint exists
            announce_resume(self.path)
        self._stop_if_requested(trainer, saved=fresh or self.path.is_file())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        fault_point(f"step:{step}")
        now = time.perf_counter()
        due = (
            STOP.signum is not None
            or (self.every_n_steps is not None and step - self._saved_step >= self.every_n_steps)
            or (self.every_n_seconds is not None and now - self._saved_at >= self.every_n_seconds)
        )
        due = _any_rank(trainer, due)  # one decision for every rank (saving is collective)
        if due or (trainer.max_steps is not None and 0 < trainer.max_steps <= step):
            self._save(trainer, pl_module)
        self._stop_if_requested(trainer, saved=True, batch_logged=False)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._saved_step != trainer.global_step:  # training ended by epochs or by Lightning
            self._save(trainer, pl_module)
        if trainer.is_global_zero:
            log.info(
                "checkpoints: %d written in %.3f s, the last at step %d: %s",
                self.n_written,
                self.seconds_writing,
                self._saved_step,
                self.path,
            )

    # ------------------------------------------------------------------ work
    def _save(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = trainer.global_step
        if not parameters_are_finite(pl_module):
            lr = getattr(pl_module, "lr", None)
            raise RunDiverged("a parameter", "non-finite", step, lr)
        started = time.perf_counter()
        trainer.save_checkpoint(self.path)
        self._saved_at = time.perf_counter()
        self.seconds_writing += self._saved_at - started
        self.n_written += 1
        self._saved_step = step

    def _stop_if_requested(self, trainer: pl.Trainer, saved: bool, batch_logged=True) -> None:
        if _any_rank(trainer, STOP.signum is not None):
            if not batch_logged:  # the step's train/* reach the loggers before the stop
                _log_train_step(trainer)
            signum = STOP.signum if STOP.signum is not None else int(signal.SIGTERM)
            path = str(self.path) if saved else None
            raise RunInterrupted(signum, trainer.global_step, path)


def _any_rank(trainer: pl.Trainer, flag: bool) -> bool:
    """`flag` on any rank (a collective under DDP; the flag itself in one process)."""
    if trainer.world_size <= 1:
        return bool(flag)
    return bool(trainer.strategy.reduce_boolean_decision(bool(flag), all=False))


def _log_train_step(trainer: pl.Trainer) -> None:
    """Send the metrics the current training step logged to the loggers and flush them, as
    Lightning does right after ``on_train_batch_end``, which a stop raised there pre-empts
    (the resumed run starts at the next step: without this the step would have no record)."""
    trainer._logger_connector.update_train_step_metrics()
    for logger in trainer.loggers:
        logger.save()
