"""The LightningModule: a classifier trained with cross-entropy and SGD."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from sgd_dynamics.lifecycle.outcomes import RunDiverged
from sgd_dynamics.lightning.epochs import completed_epochs

# what conf/optimizer builds: the network's parameters -> an optimizer
OptimizerFactory = Callable[[Iterator[nn.Parameter]], torch.optim.Optimizer]


class ClassifierModule(pl.LightningModule):
    """Train `net` (inputs -> logits) by SGD on the mean cross-entropy of each mini-batch.

    One clock: a record at step s describes the parameters after s SGD updates. Per training
    step s it logs ``train/loss`` and ``train/acc`` (of the mini-batch, measured before update
    s + 1) with ``epoch``, the completed epochs at step s (`sgd_dynamics.lightning.epochs`) in
    place of Lightning's counter; at each validation (the data module's validation loader is
    the test set) ``test/loss`` and ``test/acc`` over the whole test set, at the global step
    (the updates taken so far).

    A non-finite mini-batch loss raises `RunDiverged` before the optimizer steps on it (under
    DDP on every rank together).

    Args:
        net: the classifier, kept as ``self.net`` (a plain nn.Module).
        optimizer: called with the network's parameters, returns the optimizer: a partial
            ``torch.optim.SGD`` (conf/optimizer/sgd.yaml, ``_partial_: true``; in Python
            ``functools.partial(torch.optim.SGD, lr=0.1)``). Its settings are checked here:
            lr > 0, momentum and weight_decay >= 0, nesterov only with momentum > 0.
    """

    def __init__(self, net: nn.Module, optimizer: OptimizerFactory) -> None:
        super().__init__()
        self.net = net
        self.make_optimizer = optimizer
        _check_sgd_settings(optimizer, net)  # bad settings: refused before training
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
            lr = self.trainer.optimizers[0].param_groups[0]["lr"]
            raise RunDiverged("loss", float(loss.detach()), self.trainer.global_step, lr)
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
        # sync_dist: under DDP the values reduced over the ranks (each rank evaluates the whole
        # test set, so the mean is each rank's value) and no warning from Lightning
        log = dict(on_step=False, on_epoch=True, batch_size=b, sync_dist=True)
        # logged at the global step (Lightning's default is one less: it counts the batches
        # before this one), the step of the parameters evaluated; its epoch is the train row's
        self.log("step", float(self.trainer.global_step), reduce_fx="max", **log)
        # epoch means weighted by batch size = loss and accuracy over the whole test set
        self.log("test/loss", loss, prog_bar=True, **log)
        self.log("test/acc", acc, **log)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.make_optimizer(self.net.parameters())


def _check_sgd_settings(optimizer: OptimizerFactory, net: nn.Module) -> None:
    """ValueError naming the setting of an SGD-like optimizer that is out of range: torch's own
    refusals (negative values, nesterov without momentum), and lr = 0, which torch accepts."""
    accepted = (
        "optimizer.lr > 0, optimizer.momentum >= 0, optimizer.weight_decay >= 0, "
        "optimizer.nesterov=true needs optimizer.momentum > 0"
    )
    try:
        lr = optimizer(net.parameters()).defaults.get("lr", 0.0)
    except ValueError as exc:
        raise ValueError(f"the optimizer refused its settings ({exc}): {accepted}") from None
    if not lr > 0:
        raise ValueError(f"optimizer.lr must be positive, got {lr!r}")
