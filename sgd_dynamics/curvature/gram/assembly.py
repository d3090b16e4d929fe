"""The n×n Gram matrix K = G Gᵀ / n of the per-sample gradients (G: n×P, row i = ∇f_i), on one
process or assembled across R processes (DDP) that each hold only a shard of the samples.

`snapshot_gram` is the entry: K over a snapshot's samples from its gradient factors (layer by
layer for networks of nn.Linear layers, never forming G) or, for any other model, block by block
from per-sample gradients of chunks of samples (G never held whole: the chunk pairs (a, b),
b >= a, recompute chunk b's gradients, about (n / chunk)² / 2 chunk passes).

A shard's *source* of G's rows is one of
- `LinearLayerGradients`: the layer-wise factors A_l (n_r, in_l + 1) and D_l (n_r, out_l);
  G_r G_sᵀ = Σ_l (A_l A'_lᵀ) ∘ (D_l D'_lᵀ);
- `DenseGradients`: G_r itself (n_r, P);
- `SampleShard`: only the samples (x, y) (no factors fit the memory budget, or the model has
  none); G's rows are recomputed by `vmap(grad)` chunk by chunk, for each pair of chunks.

K is assembled from the blocks K_rs = G_r G_sᵀ between shards r and s. Each rank in turn
broadcasts its source's tensors (its *payload*: a few numbers per sample for the layer-wise
factors, P per sample for G, one sample each for the samples), and every rank computes the
blocks assigned to it (`assigned_blocks`): its diagonal block, the full blocks with the ranks
d = 1 .. ⌈R/2⌉ - 1 ahead of it, and, for even R, half of the block with the rank R/2 ahead, so
that each pair of shards is computed once and every rank gets about n²/(2R) entries. The blocks
and their transposes are written into an n×n zero matrix and one all_reduce SUM adds the ranks'
matrices: each entry is written by exactly one rank (the others add zeros), so every rank holds
the same K, equal to the single-process one up to the rounding of the block products.

Communication: R broadcasts of one shard's payload and one all_reduce of n² numbers. With one
process (`Reduction(0, 1)`) no collective is called.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from ..operators.distributed import Reduction
from ..operators.functional import FunctionalModel
from ..operators.per_sample import (
    GRAM_ROW_BLOCK,
    DenseGradients,
    GradientFactors,
    LinearLayerGradients,
    per_sample_gradients,
)
from ..operators.products import CurvatureOperators
from ..progress import tick

__all__ = [
    "snapshot_gram",
    "per_sample_gram",
    "SampleShard",
    "GramSource",
    "assigned_blocks",
    "same_kind_everywhere",
    "self_gram",
    "sharded_gram",
]


@dataclass
class SampleShard:
    """A shard's samples, for models without per-sample gradient factors: inputs (n_r, ...) in
    fm.dtype on fm.device, targets (n_r,) int64; G's rows by `vmap(grad)` in chunks."""

    fm: FunctionalModel
    inputs: Tensor
    targets: Tensor
    chunk_size: int


GramSource = GradientFactors | SampleShard


def _payload(source: GramSource) -> list[Tensor]:
    """The tensors that define `source`, each indexed by sample along its first dimension."""
    if isinstance(source, LinearLayerGradients):
        return [t for layer in source.layers for t in (layer.inputs, layer.output_grads)]
    if isinstance(source, DenseGradients):
        return [source.matrix]
    if isinstance(source, SampleShard):
        return [source.inputs, source.targets]
    raise ValueError(
        "a Gram matrix source must be LinearLayerGradients, DenseGradients or SampleShard, got "
        f"{type(source).__name__}"
    )


def _with_payload(source: GramSource, tensors: list[Tensor]) -> GramSource:
    """A source of the same kind (and layout) as `source` holding `tensors` (`_payload`'s)."""
    if isinstance(source, LinearLayerGradients):
        layers = [
            dataclasses.replace(layer, inputs=a, output_grads=d)
            for layer, a, d in zip(source.layers, tensors[::2], tensors[1::2], strict=True)
        ]
        return LinearLayerGradients(layers, tensors[0].shape[0], source.n_params)
    if isinstance(source, DenseGradients):
        return DenseGradients(tensors[0])
    return dataclasses.replace(source, inputs=tensors[0], targets=tensors[1])


def _rows(source: GramSource, part: slice) -> GramSource:
    return _with_payload(source, [t[part] for t in _payload(source)])


def _dtype(source: GramSource) -> torch.dtype:
    return source.fm.dtype if isinstance(source, SampleShard) else _payload(source)[0].dtype


def _chunks(shard: SampleShard) -> list[tuple[Tensor, Tensor]]:
    step = shard.chunk_size
    n = shard.targets.shape[0]
    return [(shard.inputs[s : s + step], shard.targets[s : s + step]) for s in range(0, n, step)]


def _gradients(shard: SampleShard, x: Tensor, y: Tensor) -> Tensor:
    return per_sample_gradients(shard.fm, x, y, shard.chunk_size)


def _sample_gram(left: SampleShard, right: SampleShard | None) -> Tensor:
    """G_left G_rightᵀ from per-sample gradients of pairs of chunks (right None: G Gᵀ of left,
    the pairs (a, b), b >= a, only, about (n / chunk)² / 2 chunk passes)."""
    other = left if right is None else right
    out = torch.empty(
        left.targets.shape[0], other.targets.shape[0], dtype=left.fm.dtype, device=left.fm.device
    )
    row = 0
    for a, (xa, ya) in enumerate(_chunks(left)):
        first = _gradients(left, xa, ya)
        rows = slice(row, row + first.shape[0])
        col = 0
        for b, (xb, yb) in enumerate(_chunks(other)):
            cols = slice(col, col + xb.shape[0])
            col = cols.stop
            if right is None and b < a:
                continue
            second = first if right is None and b == a else _gradients(other, xb, yb)
            out[rows, cols] = first @ second.T
            if right is None and b != a:
                out[cols, rows] = out[rows, cols].T
        row = rows.stop
    return out


def _linear_cross(left: LinearLayerGradients, right: LinearLayerGradients) -> Tensor:
    """Σ_l (A_l A'_lᵀ) ∘ (D_l D'_lᵀ), (n_left, n_right), by blocks of GRAM_ROW_BLOCK rows."""
    first = left.layers[0].inputs
    out = torch.empty(left.n_samples, right.n_samples, dtype=first.dtype, device=first.device)
    for start in range(0, left.n_samples, GRAM_ROW_BLOCK):
        tick("Gram matrix rows", min(GRAM_ROW_BLOCK, left.n_samples - start))
        rows = slice(start, start + GRAM_ROW_BLOCK)
        block = torch.zeros_like(out[rows])
        for mine, theirs in zip(left.layers, right.layers, strict=True):
            inputs_gram = mine.inputs[rows] @ theirs.inputs.T
            block.addcmul_(inputs_gram, mine.output_grads[rows] @ theirs.output_grads.T)
        out[rows] = block
    return out


def _cross_gram(left: GramSource, right: GramSource) -> Tensor:
    """G_left G_rightᵀ (n_left, n_right), unnormalised; both sources of the same kind."""
    if isinstance(left, LinearLayerGradients):
        assert isinstance(right, LinearLayerGradients)
        return _linear_cross(left, right)
    if isinstance(left, DenseGradients):
        assert isinstance(right, DenseGradients)
        return left.matrix @ right.matrix.T
    assert isinstance(left, SampleShard) and isinstance(right, SampleShard)
    return _sample_gram(left, right)


def self_gram(source: GramSource) -> Tensor:
    """G Gᵀ (n, n) of one source, unnormalised (the factors' symmetric `gram()`)."""
    if isinstance(source, SampleShard):
        return _sample_gram(source, None)
    _payload(source)  # names an unsupported kind
    return source.gram()


def same_kind_everywhere(source: GramSource, reduction: Reduction) -> bool:
    """Whether every rank's source is of the same kind (one all_reduce of 3 numbers). Ranks can
    differ where a shard one sample larger crosses the factors' memory budget; every rank must
    call it."""
    kinds = (LinearLayerGradients, DenseGradients, SampleShard)
    _payload(source)  # names an unsupported kind
    counts = torch.tensor([float(isinstance(source, kind)) for kind in kinds], dtype=torch.float64)
    device = _payload(source)[0].device
    counts = reduction.sum(counts.to(device))
    return bool((counts.max() == reduction.world_size).item())


def _sizes(n_samples: int, world_size: int) -> list[int]:
    return [
        len(range(n_samples)[Reduction(r, world_size).shard(n_samples)]) for r in range(world_size)
    ]


def assigned_blocks(reduction: Reduction, n_samples: int) -> list[tuple[int, slice, slice]]:
    """This rank's blocks of K: (s, own rows, s's rows), rows relative to the two shards, for the
    block K[own rows, s's rows]; s == rank is the (symmetric) diagonal block. Over all ranks the
    blocks and the transposes of the off-diagonal ones cover every entry of K exactly once."""
    rank, world = reduction.rank, reduction.world_size
    sizes = _sizes(n_samples, world)
    every = slice(None)
    blocks = [(rank, every, every)]
    for distance in range(1, world // 2 + 1):
        ahead = (rank + distance) % world
        if 2 * distance < world:
            blocks.append((ahead, every, every))
        elif rank < ahead:  # the pair {rank, rank + R/2}: the lower rank takes the first half
            blocks.append((ahead, every, slice(0, sizes[ahead] // 2)))  # of the upper's samples
        else:  # the upper rank its own second half, against all of the lower's samples
            blocks.append((ahead, slice(sizes[rank] // 2, None), every))
    return blocks


def _global(shard: slice, part: slice, n_samples: int) -> slice:
    indices = range(n_samples)[shard][part]
    return slice(indices.start, indices.stop)


def sharded_gram(source: GramSource, reduction: Reduction, n_samples: int) -> Tensor:
    """K = G Gᵀ / n (n, n) over all `n_samples` samples, identical on every rank of `reduction`;
    `source` holds this rank's shard (`reduction.shard(n_samples)`) of G's rows. Every rank must
    call it, with a source of the same kind and layout."""
    own = [t.contiguous() for t in _payload(source)]
    sizes = _sizes(n_samples, reduction.world_size)
    if own[0].shape[0] != sizes[reduction.rank]:
        raise ValueError(
            f"rank {reduction.rank}'s Gram source holds {own[0].shape[0]} samples; its shard of "
            f"{n_samples} samples has {sizes[reduction.rank]}"
        )
    device = own[0].device
    kernel = torch.zeros(n_samples, n_samples, dtype=_dtype(source), device=device)
    mine = reduction.shard(n_samples)
    blocks = assigned_blocks(reduction, n_samples)
    for sender in range(reduction.world_size):
        if sender == reduction.rank:
            tensors = own
        else:
            tensors = [
                torch.empty((sizes[sender], *t.shape[1:]), dtype=t.dtype, device=device)
                for t in own
            ]
        for tensor in tensors:
            reduction.broadcast(tensor, sender)
        theirs = Reduction(sender, reduction.world_size).shard(n_samples)
        for _, own_part, their_part in (b for b in blocks if b[0] == sender):
            rows = _global(mine, own_part, n_samples)
            cols = _global(theirs, their_part, n_samples)
            if rows.stop == rows.start or cols.stop == cols.start:
                continue
            if sender == reduction.rank:
                kernel[rows, cols] = self_gram(source)
                continue
            block = _cross_gram(
                _rows(source, own_part), _rows(_with_payload(source, tensors), their_part)
            )
            kernel[rows, cols] = block
            kernel[cols, rows] = block.T
    reduction.sum(kernel)
    return kernel.div_(n_samples)


def per_sample_gram(
    fm: FunctionalModel, inputs: Tensor, targets: Tensor, chunk_size: int
) -> Tensor:
    """K = G Gᵀ / n from per-sample gradients of pairs of chunks (G never held whole).

    Args:
        fm: the model as a function of θ.
        inputs: (n, ...) samples; targets: (n,) labels.
        chunk_size: samples per pass.

    Returns:
        (n, n) K in fm.dtype.
    """
    return self_gram(SampleShard(fm, inputs, targets, chunk_size)).div_(inputs.shape[0])


def snapshot_gram(ops: CurvatureOperators, factors: GradientFactors | None) -> Tensor:
    """K = G Gᵀ / n over all ops.n_samples samples of a snapshot.

    Under ops.distributed (a shard's factors or samples on each process) K is assembled across
    the processes, identical on every one (`sharded_gram`; from the samples on every process
    when the processes' factors are not of one kind).

    Args:
        ops: the snapshot's operators (samples, model, chunk size, reduction).
        factors: per-sample gradient factors of ops' samples (of this process's shard under DDP), or
            None: per-sample gradients chunk by chunk.

    Returns:
        (n, n) K in the computation dtype.
    """
    samples = SampleShard(ops.fm, ops.inputs, ops.targets, ops.chunk_size)
    source = samples if factors is None else factors
    if ops.distributed is None or ops.distributed.world_size == 1:
        return self_gram(source).div_(ops.n_samples)
    if not same_kind_everywhere(source, ops.distributed):  # e.g. factors on some ranks only
        source = samples
    return sharded_gram(source, ops.distributed, ops.n_samples)
