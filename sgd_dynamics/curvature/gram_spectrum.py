"""All eigenvalues of the n×n Gram matrix K = G Gᵀ / n: M's exact spectrum (with P - n zeros).

G (n×P) holds the per-sample gradients g_i = ∇f_i as rows; M = Gᵀ G / n and K share their
nonzero eigenvalues. K comes from per-sample gradient factors (`per_sample.GradientFactors`:
layer by layer for networks of nn.Linear layers, never forming G) or, for any other model,
block by block from per-sample gradients of chunks of samples (G never held whole: the chunk
pairs (a, b), b >= a, recompute chunk b's gradients, about (n / chunk)² / 2 chunk passes).
Under DDP each process holds its shard's factors (or samples) and K is assembled across the
processes (`sharded_gram`), the same on every one.
"""

from __future__ import annotations

from torch import Tensor

from .functional import FunctionalModel
from .gram import top_eigenvalues
from .operators import CurvatureOperators
from .per_sample import GradientFactors
from .sharded_gram import SampleShard, same_kind_everywhere, self_gram, sharded_gram

__all__ = ["gram_eigenvalues", "per_sample_gram", "snapshot_gram"]


def per_sample_gram(
    fm: FunctionalModel, inputs: Tensor, targets: Tensor, chunk_size: int
) -> Tensor:
    """K = G Gᵀ / n (n, n) in fm.dtype, from per-sample gradients of pairs of chunks."""
    return self_gram(SampleShard(fm, inputs, targets, chunk_size)).div_(inputs.shape[0])


def snapshot_gram(ops: CurvatureOperators, factors: GradientFactors | None) -> Tensor:
    """K = G Gᵀ / n (n, n) over all ops.n_samples samples: from `factors` (per-sample gradient
    factors of ops' samples), else from per-sample gradients chunk by chunk. Under
    ops.distributed (a shard's factors or samples on each process) assembled across the
    processes, identical on every one (`sharded_gram.sharded_gram`; from the samples on every
    process when the processes' factors are not of one kind)."""
    samples = SampleShard(ops.fm, ops.inputs, ops.targets, ops.chunk_size)
    source = samples if factors is None else factors
    if ops.distributed is None or ops.distributed.world_size == 1:
        return self_gram(source).div_(ops.n_samples)
    if not same_kind_everywhere(source, ops.distributed):  # e.g. factors on some ranks only
        source = samples
    return sharded_gram(source, ops.distributed, ops.n_samples)


def gram_eigenvalues(source: GradientFactors | Tensor, dense_threads: int | None = 1) -> Tensor:
    """All n eigenvalues of K, descending: `source` is K itself (n, n) or gradient factors."""
    if isinstance(source, GradientFactors):
        kernel = source.gram().div_(source.n_samples)
    else:
        kernel = source
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(f"the Gram matrix must be square (n, n), got {tuple(kernel.shape)}")
    values, _ = top_eigenvalues(kernel, kernel.shape[0], dense_threads=dense_threads, name="K")
    return values
