"""Data sets as LightningDataModules: Gauss-10, MNIST, Fashion-MNIST, CIFAR-10.

Every data module has `input_dim`, `num_classes`, `n_train`, `batch_size` and
`spectral_samples(n) -> (inputs, targets)` (see `ClassificationDataModule`).
"""

from sgd_dynamics.data.arrays import ArrayData, ArrayDataset, Standardize, StepShuffleSampler
from sgd_dynamics.data.cifar10 import CIFAR10DataModule, read_cifar_batch
from sgd_dynamics.data.datamodule import ClassificationDataModule
from sgd_dynamics.data.gauss10 import Gauss10DataModule, make_gauss10
from sgd_dynamics.data.idx import read_idx, write_idx
from sgd_dynamics.data.label_noise import corrupt_labels, num_noisy
from sgd_dynamics.data.mnist import FashionMNISTDataModule, MNISTDataModule

__all__ = [
    "ArrayData",
    "ArrayDataset",
    "CIFAR10DataModule",
    "ClassificationDataModule",
    "FashionMNISTDataModule",
    "Gauss10DataModule",
    "MNISTDataModule",
    "Standardize",
    "StepShuffleSampler",
    "corrupt_labels",
    "make_gauss10",
    "num_noisy",
    "read_cifar_batch",
    "read_idx",
    "write_idx",
]
