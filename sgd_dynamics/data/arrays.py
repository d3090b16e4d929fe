"""In-memory data sets: raw arrays, their normalisation, and fast batched indexing."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
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


class StepShuffleSampler(Sampler[int]):
    """Training order keyed by the global step: the batch of step s is
    ``perm_e[j b : (j + 1) b]`` with ``(e, j) = divmod(s, batches per epoch)`` and ``perm_e`` a
    random permutation of range(n) fixed by (seed, e) alone.

    Each iteration starts at the step returned by `step` (the trainer's global step) and runs
    to the end of that epoch's permutation. So the data order depends neither on torch's
    global random state (callbacks that draw random numbers do not change the trajectory) nor
    on how Lightning counts epochs when a run resumes from a checkpoint: a resumed run sees the
    batches an uninterrupted run would. Without `step` (or when it returns None) each
    iteration is the next whole epoch. Lightning's `set_epoch` calls are ignored.

    Args:
        n: number of samples.
        batch_size: b, as in the DataLoader that batches this sampler.
        seed: data seed.
        drop_last: as in the DataLoader (a last incomplete batch is then never used).
        step: callable returning the number of batches already trained, or None.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        drop_last: bool = False,
        step: Callable[[], int | None] | None = None,
    ) -> None:
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.batches_per_epoch = (
            self.n // self.batch_size if drop_last else -(-self.n // self.batch_size)
        )
        if self.batches_per_epoch < 1:
            raise ValueError(f"batch_size={batch_size} with drop_last leaves no batch of {n}")
        self.step = step
        self._passes = 0

    def set_epoch(self, epoch: int) -> None:
        """Ignored: the order follows the global step (see the class docstring)."""

    def order(self, start_step: int) -> list[int]:
        """Sample indices from the batch of step `start_step` to the end of its epoch."""
        epoch, j = divmod(int(start_step), self.batches_per_epoch)
        perm = stream(self.seed, "shuffle", epoch).permutation(self.n)
        stop = self.batches_per_epoch * self.batch_size if self.drop_last else self.n
        return perm[j * self.batch_size : stop].tolist()

    def __iter__(self) -> Iterator[int]:
        start = self.step() if self.step is not None else None
        if start is None:
            start = self._passes * self.batches_per_epoch
        self._passes += 1
        return iter(self.order(start))

    def __len__(self) -> int:
        return self.batches_per_epoch * self.batch_size if self.drop_last else self.n
