"""The LightningModule: a classifier trained with cross-entropy and SGD."""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from sgd_dynamics.lifecycle.outcomes import RunDiverged
from sgd_dynamics.lightning.epochs import completed_epochs


class ClassifierModule(pl.LightningModule):
    """Train `net` (inputs -> logits) by SGD on the mean cross-entropy of each mini-batch.

    Logs per training step ``train/loss`` and ``train/acc`` (of the mini-batch), and at each
    validation (the data module's validation loader is the test set) ``test/loss`` and
    ``test/acc`` over the whole test set; with each, ``epoch`` as completed epochs
    (`sgd_dynamics.lightning.epochs`) in place of Lightning's counter.

    A non-finite mini-batch loss raises `RunDiverged` before the optimizer steps on it (under
    DDP on every rank together).

    Args:
        net: the classifier, kept as ``self.net`` (a plain nn.Module).
        lr: learning rate (> 0).
        momentum: heavy-ball momentum (>= 0; 0 is plain SGD).
        weight_decay: L2 penalty added by the optimiser (>= 0).
        nesterov: Nesterov momentum (needs momentum > 0).
    """

    def __init__(
        self,
        net: nn.Module,
        lr: float = 0.1,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__()
        if not lr > 0:
            raise ValueError(f"optimizer.lr must be positive, got {lr!r}")
        if momentum < 0 or weight_decay < 0:
            raise ValueError(
                f"optimizer.momentum and optimizer.weight_decay must be >= 0, got {momentum!r} "
                f"and {weight_decay!r}"
            )
        if nesterov and momentum <= 0:
            raise ValueError("optimizer.nesterov=true needs optimizer.momentum > 0")
        self.net = net
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.nesterov = bool(nesterov)
        self.seconds_before_resume = 0.0  # training time of the segments before a checkpoint
        self._segment_start: float | None = None

    def training_seconds(self) -> float:
        """Wall seconds of training so far, summed over resumed segments (each up to the
        checkpoint the next one resumed from)."""
        segment = 0.0 if self._segment_start is None else time.perf_counter() - self._segment_start
        return self.seconds_before_resume + segment

    def on_fit_start(self) -> None:
        self._segment_start = time.perf_counter()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["training_seconds"] = self.training_seconds()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.seconds_before_resume = float(checkpoint.get("training_seconds", 0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _loss_acc(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(dim=-1) == y).to(loss.dtype).mean()
        return loss, acc, y.shape[0]

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        loss, acc, b = self._loss_acc(batch)
        finite = bool(torch.isfinite(loss))
        if self.trainer.world_size > 1:  # every rank skips the step, or none
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if not finite:  # stop before stepping: the parameters stay the last finite ones
            raise RunDiverged("loss", float(loss.detach()), self.trainer.global_step, self.lr)
        # the epoch of the parameters this loss was measured at (Lightning's logged step)
        epoch = float(completed_epochs(self.trainer))
        self.log("epoch", epoch, on_step=True, on_epoch=False, batch_size=b)
        # sync_dist: under DDP the mean of the ranks' equal shards is the global batch's mean
        self.log(
            "train/loss",
            loss,
            on_step=True,
            on_epoch=False,
            prog_bar=True,
            batch_size=b,
            sync_dist=True,
        )
        self.log("train/acc", acc, on_step=True, on_epoch=False, batch_size=b, sync_dist=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, acc, b = self._loss_acc(batch)
        epoch = float(completed_epochs(self.trainer))
        self.log("epoch", epoch, on_step=False, on_epoch=True, reduce_fx="max", batch_size=b)
        # epoch means weighted by batch size = loss and accuracy over the whole test set
        self.log("test/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=b)
        self.log("test/acc", acc, on_step=False, on_epoch=True, batch_size=b)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(
            self.net.parameters(),
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            nesterov=self.nesterov,
        )
