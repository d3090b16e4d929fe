"""A quiet progress report for training: one line every few seconds, counted in SGD steps."""

from __future__ import annotations

import time

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only


class StepProgress(pl.Callback):
    """Print ``step s/S (epoch e) train/loss ... test/acc ... | t s`` at most every
    `every_n_seconds` seconds and once at the end of training (global-zero process only).

    Unlike a per-epoch progress bar it stays readable for data sets with very short epochs
    (Gauss-10: 20 steps) and in log files.
    """

    def __init__(self, every_n_seconds: float = 5.0, keys: tuple[str, ...] = ()) -> None:
        self.every_n_seconds = float(every_n_seconds)
        self.keys = tuple(keys) or ("train/loss", "train/acc", "test/loss", "test/acc")
        self._start = 0.0
        self._last = 0.0

    def _total(self, trainer: pl.Trainer) -> str:
        if trainer.max_steps and trainer.max_steps > 0:
            return str(trainer.max_steps)
        if trainer.max_epochs and trainer.max_epochs > 0 and trainer.num_training_batches:
            return str(int(trainer.max_epochs * trainer.num_training_batches))
        return "?"

    @rank_zero_only
    def _print(self, trainer: pl.Trainer) -> None:
        metrics = trainer.callback_metrics
        shown = "  ".join(f"{k} {float(metrics[k]):.4g}" for k in self.keys if k in metrics)
        elapsed = time.perf_counter() - self._start
        print(
            f"step {trainer.global_step}/{self._total(trainer)} (epoch {trainer.current_epoch})"
            f"  {shown}  | {elapsed:.1f} s",
            flush=True,
        )

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = self._last = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        if now - self._last >= self.every_n_seconds:
            self._last = now
            self._print(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print(trainer)
