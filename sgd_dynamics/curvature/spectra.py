"""One snapshot of the curvature: spectra of H_f, M, H_p (and M_b), principal angles, traces.

`compute_spectra(model, inputs, targets, ...)` measures the quantities of docs/math.md for the
mean cross-entropy of `model(inputs)` (logits (n, C)) against `targets` (n,), as functions of
the model's trainable parameters θ (requires_grad=True; `params=` for another set) at their
current values. The network is evaluated in **eval mode** on a detached copy of its parameters
cast to `dtype`; the model itself (parameters, dtype, requires_grad flags, train/eval state) is
left exactly as found.

Two methods:
- "dense": the exact P×P matrices and their full spectra (all P eigenvalues of H_f, M, H_p);
  M's spectrum from the n×n Gram matrix when n < P. Exact traces.
- "iterative": matrix-free products and `block_eigsh`: k largest of H_f and M, k largest and k
  smallest of H_p = M - H_f (each H_p product one Hessian-vector product of the mean of
  p_i / p_i(θ₀), operators.py). M goes through per-sample gradient factors and its Gram matrix when
  they fit `memory_budget` (layer by layer for networks of nn.Linear layers whose weights are
  used only by their own layer's call), else through jvp/vjp products; a fast route is compared
  with the jvp/vjp product on one probe per snapshot (`self_check`). Every solve ends with the
  eigensolver's multiplicity check (no copy of a repeated eigenvalue missed; docs/math.md).
  tr(M) is exact with factors; tr(H_f) is a Hutchinson estimate (`trace_probes` Rademacher
  probes; every trace has its standard error, `trace_*_stderr`). A previous snapshot
  passed as `warm_start` provides the starting vectors of the solvers (for M through the Gram
  matrix: its eigenvectors of K, `mt_sample_vecs`, on the same samples). With hp_method="ritz"
  the extremes of H_p are Rayleigh-Ritz estimates on span(top-k of H_f, top-k of M) instead of a
  third solve (k extra H_f products; H_f on its own Ritz vectors comes from the Krylov relation):
  cheap, but not converged eigenvalues; their relative residuals are in
  diagnostics["hp_max_residual"]; hp_method="none" skips H_p's extremes. Through all the H_f
  products of a snapshot (its solve, H_p's, the traces) the gradient graphs of the data chunks
  are kept (at most `thresholds.KEEP_GRAPHS_MAX_CHUNKS` chunks), so a product costs about 1.2-1.4
  gradient passes instead of 2.
"auto" picks "dense" when P <= dense_max_params (`thresholds.DENSE_MAX_PARAMS`).

The settings are checked once, by `options.SpectraOptions`. Each method fills one `_Parts`
(M_b by `_minibatch_top_from_gram`, `_minibatch_top_from_moment` or a Lanczos solve on its
products); the shared steps (densities, principal angles, ||μ||, tr(M_b)) complete it into the
`Spectra`.

Timings of the parts and solver figures are in `Spectra.diagnostics`; progress goes to the logger
"sgd_dynamics.curvature" (INFO: method and route, DEBUG: solver iterations).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from sgd_dynamics.threads import limit_threads

from .angles import principal_angles
from .dense import eigenvalues, eigenvalues_and_top_vectors, hessian_matrix, second_moment_matrix
from .density import DensitySettings, Outliers, SpectralDensities, exact_densities
from .density import spectral_densities as slq_densities
from .distributed import Reduction, check_reduction, sum_scalars
from .eigensolvers import EigResult, block_eigsh
from .functional import FunctionalModel, evaluation_mode
from .gram import minibatch_gram, second_moment_from_gram, top_eigenvalues
from .gram_spectrum import gram_eigenvalues, snapshot_gram
from .inputs import check_batch_size, check_k, prepare_data
from .operators import CurvatureOperators, minibatch_coefficient
from .options import SpectraOptions
from .per_sample import DenseGradients, GradientFactors, gradient_factors, per_sample_gradients
from .ritz import rayleigh_ritz
from .thresholds import DENSE_MAX_PARAMS, dense_m_through_gram, keeps_gradient_graphs

__all__ = ["Spectra", "SpectraOptions", "compute_spectra"]

logger = logging.getLogger("sgd_dynamics.curvature")


def _numpy(x: Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float64).numpy()


@dataclass
class Spectra:
    """A curvature snapshot. Eigenvalue arrays are float64 numpy; eigenvectors CPU tensors.

    hf_top, mt_top: (k,) largest eigenvalues of H_f and M, descending.
    hp_top: (k,) largest eigenvalues of H_p, descending; hp_bottom: (k,) smallest, ascending.
    hf_vecs, mt_vecs: (P, k) orthonormal eigenvectors (the trainable parameters, or `params`,
        flattened in model.named_parameters() order), columns matching hf_top / mt_top.
    cosines: (k,) cosines of the principal angles between the top eigenspaces of H_f and M,
        descending, where defined: between span(hf_vecs[:, :a]) and span(mt_vecs[:, :r]) with r
        the numerical rank of M among the k (eigenvalues > ρ λ_1(M)) and a the number of positive
        H_f eigenvalues among the k (> ρ max|λ|), ρ = max(10 min(n, P) eps, solver tolerance
        in the iterative method). Entries from min(a, r) on are NaN: beyond M's rank its
        eigenvectors are an arbitrary basis of its null space, and the angles would be
        arbitrary (diagnostics["cosines_defined"] = min(a, r)).
    hf_all, mt_all, hp_all: (P,) all eigenvalues ascending (dense method), else None.
    trace_hf, trace_mt, trace_hp: traces, each with its standard error (trace_hf_stderr,
        trace_mt_stderr, trace_hp_stderr; 0 where exact). Exact in the dense method; in the
        iterative method trace_hf is a Hutchinson estimate (`trace_probes` Rademacher probes,
        standard error std / sqrt(probes)), trace_mt is exact when M goes through per-sample
        gradient factors and a Hutchinson estimate on the same probes otherwise, and
        trace_hp = trace_mt - trace_hf (its standard error from the per-probe differences).
    grad_norm: ||μ||, μ = ∇F; loss, accuracy: mean loss and accuracy on the samples (eval mode).
    batch_size, mb_top, trace_mb: the size-b mini-batch second moment M_b (when batch_size given).
    hp_top_vecs, hp_bottom_vecs: (P, k) eigenvectors of H_p (iterative method; for warm starts).
    mt_sample_vecs: (n, min(k, n)) eigenvectors of the Gram matrix K = G Gᵀ / n matching mt_top
        (iterative method, M through the Gram matrix; they start the next snapshot's solve on K).
    densities: spectral densities of H_f, M and H_p and W1(H_p, -H_f) (`density=` on), else None.
    diagnostics: solver figures (matvecs, iterations, max relative residuals, converged flags)
        and the iterative method's timings (`*_seconds`). `hp_matvecs` counts H_p products with
        hp_method="solve" (each one M and one H_f product) and only the k H_f products of the
        Rayleigh-Ritz step with hp_method="ritz" (its 2k M products are not counted).
    """

    k: int
    method: str
    m_route: str
    dtype: str
    n_samples: int
    n_params: int
    hf_top: np.ndarray
    mt_top: np.ndarray
    hp_top: np.ndarray
    hp_bottom: np.ndarray
    cosines: np.ndarray
    hf_vecs: Tensor
    mt_vecs: Tensor
    trace_hf: float
    trace_mt: float
    trace_hp: float
    grad_norm: float
    loss: float
    accuracy: float
    hf_all: np.ndarray | None = None
    mt_all: np.ndarray | None = None
    hp_all: np.ndarray | None = None
    trace_hf_stderr: float = 0.0
    trace_mt_stderr: float = 0.0
    trace_hp_stderr: float = 0.0
    batch_size: int | None = None
    mb_top: np.ndarray | None = None
    trace_mb: float | None = None
    hp_top_vecs: Tensor | None = None
    hp_bottom_vecs: Tensor | None = None
    mt_sample_vecs: Tensor | None = None
    densities: SpectralDensities | None = None
    seconds: float = 0.0
    diagnostics: dict[str, float] = field(default_factory=dict)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything storable (no P×k eigenvector blocks) as float64 numpy arrays (0-d scalars)."""
        out: dict[str, np.ndarray] = {}
        for name in ("hf_top", "mt_top", "hp_top", "hp_bottom", "cosines"):
            out[name] = np.asarray(getattr(self, name), dtype=np.float64)
        for name in ("hf_all", "mt_all", "hp_all", "mb_top"):
            value = getattr(self, name)
            if value is not None:
                out[name] = np.asarray(value, dtype=np.float64)
        scalars = {
            "trace_hf": self.trace_hf,
            "trace_mt": self.trace_mt,
            "trace_hp": self.trace_hp,
            "trace_hf_stderr": self.trace_hf_stderr,
            "trace_mt_stderr": self.trace_mt_stderr,
            "trace_hp_stderr": self.trace_hp_stderr,
            "grad_norm": self.grad_norm,
            "loss": self.loss,
            "accuracy": self.accuracy,
            "n_samples": self.n_samples,
            "n_params": self.n_params,
            "k": self.k,
            "dense": float(self.method == "dense"),
            "seconds": self.seconds,
        }
        if self.batch_size is not None:
            scalars["batch_size"] = self.batch_size
            scalars["trace_mb"] = self.trace_mb
        scalars.update(self.diagnostics)
        for name, value in scalars.items():
            out[name] = np.asarray(value, dtype=np.float64)
        if self.densities is not None:
            out.update(self.densities.to_arrays())
        return out


def _check_warm_start(warm_start: object, n_params: int) -> dict[str, Tensor]:
    """Starting blocks {hf, mt, hp, mt_gram} from a previous snapshot (Spectra or an object/dict
    with hf_vecs, mt_vecs and optionally hp_top_vecs, hp_bottom_vecs, mt_sample_vecs)."""
    if warm_start is None:
        return {}
    get = warm_start.get if isinstance(warm_start, dict) else lambda n: getattr(warm_start, n, None)
    blocks: dict[str, Tensor] = {}
    for key, names in (
        ("hf", ("hf_vecs",)),
        ("mt", ("mt_vecs",)),
        ("hp", ("hp_top_vecs", "hp_bottom_vecs")),
    ):
        parts = [get(name) for name in names]
        parts = [torch.as_tensor(p) for p in parts if p is not None]
        if not parts:
            continue
        for p in parts:
            if p.ndim != 2 or p.shape[0] != n_params:
                raise ValueError(
                    f"warm_start vectors must have shape (P, j) with P = {n_params}, got "
                    f"{tuple(p.shape)}: the previous snapshot was taken on another model"
                )
        blocks[key] = torch.cat(parts, dim=1)
    sample_vecs = get("mt_sample_vecs")
    if sample_vecs is not None:  # (n, j) on the Gram side: used when n matches
        blocks["mt_gram"] = torch.as_tensor(sample_vecs)
    if not isinstance(warm_start, dict) and not any(
        hasattr(warm_start, name) for name in ("hf_vecs", "mt_vecs")
    ):
        raise ValueError("warm_start must be a previous Spectra (or have hf_vecs / mt_vecs)")
    return blocks


class RouteWarning(RuntimeWarning):
    """The fast route for M disagreed with the general jvp/vjp product: the general one is used."""


# relative difference between the fast and the general M product above which the fast route is
# abandoned (float64: rounding is ~1e-14; float32: ~1e-6)
SELF_CHECK_TOLERANCE = {torch.float64: 1e-6, torch.float32: 1e-3}


def fast_route_discrepancy(ops: CurvatureOperators, seed: int) -> float:
    """||M_fast v - M_general v|| / ||M_general v|| for one Gaussian probe v: M through the
    per-sample gradient factors (ops.gradients) against M through jvp/vjp products."""
    generator = torch.Generator(device=ops.theta.device)
    generator.manual_seed(seed + 104729)
    probe = torch.randn(
        ops.n_params, 1, generator=generator, dtype=ops.theta.dtype, device=ops.theta.device
    )
    fast = ops.m(probe)
    saved, ops.gradients = ops.gradients, None
    try:
        general = ops.m(probe)
    finally:
        ops.gradients = saved
    norm = float(torch.maximum(general.norm(), fast.norm()))
    return float((fast - general).norm()) / norm if norm > 0 else 0.0


def defined_cosines(
    hf_top: Tensor, mt_top: Tensor, hf_vecs: Tensor, mt_vecs: Tensor, rel_zero: float
) -> np.ndarray:
    """Principal-angle cosines (k,) between the top eigenspaces of H_f and M, NaN where undefined.

    M's eigenvectors beyond its numerical rank r (eigenvalues <= rel_zero · λ_1(M)) and H_f's
    eigenvectors of non-positive eigenvalues (<= rel_zero · max|λ(H_f)|) are arbitrary vectors of
    a degenerate or non-top eigenspace, so the cosines are those between span(hf_vecs[:, :a]) and
    span(mt_vecs[:, :r]), a = the number of positive H_f eigenvalues among the k: min(a, r)
    values, then NaN up to k.
    """
    k = hf_vecs.shape[1]
    out = np.full(k, np.nan)
    mt_max = float(mt_top.max()) if mt_top.numel() else 0.0
    rank = int((mt_top > rel_zero * mt_max).sum()) if mt_max > 0 else 0
    hf_scale = float(hf_top.abs().max()) if hf_top.numel() else 0.0
    positive = int((hf_top > rel_zero * hf_scale).sum()) if hf_scale > 0 else 0
    if rank and positive:
        cos = principal_angles(hf_vecs[:, :positive], mt_vecs[:, :rank])
        out[: len(cos)] = cos
    return out


def _solver_info(prefix: str, result: EigResult) -> dict[str, float]:
    return {
        f"{prefix}_matvecs": float(result.matvecs),
        f"{prefix}_iterations": float(result.iterations),
        f"{prefix}_restarts": float(result.restarts),
        f"{prefix}_max_residual": result.max_residual,
        f"{prefix}_converged": float(result.converged),
        f"{prefix}_check_matvecs": float(result.check_matvecs),
        f"{prefix}_check_rounds": float(result.check_rounds),
    }


def _hutchinson(ops: CurvatureOperators, probes: int, seed: int, with_m: bool) -> dict[str, float]:
    """Hutchinson estimates with standard errors: trace_hf (and, if with_m, trace_mt), and
    trace_hp_samples_stderr, the standard error of tr(H_p) from the same probes (per-probe
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


@dataclass
class _Parts:
    """What one method measured, as tensors on the computation device, before the shared steps
    (densities, principal angles, norms) complete it into a `Spectra` (`_to_spectra`).

    Field names and shapes as in `Spectra`; in addition gram (n, n), K = G Gᵀ / n when the
    snapshot formed it (M's exact density reuses it), and factors, M's per-sample gradient
    factors in the iterative method (None: M through jvp/vjp products).
    """

    m_route: str
    hf_top: Tensor
    hf_vecs: Tensor
    mt_top: Tensor
    mt_vecs: Tensor
    hp_top: Tensor
    hp_bottom: Tensor
    trace_hf: float
    trace_mt: float
    trace_hp: float
    trace_hf_stderr: float = 0.0
    trace_mt_stderr: float = 0.0
    trace_hp_stderr: float = 0.0
    hf_all: Tensor | None = None
    mt_all: Tensor | None = None
    hp_all: Tensor | None = None
    mb_top: Tensor | None = None
    hp_top_vecs: Tensor | None = None
    hp_bottom_vecs: Tensor | None = None
    mt_sample_vecs: Tensor | None = None
    gram: Tensor | None = None
    factors: GradientFactors | None = None
    densities: SpectralDensities | None = None
    diagnostics: dict[str, float] = field(default_factory=dict)


class _Laps:
    """Seconds of the parts of an iterative snapshot: lap(name) stores `name_seconds`, the time
    since the previous lap (or since the start), in `diagnostics`."""

    def __init__(self, diagnostics: dict[str, float]) -> None:
        self.diagnostics = diagnostics
        self.clock = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.diagnostics[f"{name}_seconds"] = now - self.clock
        self.clock = now


def _eigsh(
    ops: CurvatureOperators,
    name: str,
    matmat: Callable[[Tensor], Tensor],
    which: str,
    x0: Tensor | None,
    k: int,
    options: SpectraOptions,
) -> EigResult:
    """`block_eigsh` on a P×P operator of the snapshot with the snapshot's solver settings; each
    operator draws its random start from its own seed (H_f: seed, M: +1, H_p: +2, M_b: +3)."""
    offset = {"H_f": 0, "M": 1, "H_p": 2, "M_b": 3}[name]
    return block_eigsh(
        matmat,
        ops.n_params,
        k,
        which,
        x0=x0,
        dtype=ops.theta.dtype,
        device=ops.theta.device,
        seed=options.seed + offset,
        name=name,
        **options.solver_settings(),
    )


def _minibatch_top_from_gram(
    gram: Tensor, c: float, options: SpectraOptions
) -> tuple[Tensor, dict[str, float]]:
    """(k,) largest eigenvalues of M_b = c M + (1 - c) μμᵀ, descending, from the Gram side
    W^½ K W^½ (`gram` = K, formed by the snapshot), and the solver figures."""
    matrix, settings = minibatch_gram(gram, c), options.gram_solver_settings()
    values, info = top_eigenvalues(matrix, options.k, name="M_b (Gram)", **settings)
    return values, {f"mb_{key}": value for key, value in info.items()}


def _minibatch_top_from_moment(
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


def _dense_snapshot(
    ops: CurvatureOperators, k: int, batch_size: int | None, options: SpectraOptions
) -> _Parts:
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
    parts = _Parts(
        "dense", hf_top, hf_vecs, mt_top, mt_vecs, hp_all[-k:].flip(0), hp_all[:k], *traces
    )
    parts.hf_all, parts.mt_all, parts.hp_all, parts.gram = hf_all, mt_all, hp_all, gram
    if batch_size is not None:
        # the dense method keeps no solver figures (as before the typed snapshot): a Lanczos
        # solve on K's M_b side (n > DENSE_GRAM_MAX) still warns when it does not converge
        c = minibatch_coefficient(ops.n_samples, batch_size)
        if gram is not None:
            parts.mb_top, _ = _minibatch_top_from_gram(gram, c, options)
        else:
            parts.mb_top = _minibatch_top_from_moment(ops, moment, c, options)
    return parts


def _m_factors(
    ops: CurvatureOperators, options: SpectraOptions
) -> tuple[GradientFactors | None, dict[str, float]]:
    """M's per-sample gradient factors for the iterative method (None: jvp/vjp products), after
    the self-check against the jvp/vjp product, and their diagnostics. Under DDP: the factors
    of this rank's shard (M products summed over the ranks)."""
    clock = time.perf_counter()
    factors = gradient_factors(
        ops.fm, ops.inputs, ops.targets, ops.chunk_size, options.memory_budget, options.m_route
    )
    info = {"factors_seconds": time.perf_counter() - clock}
    ops.gradients = factors
    if factors is not None and options.self_check:
        clock = time.perf_counter()
        discrepancy = fast_route_discrepancy(ops, options.seed)
        info.update(m_self_check=discrepancy, m_self_check_seconds=time.perf_counter() - clock)
        tolerance = SELF_CHECK_TOLERANCE[options.dtype]
        if not discrepancy <= tolerance:
            warnings.warn(
                f"M: the per-sample gradient factors disagree with jvp/vjp products "
                f"(relative difference {discrepancy:.2e} > {tolerance:.0e}): M through jvp/vjp "
                "products",
                RouteWarning,
                stacklevel=5,  # compute_spectra's caller
            )
            factors = ops.gradients = None
    return factors, info


def _m_route(factors: GradientFactors | None) -> str:
    """ "operator" (jvp/vjp), "dense" (per-sample gradient matrix) or "linear" (layer factors)."""
    route = "operator" if factors is None else "dense"
    if factors is not None and not isinstance(factors, DenseGradients):
        route = "linear"
    logger.debug(
        "M through %s",
        {
            "operator": "jvp/vjp products",
            "dense": "the per-sample gradient matrix and its Gram",
            "linear": "layer-wise factors and the Gram matrix",
        }[route],
    )
    return route


def _iterative_top_of_m(
    ops: CurvatureOperators, k: int, start: dict[str, Tensor], options: SpectraOptions
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, dict[str, float]]:
    """(top-k of M, their eigenvectors (P, k), K's eigenvectors (n, k') or None, K or None,
    solver figures): through the n×n Gram matrix K when M has factors and all the samples are
    on this process, else by Lanczos on M products."""
    factors = ops.gradients
    if factors is None or ops.distributed is not None:  # DDP: factors of a shard, no Gram
        mt = _eigsh(ops, "M", ops.m, "largest", start.get("mt"), k, options)
        return mt.eigenvalues, mt.eigenvectors, None, None, _solver_info("mt", mt)
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


def _hp_extremes(
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
    if options.hp_method == "none":
        return None, {}
    if options.hp_method == "solve":
        hp = _eigsh(ops, "H_p", ops.hp, "both", x0, k, options)
        return hp, _solver_info("hp", hp)
    hp = _hp_ritz(ops, hf, mt_vecs, k)
    info = _solver_info("hp", hp)
    info.update(hp_matvecs=float(mt_vecs.shape[1]), hp_ritz=1.0)
    return hp, info


def _hp_fields(hp: EigResult | None, k: int) -> dict[str, Tensor | None]:
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


def _trace_fields(ops: CurvatureOperators, traces: dict[str, float]) -> dict[str, float]:
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


def _iterative_snapshot(
    ops: CurvatureOperators,
    k: int,
    batch_size: int | None,
    warm: dict[str, Tensor],
    options: SpectraOptions,
) -> _Parts:
    """Matrix-free: top-k of H_f and M, H_p's extremes, traces (and M_b), each part timed."""
    factors, factor_info = _m_factors(ops, options)
    m_route = _m_route(factors)
    start = {key: block.to(ops.theta) for key, block in warm.items()}
    diagnostics: dict[str, float] = {}
    laps = _Laps(diagnostics)
    keep_graphs = keeps_gradient_graphs(ops.n_samples, ops.chunk_size)
    # the chunks' gradient graphs are kept through every H_f product of the snapshot (H_f solve,
    # H_p solve or Ritz step, traces): ~1.2 instead of 2 gradient passes per product
    with ops.kept_gradient_graphs() if keep_graphs else contextlib.nullcontext():
        hf = _eigsh(ops, "H_f", ops.hf, "largest", start.get("hf"), k, options)
        diagnostics.update(_solver_info("hf", hf))
        laps.lap("hf")
        mt_top, mt_vecs, sample_vecs, gram, info = _iterative_top_of_m(ops, k, start, options)
        diagnostics.update(info)
        laps.lap("mt")
        hp, info = _hp_extremes(ops, hf, mt_vecs, start.get("hp"), k, options)
        diagnostics.update(info)
        if hp is not None:
            laps.lap("hp")
        traces = _hutchinson(ops, options.trace_probes, options.seed, with_m=factors is None)
    traces = _trace_fields(ops, traces)
    laps.lap("trace")
    hp_fields = _hp_fields(hp, k)
    parts = _Parts(m_route, hf.eigenvalues, hf.eigenvectors, mt_top, mt_vecs, **hp_fields, **traces)
    parts.mt_sample_vecs, parts.gram, parts.factors = sample_vecs, gram, factors
    parts.diagnostics = diagnostics
    if batch_size is not None:
        if gram is not None:  # K was formed: M_b from its Gram side
            c = minibatch_coefficient(ops.n_samples, batch_size)
            parts.mb_top, info = _minibatch_top_from_gram(gram, c, options)
        else:  # Lanczos on M_b products, started from M's top vectors
            mb = _eigsh(ops, "M_b", lambda v: ops.mb(v, batch_size), "largest", mt_vecs, k, options)
            parts.mb_top, info = mb.eigenvalues, _solver_info("mb", mb)
        diagnostics.update(info)
        laps.lap("mb")
    diagnostics.update(factor_info)
    return parts


def _iterative_densities(
    ops: CurvatureOperators, parts: _Parts, options: SpectraOptions
) -> SpectralDensities:
    """Densities of H_f and H_p by SLQ with the snapshot's solves merged in as outliers (top-k of
    H_f; top- and bottom-k of H_p when they come from a converged solve), M's exact spectrum
    from the Gram matrix of the per-sample gradients (the snapshot's own, else from the factors,
    else from per-sample gradients chunk by chunk; under DDP assembled across the processes)."""
    gram = parts.gram  # the snapshot's own K
    if gram is None:  # under DDP assembled across the processes from their shards
        gram = snapshot_gram(ops, parts.factors)
    gram_values = gram_eigenvalues(gram, options.dense_threads)
    hp_outliers = None
    if options.hp_method == "solve" and parts.hp_top_vecs is not None:
        assert parts.hp_bottom_vecs is not None
        hp_outliers = Outliers(
            torch.cat([parts.hp_top, parts.hp_bottom]).detach(),
            torch.cat([parts.hp_top_vecs, parts.hp_bottom_vecs], dim=1),
        )
    keep_graphs = keeps_gradient_graphs(ops.n_samples, ops.chunk_size)
    with ops.kept_gradient_graphs() if keep_graphs else contextlib.nullcontext():
        return slq_densities(
            ops.hf,
            ops.n_params,
            m=ops.m,
            gram_values=gram_values,
            hf_outliers=Outliers(parts.hf_top.detach(), parts.hf_vecs),
            hp_outliers=hp_outliers,
            settings=options.density_settings,
            dtype=ops.theta.dtype,
            device=ops.theta.device,
        )


def _snapshot_densities(
    ops: CurvatureOperators, parts: _Parts, options: SpectraOptions
) -> SpectralDensities:
    """The snapshot's densities: exact from all eigenvalues (dense method), else by SLQ;
    `density_seconds` (and the SLQ's block products) go to parts.diagnostics."""
    clock = time.perf_counter()
    if parts.hf_all is not None and parts.mt_all is not None and parts.hp_all is not None:
        densities = exact_densities(
            _numpy(parts.hf_all),
            _numpy(parts.mt_all),
            _numpy(parts.hp_all),
            options.density_settings,
        )
    else:
        densities = _iterative_densities(ops, parts, options)
        parts.diagnostics.update(
            density_hf_products=float(densities.hf_products),
            density_mt_products=float(densities.mt_products),
        )
    parts.diagnostics["density_seconds"] = time.perf_counter() - clock
    logger.debug(
        "densities in %.2f s: W1(H_p, -H_f) / spread = %.4g",
        parts.diagnostics["density_seconds"],
        densities.hp_to_minus_hf,
    )
    return densities


# the fields a `_Parts` hands to its `Spectra` as they are, as float64 numpy arrays (those that
# may be None too), and as CPU tensors
_TRACE_FIELDS = tuple(f"trace_{m}{e}" for m in ("hf", "mt", "hp") for e in ("", "_stderr"))
_TOP_FIELDS = ("hf_top", "mt_top", "hp_top", "hp_bottom")
_ALL_FIELDS = ("hf_all", "mt_all", "hp_all", "mb_top")
_VECTOR_FIELDS = ("hf_vecs", "mt_vecs", "hp_top_vecs", "hp_bottom_vecs", "mt_sample_vecs")


def _cpu(x: Tensor | None) -> Tensor | None:
    return None if x is None else x.detach().cpu()


def _numpy_or_none(x: Tensor | None) -> np.ndarray | None:
    return None if x is None else _numpy(x)


def _to_spectra(
    parts: _Parts,
    ops: CurvatureOperators,
    k: int,
    method: str,
    options: SpectraOptions,
    measured: tuple[float, float, Tensor],
    batch_size: int | None,
) -> Spectra:
    """The `Spectra` of a snapshot: `parts` with the principal angles, ||μ|| and tr(M_b) added;
    measured = (loss, accuracy, μ)."""
    loss, accuracy, mu = measured
    n, p = ops.n_samples, ops.n_params
    grad_norm = float(mu.norm())
    trace_mb = None
    if batch_size is not None:
        c = minibatch_coefficient(n, batch_size)
        trace_mb = c * parts.trace_mt + (1.0 - c) * grad_norm**2
    vectors = {name: _cpu(getattr(parts, name)) for name in _VECTOR_FIELDS}
    rel_zero = 10.0 * min(n, p) * torch.finfo(options.dtype).eps
    if method != "dense":
        rel_zero = max(rel_zero, options.solver_tolerance)
    cosines = defined_cosines(
        parts.hf_top, parts.mt_top, vectors["hf_vecs"], vectors["mt_vecs"], rel_zero
    )
    parts.diagnostics["cosines_defined"] = float(np.isfinite(cosines).sum())
    arrays = {name: _numpy(getattr(parts, name)) for name in _TOP_FIELDS}
    arrays.update({name: _numpy_or_none(getattr(parts, name)) for name in _ALL_FIELDS})
    traces = {name: getattr(parts, name) for name in _TRACE_FIELDS}
    identity = dict(k=k, method=method, m_route=parts.m_route, dtype=options.dtype_name)
    sizes = dict(n_samples=n, n_params=p, batch_size=batch_size)
    scalars = dict(grad_norm=grad_norm, loss=loss, accuracy=accuracy, trace_mb=trace_mb)
    return Spectra(
        cosines=cosines,
        densities=parts.densities,
        diagnostics=parts.diagnostics,
        **identity,
        **sizes,
        **scalars,
        **arrays,
        **vectors,
        **traces,
    )


def _measure(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    options: SpectraOptions,
    batch_size: int | None,
    warm_start: Spectra | dict | None,
    distributed: Reduction | None,
    params: Iterable[Tensor] | Iterable[str] | None,
) -> Spectra:
    """`compute_spectra` with its settings checked: one snapshot, timed in `Spectra.seconds`."""
    started = time.perf_counter()
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    with evaluation_mode(model), torch.inference_mode(False), torch.enable_grad():
        fm = FunctionalModel(model, options.dtype, params)
        k = check_k(options.k, fm.n_params)
        x, y = prepare_data(fm, inputs, targets)
        batch_size = check_batch_size(batch_size, x.shape[0])
        warm = _check_warm_start(warm_start, fm.n_params)
        method = options.method_for(fm.n_params)
        distributed = check_reduction(distributed)
        ops = CurvatureOperators(fm, x, y, chunk_size=options.chunk_size, distributed=distributed)
        measured = ops.loss_gradient()
        logger.debug(
            "curvature snapshot: %s method, P = %d, n = %d, k = %d, %s on %s",
            method,
            fm.n_params,
            ops.n_samples,
            k,
            options.dtype_name,
            fm.device,
        )
        if method == "dense":
            with limit_threads(options.dense_threads):  # small problems: oversubscription costs
                parts = _dense_snapshot(ops, k, batch_size, options)
        else:
            parts = _iterative_snapshot(ops, k, batch_size, warm, options)
        if options.density_settings is not None:
            parts.densities = _snapshot_densities(ops, parts, options)
    spectra = _to_spectra(parts, ops, k, method, options, measured, batch_size)
    spectra.seconds = time.perf_counter() - started
    logger.debug(
        "curvature snapshot done in %.2f s: hf_top[0] = %.4g, mt_top[0] = %.4g, cos[0] = %.3f %s",
        spectra.seconds,
        spectra.hf_top[0],
        spectra.mt_top[0],
        spectra.cosines[0],
        " ".join(f"{key}={value:.3g}" for key, value in spectra.diagnostics.items()),
    )
    return spectra


def compute_spectra(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    k: int = 15,
    method: str = "auto",
    dtype: torch.dtype = torch.float64,
    batch_size: int | None = None,
    chunk_size: int | None = None,
    warm_start: Spectra | dict | None = None,
    *,
    tol: float | None = None,
    max_matvecs: int | None = None,
    block_size: int | None = None,
    m_route: str = "auto",
    memory_budget: int = 1 << 30,
    dense_max_params: int = DENSE_MAX_PARAMS,
    dense_threads: int | None = 1,
    trace_probes: int = 16,
    seed: int = 0,
    on_nonconvergence: str = "warn",
    distributed: Reduction | None = None,
    hp_method: str = "solve",
    params: Iterable[Tensor] | Iterable[str] | None = None,
    self_check: bool = True,
    check_steps: int | None = None,
    density: bool | DensitySettings | None = None,
    options: SpectraOptions | None = None,
) -> Spectra:
    """Spectra of H_f, M, H_p (and M_b) of the mean cross-entropy at the model's parameters.

    Args:
        model: any nn.Module classifier, model(inputs) -> (n, C) logits; evaluated in eval mode
            on a detached copy of its parameters (left untouched), on its own device.
        inputs: (n, ...) samples; targets: (n,) integer labels in [0, C).
        batch_size: b, to also return the k largest eigenvalues of M_b (mb_top) and tr(M_b).
        warm_start: a previous snapshot (same model shape): its eigenvectors start the
            iterative solvers (H_f, H_p, and M: its P-side vectors when M goes through
            operator products, its Gram-side `mt_sample_vecs` when it goes through K).
        distributed: a `distributed.Reduction` when DDP ranks share the snapshot: every rank
            passes the same samples, applies the operators to its shard, the sums are
            all-reduced and every rank gets the same result. M goes through P×P sums (dense)
            or a Lanczos solve on its products (iterative), not through the n×n Gram matrix.
        params: the parameters θ spans (the model's own tensors or their names); default: the
            trainable ones (requires_grad=True). The others are held fixed.
        k, method, dtype, chunk_size, tol, ..., density: the settings, documented and checked
            by `SpectraOptions`; or all at once as `options=` (these left at their defaults).

    Raises ValueError for C < 2 classes, non-finite inputs or parameters, inputs that are not one
    tensor (dicts, tuples: wrap the model), parametrised weights, and bad arguments.
    """
    settings = SpectraOptions(
        k=k,
        method=method,
        dtype=dtype,
        chunk_size=chunk_size,
        tol=tol,
        max_matvecs=max_matvecs,
        block_size=block_size,
        m_route=m_route,
        memory_budget=memory_budget,
        dense_max_params=dense_max_params,
        dense_threads=dense_threads,
        trace_probes=trace_probes,
        seed=seed,
        on_nonconvergence=on_nonconvergence,
        hp_method=hp_method,
        self_check=self_check,
        check_steps=check_steps,
        density=density,
    )
    if options is not None:
        if settings != SpectraOptions():
            raise ValueError(
                "compute_spectra takes its settings either as options= or as keyword "
                "arguments, not both: put them all in the SpectraOptions"
            )
        settings = options
    return _measure(model, inputs, targets, settings, batch_size, warm_start, distributed, params)
