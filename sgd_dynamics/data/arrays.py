"""In-memory data sets: raw arrays, their normalisation, and fast batched indexing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from sgd_dynamics.data.streams import stream


@dataclass
class ArrayData:
    """A data set's raw arrays as read from disk or generated.

    Attributes:
        x_train: (N, ...) uint8 images or float inputs.
        y_train: (N,) int64 class labels.
        x_test: (N_test, ...) same kind as x_train.
        y_test: (N_test,) int64 class labels.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


class Standardize:
    """Map raw inputs (b, ...) to model inputs (b, input_dim) float32: ``(x * scale - mean) / std``.

    `mean` and `std` are scalars or one value per channel; channels are the leading axis of
    the flattened input (CHW order), so a per-channel value is repeated over the pixels.
    """

    def __init__(
        self,
        input_dim: int,
        scale: float = 1.0,
        mean: float | Sequence[float] = 0.0,
        std: float | Sequence[float] = 1.0,
    ) -> None:
        self.input_dim = int(input_dim)
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std_t = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        self.scale = float(scale)
        self.mean = mean_t.repeat_interleave(self.input_dim // mean_t.numel())
        self.std = std_t.repeat_interleave(self.input_dim // std_t.numel())
        self.identity = self.scale == 1.0 and bool((mean_t == 0).all() and (std_t == 1).all())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], self.input_dim).to(torch.float32)
        if self.identity:
            return x
        return (x * self.scale - self.mean) / self.std


class ArrayDataset(Dataset):
    """Samples ``(transform(inputs[i]), targets[i])``; `__getitems__` indexes a whole batch at once.

    Use with ``collate_fn=keep_batch``: a batch is then the pair
    (inputs (b, input_dim) float32, targets (b,) int64).
    """

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, transform: Standardize) -> None:
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(f"{inputs.shape[0]} inputs but {targets.shape[0]} targets")
        self.inputs = inputs
        self.targets = targets.to(torch.int64)
        self.transform = transform

    def __len__(self) -> int:
        return self.targets.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.inputs[i : i + 1])[0], self.targets[i]

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return self.transform(self.inputs[idx]), self.targets[idx]


def keep_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate function for `ArrayDataset.__getitems__`, whose result is already a batch."""
    return batch


class EpochShuffleSampler(Sampler[int]):
    """A random permutation of range(n) per epoch, fixed by (seed, epoch) alone.

    Lightning calls `set_epoch` before each epoch, so the data order does not depend on torch's
    global random state (callbacks that draw random numbers do not change the trajectory), and a
    run resumed at an epoch boundary sees the same order as an uninterrupted one.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n = int(n)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        return iter(stream(self.seed, "shuffle", self.epoch).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n
