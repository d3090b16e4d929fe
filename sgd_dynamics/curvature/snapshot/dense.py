"""The dense method of a snapshot: the exact P×P matrices H_f, M, H_p and their full spectra.

All P eigenvalues of H_f, M and H_p = M - H_f; M's spectrum from the n×n Gram matrix when n < P
(and G fits `memory_budget`); exact traces; M_b's top eigenvalues from the Gram side or from the
P×P matrix M.

H_f is assembled column block by column block as H_f I through the Hessian-vector products of
`CurvatureOperators` (exact, not an approximation); M = Gᵀ G / n from the per-sample gradients,
summed over chunks of samples. Dense eigendecompositions run under a thread limit
(`threads.limit_threads`); on CPU they use scipy's LAPACK drivers (all eigenvalues without vectors
where vectors are not needed, and only the top-k vectors where they are).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from sgd_dynamics.threads import limit_threads

from ..gram.spectrum import second_moment_from_gram
from ..operators.distributed import Reduction, sum_scalars
from ..operators.functional import FunctionalModel
from ..operators.per_sample import DenseGradients, per_sample_gradients
from ..operators.products import CurvatureOperators, minibatch_coefficient
from ..options import SpectraOptions
from ..progress import tick
from ..thresholds import dense_m_through_gram
from .parts import SnapshotParts, minibatch_top_from_gram

__all__ = [
    "dense_snapshot",
    "hessian_matrix",
    "second_moment_matrix",
    "eigenvalues",
    "eigenvalues_and_top_vectors",
]

_BLOCK_ELEMENTS = 1 << 18  # columns × samples per vmapped Hessian block


def hessian_matrix(ops: CurvatureOperators, column_block: int | None = None) -> Tensor:
    """H_f = (1/n) Σ_i ∇²f_i as a symmetric (P, P) tensor in ops' dtype."""
    p = ops.n_params
    column_block = column_block or max(1, min(p, _BLOCK_ELEMENTS // ops.chunk_size))
    eye = torch.eye(p, dtype=ops.theta.dtype, device=ops.theta.device)
    matrix = torch.cat(
        [ops.hf(eye[:, s : s + column_block]) for s in range(0, p, column_block)], dim=1
    )
    return 0.5 * (matrix + matrix.T)


def second_moment_matrix(
    fm: FunctionalModel,
    inputs: Tensor,
    targets: Tensor,
    chunk_size: int,
    distributed: Reduction | None = None,
) -> Tensor:
    """M = (1/n) Σ_i g_i g_iᵀ as a (P, P) tensor, per-sample gradients taken chunk by chunk.

    With `distributed`, (inputs, targets) are this rank's shard: the partial sums and counts are
    all-reduced, so every rank gets the mean over all samples."""
    p, n = fm.n_params, inputs.shape[0]
    matrix = torch.zeros(p, p, dtype=fm.dtype, device=fm.device)
    for start in range(0, n, chunk_size):
        g = per_sample_gradients(
            fm, inputs[start : start + chunk_size], targets[start : start + chunk_size], chunk_size
        )
        matrix += g.T @ g
    if distributed is not None:
        distributed.sum(matrix)
        (n,) = sum_scalars(distributed, n, like=matrix)
    return matrix / n


def eigenvalues(matrix: Tensor, n_threads: int | None = 1) -> Tensor:
    """All eigenvalues of a symmetric matrix, ascending (same dtype and device)."""
    tick("eigendecompositions")
    with limit_threads(n_threads):
        if matrix.device.type == "cpu":
            values = scipy.linalg.eigh(matrix.numpy(), eigvals_only=True, check_finite=False)
            return torch.from_numpy(np.ascontiguousarray(values))
        return torch.linalg.eigvalsh(matrix)


def _lapack_top(a: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One tridiagonal reduction (sytrd) for all eigenvalues (sterf) and the top-k eigenvectors
    (stemr on the tridiagonal, then the Householder back-transformation with torch.ormqr)."""
    p = a.shape[0]
    sytrd, sytrd_lwork, sterf, stemr = scipy.linalg.get_lapack_funcs(
        ("sytrd", "sytrd_lwork", "sterf", "stemr"), (a,)
    )
    lwork, info = sytrd_lwork(p, lower=1)
    c, d, e, tau, info = sytrd(a, lower=1, lwork=int(lwork))
    if info != 0:
        raise np.linalg.LinAlgError(f"sytrd failed with info = {info}")
    values, info = sterf(d.copy(), e.copy())
    if info != 0:
        raise np.linalg.LinAlgError(f"sterf failed with info = {info}")
    m, top, z, info = stemr(d.copy(), np.append(e, 0.0), 3, 0.0, 0.0, p - k + 1, p)
    if info != 0 or m != k:
        raise np.linalg.LinAlgError(f"stemr failed with info = {info} ({m} of {k} vectors)")
    # Q = H(1) ... H(p-1) with the reflectors below the subdiagonal of c: a QR factor of c[1:, :-1]
    z = torch.from_numpy(np.ascontiguousarray(z[:, :k]))
    z[1:] = torch.ormqr(
        torch.from_numpy(np.ascontiguousarray(c[1:, :-1])), torch.from_numpy(tau), z[1:]
    )
    return values, top[:k][::-1], z.numpy()[:, ::-1]


def eigenvalues_and_top_vectors(
    matrix: Tensor, k: int, n_threads: int | None = 1
) -> tuple[Tensor, Tensor, Tensor]:
    """(all eigenvalues ascending (P,), k largest descending (k,), their eigenvectors (P, k))."""
    tick("eigendecompositions")
    p = matrix.shape[0]
    with limit_threads(n_threads):
        if matrix.device.type == "cpu" and p > 2:
            try:
                values, top, vectors = _lapack_top(matrix.numpy(), k)
            except np.linalg.LinAlgError:
                a = matrix.numpy()
                values = scipy.linalg.eigh(a, eigvals_only=True, check_finite=False)
                top, vectors = scipy.linalg.eigh(a, subset_by_index=[p - k, p - 1])
                top, vectors = top[::-1], vectors[:, ::-1]
            return tuple(torch.from_numpy(np.ascontiguousarray(x)) for x in (values, top, vectors))
        values, vectors = torch.linalg.eigh(matrix)
        return values, values[-k:].flip(0), vectors[:, -k:].flip(1)


def minibatch_top_from_moment(
    ops: CurvatureOperators, moment: Tensor, c: float, options: SpectraOptions
) -> Tensor:
    """(k,) largest eigenvalues of M_b = c M + (1 - c) μμᵀ from the P×P matrix M (dense)."""
    mu = ops.mean_gradient
    matrix = c * moment + (1.0 - c) * torch.outer(mu, mu)
    return eigenvalues(matrix, options.dense_threads)[-options.k :].flip(0)


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
