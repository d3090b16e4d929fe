"""Training progress on the console, counted in SGD steps, through Lightning's progress bars.

`console_progress_bar` picks the bar: on a terminal a TQDM bar over all training steps
(`StepTQDMProgressBar`: one bar for the run, not one per epoch, which Gauss-10's 20-step epochs
would make flicker), otherwise (a log file, a SLURM job) `PeriodicProgressBar`, plain lines
``step s/S (epoch e)  train/loss ...  test/acc ... | t s`` (s: SGD updates taken, e:
completed epochs, as everywhere in the run's records): one when training starts and then
at most one every few seconds. Both are Lightning ``ProgressBar`` callbacks, so the Trainer
needs ``enable_progress_bar=True``; only the global-zero process prints.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar, TQDMProgressBar

from sgd_dynamics.lightning.epochs import completed_epochs
from sgd_dynamics.utils.console import say

SHOWN_METRICS = ("train/loss", "train/acc", "test/loss", "test/acc")


def total_steps(trainer: pl.Trainer) -> int | None:
    """The global step training stops at: ``max_steps``, else the estimate from the epochs."""
    if trainer.max_steps is not None and trainer.max_steps > 0:
        return int(trainer.max_steps)
    estimated = trainer.estimated_stepping_batches
    return int(estimated) if math.isfinite(estimated) else None


class StepTQDMProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar, with the training bar counting global steps over the whole run
    (described by the current epoch) instead of restarting at every epoch."""

    def on_train_start(self, trainer: pl.Trainer, *args: Any) -> None:
        super().on_train_start(trainer, *args)
        bar = self.train_progress_bar
        bar.reset(total=total_steps(trainer))
        bar.initial = trainer.global_step  # a resumed run starts where its checkpoint was

    def on_train_epoch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        self.train_progress_bar.set_description(f"epoch {completed_epochs(trainer)}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        bar = self.train_progress_bar
        step = trainer.global_step
        if bar is not None and self._should_update(step, bar.total):
            bar.n = step
            bar.set_description(f"epoch {completed_epochs(trainer)}", refresh=False)
            bar.set_postfix(self.get_metrics(trainer, pl_module))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.train_progress_bar.disable:
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))


class PeriodicProgressBar(ProgressBar):
    """Plain progress lines for logs: one when training starts, then at most one every
    `every_n_seconds` (checked after each step), and one at the end.

    Args:
        every_n_seconds: the least time between two lines.
        keys: the logged metrics shown (default ``train/loss``, ``train/acc``, ``test/loss``,
            ``test/acc``), each when it has been logged.
        clock: monotonic seconds (tests pass a fake one).
        write: receives each line (default: print to stdout, flushed).
    """

    def __init__(
        self,
        every_n_seconds: float = 5.0,
        keys: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
        write: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        if not every_n_seconds > 0:
            raise ValueError(f"every_n_seconds must be positive, got {every_n_seconds!r}")
        self.every_n_seconds = float(every_n_seconds)
        self.keys = tuple(keys) or SHOWN_METRICS
        self.clock = clock
        self.write = write or say
        self._enabled = True
        self._start = self._last = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def line(self, trainer: pl.Trainer, now: float) -> str:
        """``step s/S (epoch e)  <metric> <value> ...  | <seconds since the start> s``."""
        metrics = trainer.callback_metrics
        total = total_steps(trainer)
        parts = [
            f"step {trainer.global_step}/{total if total is not None else '?'}"
            f" (epoch {completed_epochs(trainer)})",
            *(f"{k} {float(metrics[k]):.4g}" for k in self.keys if k in metrics),
            f"| {now - self._start:.1f} s",
        ]
        return "  ".join(parts)

    def _print(self, trainer: pl.Trainer, now: float) -> None:
        self._last = now
        if self._enabled:
            self.write(self.line(trainer, now))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = self.clock()
        self._print(trainer, self._start)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = self.clock()
        if now - self._last >= self.every_n_seconds:
            self._print(trainer, now)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print(trainer, self.clock())


def console_progress_bar(every_n_seconds: float = 5.0, terminal: bool | None = None) -> ProgressBar:
    """`StepTQDMProgressBar` when stdout is a terminal (or `terminal` is True), else
    `PeriodicProgressBar` printing a line at most every `every_n_seconds`."""
    if terminal is None:
        terminal = sys.stdout.isatty()
    if terminal:
        return StepTQDMProgressBar()
    return PeriodicProgressBar(every_n_seconds)
