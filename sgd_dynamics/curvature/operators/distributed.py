"""Data-parallel curvature products: each process applies the operators to its shard of the
samples and the partial sums are added with `torch.distributed` collectives.

Every process holds the same n samples (the spectral subset is drawn from the data seed, so it is
identical on every rank). `Reduction.shard(n)` gives this rank's contiguous slice of range(n)
(sizes differ by at most one); a product over the data is then

    A V = (1/n) Σ_ranks Σ_{i in shard(rank)} A_i V        (one all_reduce SUM, then / n)

so the result is the mean over all n samples whatever the split, and it is the same tensor on
every rank (an all_reduce leaves identical values everywhere). Everything after the products (the
eigensolvers' vector operations, orthogonalisation, dense eigendecompositions) runs replicated
on every rank from identical inputs and seeded generators, so every rank takes the same
iterations and ends with the same eigenpairs; only the products are sharded. The one exception
is the n×n Gram matrix of the per-sample gradients (M's exact spectrum,
`gram.assembly.sharded_gram`): its blocks between shards are exchanged with
`Reduction.broadcast` and the matrix assembled with one all_reduce.

With one process (or torch.distributed not initialised) use ``distributed=None``: no collective
is called anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["Reduction", "default_reduction"]


@dataclass(frozen=True)
class Reduction:
    """The processes that share a curvature computation, and how to sum over them.

    Args:
        rank: this process's rank in `group` (0 <= rank < world_size).
        world_size: number of processes in `group`.
        group: the torch.distributed process group (None: the default group).
    """

    rank: int
    world_size: int
    group: Any = None

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(
                f"Reduction needs 0 <= rank < world_size, got rank={self.rank}, "
                f"world_size={self.world_size}"
            )

    def shard(self, n: int) -> slice:
        """This rank's contiguous share of range(n): the first n % world_size ranks get one
        sample more than the others (as numpy.array_split)."""
        base, extra = divmod(int(n), self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (1 if self.rank < extra else 0))

    def sum(self, tensor: Tensor) -> Tensor:
        """Σ over the processes of `tensor` (any shape), in place; returns `tensor`.

        Every rank must call this with a tensor of the same shape and dtype, in the same order.
        """
        if self.world_size > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=self.group)
        return tensor

    def broadcast(self, tensor: Tensor, source: int) -> Tensor:
        """`tensor` as rank `source` holds it, on every rank, in place; returns `tensor`.

        Every rank must call this with a tensor of the same shape and dtype, in the same order.
        """
        if not 0 <= source < self.world_size:
            raise ValueError(
                f"broadcast source must be a rank in [0, {self.world_size}), got {source}"
            )
        if self.world_size > 1:
            src = source if self.group is None else dist.get_global_rank(self.group, source)
            dist.broadcast(tensor, src=src, group=self.group)
        return tensor


def default_reduction() -> Reduction | None:
    """The reduction over torch.distributed's default group.

    Returns:
        A `Reduction` over the default group when it is initialised with more than one process,
        else None (one process: no collective is needed).
    """
    if not (dist.is_available() and dist.is_initialized()):
        return None
    world_size = dist.get_world_size()
    if world_size == 1:
        return None
    return Reduction(rank=dist.get_rank(), world_size=world_size)


def check_reduction(distributed: object) -> Reduction | None:
    """`distributed` if it is a Reduction or None, else ValueError."""
    if distributed is None or isinstance(distributed, Reduction):
        return distributed
    raise ValueError(
        "distributed must be a sgd_dynamics.curvature.operators.Reduction or None, "
        f"got {type(distributed).__name__}"
    )


def sum_scalars(reduction: Reduction | None, *values: float, like: Tensor) -> list[float]:
    """Σ over the processes of a few Python numbers (one all_reduce), in `like`'s dtype/device."""
    if reduction is None:
        return [float(v) for v in values]
    packed = torch.tensor(values, dtype=like.dtype, device=like.device)
    return [float(v) for v in reduction.sum(packed)]
