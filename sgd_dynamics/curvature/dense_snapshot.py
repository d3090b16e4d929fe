"""The dense method of a snapshot: the exact P×P matrices H_f, M, H_p and their full spectra.

All P eigenvalues of H_f, M and H_p = M - H_f; M's spectrum from the n×n Gram matrix when n < P
(and G fits `memory_budget`); exact traces.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .dense import eigenvalues, eigenvalues_and_top_vectors, hessian_matrix, second_moment_matrix
from .gram import second_moment_from_gram
from .minibatch_top import minibatch_top_from_gram, minibatch_top_from_moment
from .operators import CurvatureOperators, minibatch_coefficient
from .options import SpectraOptions
from .per_sample import DenseGradients, per_sample_gradients
from .snapshot_parts import SnapshotParts
from .thresholds import dense_m_through_gram


def _dense_second_moment(
    ops: CurvatureOperators, memory_budget: int
) -> tuple[Tensor, DenseGradients | None, Tensor | None]:
    """(M (P, P), per-sample gradients G or None, K = G Gᵀ / n or None) for the dense method.

    G and K are formed when M's spectrum comes from the Gram side (`dense_m_through_gram`). Under
    DDP each rank holds a shard of the samples, so the n×n Gram matrix is not local: M is summed
    as a P×P matrix instead (one all_reduce of P² numbers)."""
    n, p, itemsize = ops.n_samples, ops.n_params, ops.theta.element_size()
    if ops.distributed is None and dense_m_through_gram(n, p, itemsize, memory_budget):
        factors = DenseGradients(
            per_sample_gradients(ops.fm, ops.inputs, ops.targets, ops.chunk_size)
        )
        return factors.matrix.T @ factors.matrix / n, factors, factors.gram().div_(n)
    moment = second_moment_matrix(ops.fm, ops.inputs, ops.targets, ops.chunk_size, ops.distributed)
    return moment, None, None


def dense_snapshot(
    ops: CurvatureOperators, k: int, batch_size: int | None, options: SpectraOptions
) -> SnapshotParts:
    """The exact P×P matrices H_f, M, H_p = M - H_f, all their eigenvalues, exact traces."""
    n, p, threads = ops.n_samples, ops.n_params, options.dense_threads
    hessian = hessian_matrix(ops)
    moment, factors, gram = _dense_second_moment(ops, options.memory_budget)
    residual = moment - hessian
    hf_all, hf_top, hf_vecs = eigenvalues_and_top_vectors(hessian, k, threads)
    hp_all = eigenvalues(residual, threads)
    if factors is not None:
        spectrum = second_moment_from_gram(
            factors, k, all_values=True, dense_threads=threads, gram=gram, seed=options.seed
        )
        assert spectrum.gram_values is not None
        zeros = torch.zeros(p - n, dtype=spectrum.gram_values.dtype)
        mt_all = torch.sort(torch.cat([zeros, spectrum.gram_values.cpu()])).values
        mt_top, mt_vecs = spectrum.top, spectrum.vectors
    else:
        mt_all, mt_top, mt_vecs = eigenvalues_and_top_vectors(moment, k, threads)
    traces = [float(torch.trace(matrix)) for matrix in (hessian, moment, residual)]
    parts = SnapshotParts(
        "dense", hf_top, hf_vecs, mt_top, mt_vecs, hp_all[-k:].flip(0), hp_all[:k], *traces
    )
    parts.hf_all, parts.mt_all, parts.hp_all, parts.gram = hf_all, mt_all, hp_all, gram
    if batch_size is not None:
        # the dense method keeps no solver figures (as before the typed snapshot): a Lanczos
        # solve on K's M_b side (n > DENSE_GRAM_MAX) still warns when it does not converge
        c = minibatch_coefficient(ops.n_samples, batch_size)
        if gram is not None:
            parts.mb_top, _ = minibatch_top_from_gram(gram, c, options)
        else:
            parts.mb_top = minibatch_top_from_moment(ops, moment, c, options)
    return parts
