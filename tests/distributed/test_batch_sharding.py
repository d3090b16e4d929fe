"""Training batches under DDP: with `batch_size` the global batch, the ranks' shards of each
step are disjoint, of equal size, and together are exactly the batch one process trains on at
that step (the order of StepShuffleSampler, independent of the rank count)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sgd_dynamics.lightning import Gauss10DataModule
from sgd_dynamics.utils import SetupError


def batches(batch_size: int, rank: int, world_size: int, n_train: int = 100, **kwargs):
    dm = Gauss10DataModule(batch_size=batch_size, seed=3, n_train=n_train, **kwargs)
    dm.trainer = SimpleNamespace(global_rank=rank, world_size=world_size, global_step=0)
    loader = dm.train_dataloader()
    positions = [x.tolist() for x, _ in loader]  # inputs, to identify the samples
    return positions, len(loader)


@pytest.mark.parametrize("batch_size, world_size", [(20, 2), (100, 2), (12, 4)])
def test_rank_shards_make_up_the_single_process_batches(batch_size, world_size):
    single, n_single = batches(batch_size, 0, 1)
    shards = [batches(batch_size, r, world_size) for r in range(world_size)]
    assert all(n == n_single for _, n in shards)
    for step, expected in enumerate(single):
        parts = [shard[step] for shard, _ in shards]
        assert [len(p) for p in parts] == [len(expected) // world_size] * world_size or (
            step == len(single) - 1  # the last incomplete batch splits as evenly as it can
        )
        assert [row for part in parts for row in part] == expected


def test_global_batch_must_split_evenly():
    with pytest.raises(SetupError, match="multiple of the number of processes"):
        batches(5, 0, 2)
    with pytest.raises(SetupError, match="last batch"):
        batches(8, 0, 4, n_train=90)  # last batch of 2 samples for 4 processes
