"""Data sets without Lightning: Gauss-10 (generated), MNIST, Fashion-MNIST (IDX files), CIFAR-10
(pickle batches), training subset and label noise, the step-keyed training order, loaders.

Every data set has `input_dim`, `num_classes`, `n_train`, `batch_size`, `spectral_samples(n) ->
(inputs, targets)`, `train_loader` and `eval_dataloader` (see `ClassificationData`); the
LightningDataModules of `sgd_dynamics.lightning` add Lightning's hooks to them.
"""

from sgd_dynamics.data.arrays import ArrayData, ArrayDataset, Standardize, StepShuffleSampler
from sgd_dynamics.data.cifar10 import CIFAR10Data, read_cifar_batch
from sgd_dynamics.data.classification import ClassificationData, FileData
from sgd_dynamics.data.gauss10 import Gauss10Data, make_gauss10
from sgd_dynamics.data.idx import read_idx, write_idx
from sgd_dynamics.data.label_noise import corrupt_labels, num_noisy
from sgd_dynamics.data.mnist import FashionMNISTData, MNISTData

__all__ = [
    "ArrayData",
    "ArrayDataset",
    "CIFAR10Data",
    "ClassificationData",
    "FashionMNISTData",
    "FileData",
    "Gauss10Data",
    "MNISTData",
    "Standardize",
    "StepShuffleSampler",
    "corrupt_labels",
    "make_gauss10",
    "num_noisy",
    "read_cifar_batch",
    "read_idx",
    "write_idx",
]
