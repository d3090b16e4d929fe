"""The data sets of `sgd_dynamics.data` as LightningDataModules.

Each ``...DataModule`` is its plain data class (first base: every argument, check and error
message is its own) with Lightning's data hooks (`ClassificationDataModule`): ``setup`` loads
the data, ``train_dataloader`` asks the attached trainer for its global step, rank and world
size, ``val_dataloader`` / ``test_dataloader`` are the test set.
"""

from __future__ import annotations

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from sgd_dynamics.data import (
    CIFAR10Data,
    ClassificationData,
    FashionMNISTData,
    Gauss10Data,
    MNISTData,
)

__all__ = [
    "CIFAR10DataModule",
    "ClassificationDataModule",
    "FashionMNISTDataModule",
    "Gauss10DataModule",
    "MNISTDataModule",
]


class ClassificationDataModule(ClassificationData, pl.LightningDataModule):
    """Lightning's data hooks over a `ClassificationData` (a data set class lists its plain
    class first, then this one)."""

    def prepare_data(self) -> None:
        # Files are read (and downloaded when asked) in `load`, which train.py calls before the
        # Trainer starts, so a missing file stops the run before any process is launched.
        pass

    def setup(self, stage: str | None = None) -> None:
        self.load()

    def train_dataloader(self) -> DataLoader:
        """`ClassificationData.train_loader` at the attached trainer's global step, sharded
        over its processes under DDP (with ``use_distributed_sampler=False``)."""
        rank, world_size = self._ranks()
        return self.train_loader(self._global_step, rank, world_size)

    def _ranks(self) -> tuple[int, int]:
        """(global rank, world size) of the attached trainer; (0, 1) without one."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def _global_step(self) -> int | None:
        """The attached trainer's global step (batches trained so far), or None."""
        trainer = getattr(self, "trainer", None)
        return None if trainer is None else int(trainer.global_step)

    def val_dataloader(self) -> DataLoader:
        """The test set, evaluated by Lightning's validation loop (logged as test/*)."""
        return self.eval_dataloader("test")

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")


class Gauss10DataModule(Gauss10Data, ClassificationDataModule):
    """`Gauss10Data` as a LightningDataModule."""


class MNISTDataModule(MNISTData, ClassificationDataModule):
    """`MNISTData` as a LightningDataModule."""


class FashionMNISTDataModule(FashionMNISTData, MNISTDataModule):
    """`FashionMNISTData` as a LightningDataModule."""


class CIFAR10DataModule(CIFAR10Data, ClassificationDataModule):
    """`CIFAR10Data` as a LightningDataModule."""
