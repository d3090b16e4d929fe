"""Everything of the library that needs PyTorch Lightning: the LightningModule, the data sets as
LightningDataModules, the run function (`train_and_measure`), the atomic CheckpointIO plugin,
the epoch count, the wandb logger and what train.py prints about a run's end. The rest of
`sgd_dynamics` imports no Lightning; the Lightning callbacks live in the top-level `callbacks`
package.
"""

from sgd_dynamics.lightning.datamodules import (
    CIFAR10DataModule,
    ClassificationDataModule,
    FashionMNISTDataModule,
    Gauss10DataModule,
    MNISTDataModule,
)
from sgd_dynamics.lightning.module import ClassifierModule
from sgd_dynamics.lightning.run import train_and_measure

__all__ = [
    "CIFAR10DataModule",
    "ClassificationDataModule",
    "ClassifierModule",
    "FashionMNISTDataModule",
    "Gauss10DataModule",
    "MNISTDataModule",
    "train_and_measure",
]
