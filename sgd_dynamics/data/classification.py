"""The data logic shared by every data set: training subset, label noise, spectral subset,
loaders (torch only; `sgd_dynamics.lightning.datamodules` adds the LightningDataModule hooks)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from sgd_dynamics.data.arrays import (
    ArrayData,
    ArrayDataset,
    Standardize,
    StepShuffleSampler,
    keep_batch,
)
from sgd_dynamics.data.label_noise import check_fraction, corrupt_labels
from sgd_dynamics.data.streams import stream
from sgd_dynamics.utils import validate
from sgd_dynamics.utils.errors import SetupError


def positive_int(name: str, value: object) -> int:
    """`value` as an int >= 1, or `SetupError` naming `name` (`sgd_dynamics.utils.validate`)."""
    return validate.positive_int(value, name, SetupError)


def check_seed(value: object) -> int:
    """`value` as an int >= 0 (a data seed), or `SetupError`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise SetupError(f"seed must be a non-negative integer, got {value!r}")
    return int(value)


class RankShardBatchSampler:
    """This rank's share of each global batch: the global batches are those of `sampler`
    grouped by `batch_size`; rank r of R gets positions [r B/R, (r + 1) B/R) of each (B/R
    samples; a last incomplete batch of size m is split as numpy.array_split does).

    Requires batch_size % world_size == 0, so that the ranks' equally weighted gradients (DDP
    averages them) give the mean over the global batch.
    """

    def __init__(
        self,
        sampler: StepShuffleSampler,
        batch_size: int,
        drop_last: bool,
        rank: int,
        world_size: int,
    ) -> None:
        if batch_size % world_size != 0:
            raise SetupError(
                f"batch_size={batch_size} (the global batch under DDP) must be a multiple of the "
                f"number of processes, {world_size}"
            )
        last = 0 if drop_last else sampler.n % batch_size
        if 0 < last < world_size:
            raise SetupError(
                f"the last batch of each epoch has {last} samples, fewer than the {world_size} "
                "processes: choose batch_size dividing n_train or set dataset.drop_last=true"
            )
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size

    def __iter__(self):
        order = list(self.sampler)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            if self.drop_last and len(batch) < self.batch_size:
                return
            yield np.array_split(np.asarray(batch), self.world_size)[self.rank].tolist()

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


class ClassificationData:
    """A classification data set held in memory, with optional subset and label noise.

    Subclasses implement `_read` (raw arrays) and `_transform` (normalisation) and set
    `input_dim` and `num_classes`. The training set is the first ``n_train`` entries of a
    random permutation of the available training samples (all of them, in file order, when
    ``n_train`` is None), fixed by `seed`; then a fraction `label_noise` of its labels is
    replaced by uniformly random labels (`sgd_dynamics.data.label_noise.corrupt_labels`). The
    noisy labels are used for training, for `spectral_samples` and for the final training
    metrics; test labels are never changed. (`__init__` calls ``super().__init__()``, which
    initialises the LightningDataModule that `sgd_dynamics.lightning.datamodules` puts after
    this class in a data module's bases.)

    Args:
        batch_size: SGD mini-batch size (>= 1).
        seed: data seed (>= 0): subset, label noise, spectral subset, shuffling.
        label_noise: fraction r in [0, 1] of training labels replaced.
        n_train: training set size (None: all available).
        eval_batch_size: batch size of the evaluation loaders (test set, final metrics).
        drop_last: drop the last incomplete training batch of each epoch.
        num_workers: DataLoader worker processes (0: load in the training process).
    """

    name = "classification"
    input_dim: int
    num_classes: int

    def __init__(
        self,
        batch_size: int,
        seed: int = 0,
        label_noise: float = 0.0,
        n_train: int | None = None,
        eval_batch_size: int = 1000,
        drop_last: bool = False,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.batch_size = positive_int("batch_size", batch_size)
        self.seed = check_seed(seed)
        self.label_noise = check_fraction(label_noise)
        self.requested_n_train = None if n_train is None else positive_int("n_train", n_train)
        self.eval_batch_size = positive_int("eval_batch_size", eval_batch_size)
        self.drop_last = bool(drop_last)
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise SetupError(f"num_workers must be an integer >= 0, got {num_workers!r}")
        self.num_workers = num_workers
        self.train_set: ArrayDataset | None = None
        self.test_set: ArrayDataset | None = None
        self.clean_train_targets: torch.Tensor | None = None
        self.noisy_indices: torch.Tensor | None = None

    # --- to implement in subclasses -------------------------------------------------------
    def _read(self) -> ArrayData:
        """Read (or generate) the raw arrays; raise `SetupError` if files are missing."""
        raise NotImplementedError

    def _transform(self) -> Standardize:
        """The map from raw inputs to model inputs."""
        return Standardize(self.input_dim)

    # --- loading --------------------------------------------------------------------------
    def load(self) -> None:
        """Read the data, take the training subset and apply label noise (once; cached)."""
        if self.train_set is not None:
            return
        raw = self._read()
        n_available = raw.y_train.shape[0]
        if self.requested_n_train is None or self.requested_n_train == n_available:
            subset = np.arange(n_available)
        elif self.requested_n_train > n_available:
            raise SetupError(
                f"dataset.n_train={self.requested_n_train} exceeds the {n_available} training "
                f"samples of {self.name}"
            )
        else:
            perm = stream(self.seed, "subset").permutation(n_available)
            subset = np.sort(perm[: self.requested_n_train])
        clean = np.asarray(raw.y_train, dtype=np.int64)[subset]
        noisy, replaced = corrupt_labels(
            clean, self.label_noise, self.num_classes, stream(self.seed, "label_noise")
        )
        if self.drop_last and self.batch_size > len(subset):
            raise SetupError(
                f"batch_size={self.batch_size} exceeds the {len(subset)} training samples and "
                "drop_last=true leaves no batch"
            )
        transform = self._transform()
        x_train = torch.from_numpy(np.ascontiguousarray(raw.x_train[subset]))
        self.train_set = ArrayDataset(x_train, torch.from_numpy(noisy), transform)
        self.test_set = ArrayDataset(
            torch.from_numpy(np.ascontiguousarray(raw.x_test)),
            torch.from_numpy(np.asarray(raw.y_test, dtype=np.int64)),
            transform,
        )
        self.clean_train_targets = torch.from_numpy(clean)
        self.noisy_indices = torch.from_numpy(replaced)

    @property
    def n_train(self) -> int:
        """Number of training samples (after the subset)."""
        self.load()
        return len(self.train_set)

    @property
    def n_test(self) -> int:
        self.load()
        return len(self.test_set)

    # --- the contract used by the spectral callback -----------------------------------------
    def spectral_indices(self, n: int | None = None) -> np.ndarray:
        """Positions in the training set of the spectral subset: (m,) int64, increasing.

        The first n entries of a permutation of range(n_train) drawn from the seed's
        "spectral" stream, sorted; all positions when n is None or n >= n_train. The subsets
        for increasing n are nested.
        """
        n_train = self.n_train
        if n is None or n >= n_train:
            return np.arange(n_train, dtype=np.int64)
        n = positive_int("spectral n_samples", n)
        return np.sort(stream(self.seed, "spectral").permutation(n_train)[:n]).astype(np.int64)

    def spectral_samples(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed subset of the training set with its (possibly noisy) labels.

        Returns (inputs (m, input_dim) float32 as the model sees them, targets (m,) int64),
        m = min(n, n_train); identical for the same seed whatever the batch size or process.
        """
        indices = self.spectral_indices(n)  # loads the data first
        return self.train_set.__getitems__(indices.tolist())

    # --- loaders ----------------------------------------------------------------------------
    def train_loader(
        self, step: Callable[[], int | None] | None = None, rank: int = 0, world_size: int = 1
    ) -> DataLoader:
        """The training batches: batch_size samples per global step in the order of
        `StepShuffleSampler` (`step`: the number of batches already trained, or None). With
        `world_size` R > 1 processes `batch_size` is the global batch: process `rank` gets its
        contiguous 1/R of every global batch (`RankShardBatchSampler`), and DDP's averaged
        gradient is the gradient of the mean loss over the global batch, as in one process."""
        self.load()
        sampler = StepShuffleSampler(
            len(self.train_set), self.batch_size, self.seed, self.drop_last, step
        )
        if world_size > 1:
            batches = {
                "batch_sampler": RankShardBatchSampler(
                    sampler, self.batch_size, self.drop_last, rank, world_size
                )
            }
        else:
            batches = {
                "batch_size": self.batch_size,
                "sampler": sampler,
                "drop_last": self.drop_last,
            }
        return DataLoader(
            self.train_set,
            **batches,
            collate_fn=keep_batch,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def eval_dataloader(self, split: str) -> DataLoader:
        """Sequential loader over "train" (noisy labels) or "test" with `eval_batch_size`."""
        self.load()
        datasets = {"train": self.train_set, "test": self.test_set}
        if split not in datasets:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        return DataLoader(
            datasets[split], batch_size=self.eval_batch_size, shuffle=False, collate_fn=keep_batch
        )


class FileData(ClassificationData):
    """A data set read from files in ``root``, fetched there first when ``download`` is true.

    Args:
        root: the folder holding the data set's files (``~`` expanded).
        batch_size: the SGD mini-batch size.
        download: fetch missing files (md5-checked, with pooch) before reading.
        Other arguments as `ClassificationData`.
    """

    def __init__(
        self, root: str | os.PathLike, batch_size: int, download: bool = False, **kwargs
    ) -> None:
        super().__init__(batch_size=batch_size, **kwargs)
        self.root = Path(root).expanduser()
        self.download = bool(download)
