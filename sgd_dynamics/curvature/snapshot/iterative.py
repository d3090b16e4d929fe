"""The iterative method of a snapshot: matrix-free products and `block_eigsh`.

k largest of H_f and M, k largest and k smallest of H_p = M - H_f (each H_p product one
Hessian-vector product of the mean of p_i / p_i(θ₀), `CurvatureOperators.hp`). M through
per-sample gradient factors and its Gram matrix, or jvp/vjp products (`operators.m_route`).
Every solve ends with the eigensolver's multiplicity check (no copy of a repeated eigenvalue
missed; docs/math.md). A previous snapshot passed as `warm_start` provides the starting vectors
of the solvers (for M through the Gram matrix: its eigenvectors of K, `mt_sample_vecs`, on the
same samples). Through all the H_f products of a snapshot (its solve, H_p's, the traces) the
gradient graphs of the data chunks are kept (at most `thresholds.KEEP_GRAPHS_MAX_CHUNKS` chunks),
which makes a product cheaper than two gradient passes. M_b: from K's Gram side when K was formed
(`parts.minibatch_top_from_gram`), else a Lanczos solve on its products.

H_p's extremes (`hp_extremes`), by `hp_method`:
- "solve": a `block_eigsh` solve on H_p products (each one M and one H_f product);
- "ritz": Rayleigh-Ritz estimates on span(top-k of H_f, top-k of M) instead of a third solve (k
  extra H_f products; H_f on its own Ritz vectors comes from the Krylov relation): cheap, but not
  converged eigenvalues; their relative residuals are in diagnostics["hp_max_residual"], and a
  residual above `thresholds.RITZ_MAX_RESIDUAL` is flagged like a solve that did not converge;
- "none": skipped (NaN).

Traces (`hutchinson`, `trace_fields`): tr(H_f) is a Hutchinson estimate (`trace_probes`
Rademacher probes, standard error std / sqrt(probes)); tr(M) is exact with per-sample gradient
factors and a Hutchinson estimate on the same probes otherwise; tr(H_p) = tr(M) - tr(H_f).
"""

from __future__ import annotations

import contextlib
import math
import warnings

import torch
from torch import Tensor

from ..choices import HpMethod, OnNonconvergence
from ..gram.spectrum import second_moment_from_gram
from ..operators.distributed import sum_scalars
from ..operators.m_route import m_factors, m_route_of
from ..operators.products import CurvatureOperators, minibatch_coefficient
from ..options import SpectraOptions
from ..solvers.block_lanczos import ConvergenceError, ConvergenceWarning, EigResult
from ..solvers.rayleigh_ritz import rayleigh_ritz
from ..thresholds import RITZ_MAX_RESIDUAL, keeps_gradient_graphs
from .parts import Laps, SnapshotParts, minibatch_top_from_gram, snapshot_eigsh, solver_info


def _hp_ritz(ops: CurvatureOperators, hf: EigResult, mt_vecs: Tensor, k: int) -> EigResult:
    """Extremes of H_p = M - H_f by Rayleigh-Ritz on span(top of H_f, top of M).

    H_f on the H_f Ritz vectors comes from the solver's Krylov relation (no product); H_f on the
    M vectors costs one block of k products; M on both goes through M's route. Residuals are the
    true ones of the returned pairs (relative to the largest |Ritz value|): not a converged solve.
    """
    assert hf.images is not None
    mt_vecs = mt_vecs.to(device=ops.theta.device, dtype=ops.theta.dtype)
    basis = torch.cat([hf.eigenvectors, mt_vecs], dim=1)
    hf_images = torch.cat([hf.images, ops.hf(mt_vecs)], dim=1)
    # the basis holds at least k independent directions (H_f's orthonormal Ritz vectors)
    return rayleigh_ritz(basis, ops.m(basis) - hf_images, k)


def _flag_far_ritz_values(hp: EigResult, on_nonconvergence: str) -> None:
    """Warn (`ConvergenceWarning`) or raise (`ConvergenceError`), per `on_nonconvergence`, when
    a Ritz pair's relative residual exceeds `thresholds.RITZ_MAX_RESIDUAL`: its value is then
    only known to lie within that residual (times ||H_p||) of some eigenvalue of H_p."""
    if not hp.max_residual > RITZ_MAX_RESIDUAL:  # NaN residuals are flagged too
        return
    message = (
        f"H_p (hp_method='ritz'): a Rayleigh-Ritz estimate has relative residual "
        f"{hp.max_residual:.2e} > {RITZ_MAX_RESIDUAL:.0e}, so H_p's extremes may be off by up to "
        f"that fraction of ||H_p|| or more; use hp_method='solve' (spectral.hp_method=solve) for "
        f"converged values"
    )
    if on_nonconvergence == OnNonconvergence.RAISE:
        raise ConvergenceError(message)
    if on_nonconvergence == OnNonconvergence.WARN:
        warnings.warn(message, ConvergenceWarning, stacklevel=5)


def hp_extremes(
    ops: CurvatureOperators,
    hf: EigResult,
    mt_vecs: Tensor,
    x0: Tensor | None,
    k: int,
    options: SpectraOptions,
) -> tuple[EigResult | None, dict[str, float]]:
    """H_p's k largest then k smallest eigenpairs by `options.hp_method` ("none": None), with
    solver figures. hp_matvecs counts H_p products for "solve" (each one M and one H_f product)
    and the k H_f products of the Rayleigh-Ritz step for "ritz" (its 2k M products on the basis,
    through M's route, are not counted)."""
    if options.hp_method == HpMethod.NONE:
        return None, {}
    if options.hp_method == HpMethod.SOLVE:
        hp = snapshot_eigsh(ops, "H_p", ops.hp, "both", x0, k, options)
        return hp, solver_info("hp", hp)
    hp = _hp_ritz(ops, hf, mt_vecs, k)
    _flag_far_ritz_values(hp, options.on_nonconvergence)
    info = solver_info("hp", hp)
    info.update(hp_matvecs=float(mt_vecs.shape[1]), hp_ritz=1.0)
    return hp, info


def hp_fields(hp: EigResult | None, k: int) -> dict[str, Tensor | None]:
    """hp_top, hp_bottom (NaN without H_p's extremes) and their eigenvectors from H_p's pairs."""
    if hp is None:
        nan = torch.full((k,), math.nan)
        return dict(hp_top=nan, hp_bottom=nan, hp_top_vecs=None, hp_bottom_vecs=None)
    values, vectors = hp.eigenvalues, hp.eigenvectors
    return dict(
        hp_top=values[:k],
        hp_bottom=values[k:],
        hp_top_vecs=vectors[:, :k],
        hp_bottom_vecs=vectors[:, k:],
    )


def hutchinson(ops: CurvatureOperators, probes: int, seed: int, with_m: bool) -> dict[str, float]:
    """Hutchinson estimates with standard errors: trace_hf (and, if with_m, trace_mt), and
    trace_hp_stderr, the standard error of tr(H_p) from the same probes (per-probe
    zᵀ(M - H_f)z when M is estimated too, else zᵀ H_f z: tr(M) is then exact)."""
    if probes < 1:
        return dict(trace_hf=math.nan, trace_hf_stderr=math.nan, trace_hp_stderr=math.nan)
    generator = torch.Generator(device=ops.theta.device)
    generator.manual_seed(seed + 7919)
    z = torch.randint(0, 2, (ops.n_params, probes), generator=generator, device=ops.theta.device)
    z = z.to(ops.theta.dtype) * 2 - 1
    hf_samples = (z * ops.hf(z)).sum(0)

    def stderr(samples: Tensor) -> float:
        return float(samples.std() / math.sqrt(probes)) if probes > 1 else math.nan

    out = dict(trace_hf=float(hf_samples.mean()), trace_hf_stderr=stderr(hf_samples))
    out["trace_hp_stderr"] = out["trace_hf_stderr"]
    if with_m:
        m_samples = (z * ops.m(z)).sum(0)
        out.update(trace_mt=float(m_samples.mean()), trace_mt_stderr=stderr(m_samples))
        out["trace_hp_stderr"] = stderr(m_samples - hf_samples)
    return out


def trace_fields(ops: CurvatureOperators, traces: dict[str, float]) -> dict[str, float]:
    """The six trace fields of a snapshot from the Hutchinson estimates: tr(M) exact from the
    per-sample gradient factors when M has them (summed over the ranks under DDP)."""
    factors = ops.gradients
    if factors is not None:
        (trace_mt,) = sum_scalars(ops.distributed, float(factors.sq_norms().sum()), like=ops.theta)
        traces.update(trace_mt=trace_mt / ops.n_samples, trace_mt_stderr=0.0)
    return dict(
        trace_hf=traces["trace_hf"],
        trace_mt=traces.get("trace_mt", math.nan),
        trace_hp=traces.get("trace_mt", math.nan) - traces["trace_hf"],
        trace_hf_stderr=traces["trace_hf_stderr"],
        trace_mt_stderr=traces.get("trace_mt_stderr", math.nan),
        trace_hp_stderr=traces["trace_hp_stderr"],
    )


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
    # H_p solve or Ritz step, traces): no forward pass per product
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
