"""The iterative method of a snapshot: matrix-free products and `block_eigsh`.

k largest of H_f and M, k largest and k smallest of H_p = M - H_f (each H_p product one
Hessian-vector product of the mean of p_i / p_i(θ₀), operators.py; hp_extremes.py). M through
per-sample gradient factors and its Gram matrix, or jvp/vjp products (m_factors.py). Every solve
ends with the eigensolver's multiplicity check (no copy of a repeated eigenvalue missed;
docs/math.md). Traces: traces.py. A previous snapshot passed as `warm_start` provides the
starting vectors of the solvers (for M through the Gram matrix: its eigenvectors of K,
`mt_sample_vecs`, on the same samples). Through all the H_f products of a snapshot (its solve,
H_p's, the traces) the gradient graphs of the data chunks are kept (at most
`thresholds.KEEP_GRAPHS_MAX_CHUNKS` chunks), so a product costs about 1.2-1.4 gradient passes
instead of 2. M_b: from K's Gram side when K was formed (minibatch_top.py), else a Lanczos solve
on its products.
"""

from __future__ import annotations

import contextlib

from torch import Tensor

from .gram import second_moment_from_gram
from .hp_extremes import hp_extremes, hp_fields
from .m_factors import m_factors, m_route_of
from .minibatch_top import minibatch_top_from_gram
from .operators import CurvatureOperators, minibatch_coefficient
from .options import SpectraOptions
from .snapshot_parts import Laps, SnapshotParts, snapshot_eigsh, solver_info
from .thresholds import keeps_gradient_graphs
from .traces import hutchinson, trace_fields


def _iterative_top_of_m(
    ops: CurvatureOperators, k: int, start: dict[str, Tensor], options: SpectraOptions
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, dict[str, float]]:
    """(top-k of M, their eigenvectors (P, k), K's eigenvectors (n, k') or None, K or None,
    solver figures): through the n×n Gram matrix K when M has factors and all the samples are
    on this process, else by Lanczos on M products."""
    factors = ops.gradients
    if factors is None or ops.distributed is not None:  # DDP: factors of a shard, no Gram
        mt = snapshot_eigsh(ops, "M", ops.m, "largest", start.get("mt"), k, options)
        return mt.eigenvalues, mt.eigenvectors, None, None, solver_info("mt", mt)
    gram = factors.gram().div_(ops.n_samples)
    spectrum = second_moment_from_gram(
        factors,
        k,
        gram=gram,
        tol=options.solver_tolerance,
        seed=options.seed,
        on_failure=options.on_nonconvergence,
        dense_threads=options.dense_threads,
        check_steps=options.check_steps,
        x0=start.get("mt_gram"),
    )
    return spectrum.top, spectrum.vectors, spectrum.sample_vectors, gram, spectrum.info


def iterative_snapshot(
    ops: CurvatureOperators,
    k: int,
    batch_size: int | None,
    warm: dict[str, Tensor],
    options: SpectraOptions,
) -> SnapshotParts:
    """Matrix-free: top-k of H_f and M, H_p's extremes, traces (and M_b), each part timed."""
    factors, factor_info = m_factors(ops, options)
    m_route = m_route_of(factors)
    start = {key: block.to(ops.theta) for key, block in warm.items()}
    diagnostics: dict[str, float] = {}
    laps = Laps(diagnostics)
    keep_graphs = keeps_gradient_graphs(ops.n_samples, ops.chunk_size)
    # the chunks' gradient graphs are kept through every H_f product of the snapshot (H_f solve,
    # H_p solve or Ritz step, traces): ~1.2 instead of 2 gradient passes per product
    with ops.kept_gradient_graphs() if keep_graphs else contextlib.nullcontext():
        hf = snapshot_eigsh(ops, "H_f", ops.hf, "largest", start.get("hf"), k, options)
        diagnostics.update(solver_info("hf", hf))
        laps.lap("hf")
        mt_top, mt_vecs, sample_vecs, gram, info = _iterative_top_of_m(ops, k, start, options)
        diagnostics.update(info)
        laps.lap("mt")
        hp, info = hp_extremes(ops, hf, mt_vecs, start.get("hp"), k, options)
        diagnostics.update(info)
        if hp is not None:
            laps.lap("hp")
        traces = hutchinson(ops, options.trace_probes, options.seed, with_m=factors is None)
    traces = trace_fields(ops, traces)
    laps.lap("trace")
    hp_parts = hp_fields(hp, k)
    parts = SnapshotParts(
        m_route, hf.eigenvalues, hf.eigenvectors, mt_top, mt_vecs, **hp_parts, **traces
    )
    parts.mt_sample_vecs, parts.gram, parts.factors = sample_vecs, gram, factors
    parts.diagnostics = diagnostics
    if batch_size is not None:
        if gram is not None:  # K was formed: M_b from its Gram side
            c = minibatch_coefficient(ops.n_samples, batch_size)
            parts.mb_top, info = minibatch_top_from_gram(gram, c, options)
        else:  # Lanczos on M_b products, started from M's top vectors
            mb = snapshot_eigsh(
                ops, "M_b", lambda v: ops.mb(v, batch_size), "largest", mt_vecs, k, options
            )
            parts.mb_top, info = mb.eigenvalues, solver_info("mb", mb)
        diagnostics.update(info)
        laps.lap("mb")
    diagnostics.update(factor_info)
    return parts
