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
  are kept (at most KEEP_GRAPHS_MAX_CHUNKS chunks), so a product costs about 1.2-1.4 gradient
  passes instead of 2.
"auto" picks "dense" when P <= dense_max_params.

Timings of the parts and solver figures are in `Spectra.diagnostics`; progress goes to the logger
"sgd_dynamics.curvature" (INFO: method and route, DEBUG: solver iterations).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Iterable
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
from .eigensolvers import EigResult, block_eigsh, default_tolerance
from .functional import FunctionalModel, evaluation_mode
from .gram import minibatch_gram, second_moment_from_gram, top_eigenvalues
from .gram_spectrum import gram_eigenvalues, snapshot_gram
from .inputs import check_batch_size, check_dtype, check_k, check_positive_int, prepare_data
from .operators import CurvatureOperators, minibatch_coefficient
from .per_sample import DenseGradients, GradientFactors, gradient_factors, per_sample_gradients
from .ritz import rayleigh_ritz

__all__ = ["Spectra", "compute_spectra"]

logger = logging.getLogger("sgd_dynamics.curvature")

_METHODS = ("auto", "dense", "iterative")
_HP_METHODS = ("solve", "ritz", "none")
KEEP_GRAPHS_MAX_CHUNKS = 4  # snapshots keep the gradient graphs of at most this many chunks


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
    diagnostics: solver figures (matvecs, iterations, max relative residuals, converged flags).
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
    return rayleigh_ritz(basis, ops.m(basis) - hf_images, k)  # >= k directions: hf's are


def _dense_snapshot(
    ops: CurvatureOperators,
    k: int,
    batch_size: int | None,
    memory_budget: int,
    dense_threads: int | None,
    seed: int,
) -> dict:
    fm, n, p = ops.fm, ops.n_samples, ops.n_params
    itemsize = ops.theta.element_size()
    hessian = hessian_matrix(ops)
    gram = None
    # Under DDP each rank holds a shard of the samples, so the n×n Gram matrix is not local:
    # M is summed as a P×P matrix instead (one all_reduce of P² numbers).
    if n < p and n * p * itemsize <= memory_budget and ops.distributed is None:
        factors = DenseGradients(per_sample_gradients(fm, ops.inputs, ops.targets, ops.chunk_size))
        moment = factors.matrix.T @ factors.matrix / n
        gram = factors.gram().div_(n)
    else:
        factors = None
        moment = second_moment_matrix(fm, ops.inputs, ops.targets, ops.chunk_size, ops.distributed)
    residual = moment - hessian
    hf_all, hf_top, hf_vecs = eigenvalues_and_top_vectors(hessian, k, dense_threads)
    hp_all = eigenvalues(residual, dense_threads)
    if factors is not None:
        spectrum = second_moment_from_gram(
            factors, k, all_values=True, dense_threads=dense_threads, gram=gram, seed=seed
        )
        assert spectrum.gram_values is not None
        zeros = torch.zeros(p - n, dtype=spectrum.gram_values.dtype)
        mt_all = torch.sort(torch.cat([zeros, spectrum.gram_values.cpu()])).values
        mt_top, mt_vecs = spectrum.top, spectrum.vectors
    else:
        mt_all, mt_top, mt_vecs = eigenvalues_and_top_vectors(moment, k, dense_threads)
    out = dict(
        hf_all=hf_all,
        hf_top=hf_top,
        hf_vecs=hf_vecs,
        mt_all=mt_all,
        mt_top=mt_top,
        mt_vecs=mt_vecs,
        hp_all=hp_all,
        hp_top=hp_all[-k:].flip(0),
        hp_bottom=hp_all[:k],
        trace_hf=float(torch.trace(hessian)),
        trace_mt=float(torch.trace(moment)),
        trace_hp=float(torch.trace(residual)),
        trace_hf_stderr=0.0,
        trace_mt_stderr=0.0,
        trace_hp_stderr=0.0,
        diagnostics={},
    )
    if batch_size is not None:
        c = minibatch_coefficient(n, batch_size)
        if gram is not None:
            out["mb_top"], _ = top_eigenvalues(
                minibatch_gram(gram, c), k, dense_threads=dense_threads
            )
        else:
            mu = ops.mean_gradient
            mb = c * moment + (1.0 - c) * torch.outer(mu, mu)
            out["mb_top"] = eigenvalues(mb, dense_threads)[-k:].flip(0)
    return out


def _iterative_snapshot(
    ops: CurvatureOperators,
    k: int,
    batch_size: int | None,
    factors: GradientFactors | None,
    warm: dict[str, Tensor],
    solver: dict,
    trace_probes: int,
    seed: int,
    hp_method: str = "solve",
) -> dict:
    n, p = ops.n_samples, ops.n_params
    device, dtype = ops.theta.device, ops.theta.dtype
    start = {key: block.to(device=device, dtype=dtype) for key, block in warm.items()}
    diagnostics: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        diagnostics[f"{name}_seconds"] = now - clock
        clock = now

    def solve(name: str, matmat, which: str, x0: Tensor | None, offset: int) -> EigResult:
        result = block_eigsh(
            matmat,
            p,
            k,
            which,
            x0=x0,
            dtype=dtype,
            device=device,
            seed=seed + offset,
            name=name,
            **solver,
        )
        prefix = {"H_f": "hf", "M": "mt", "H_p": "hp", "M_b": "mb"}[name]
        diagnostics.update(_solver_info(prefix, result))
        lap(prefix)
        return result

    # keep the chunks' gradient graphs through every H_f product of the snapshot (H_f solve, H_p
    # solve or Ritz step, traces: ~1.2 instead of 2 gradient passes per product) when the data are
    # a few chunks, so the graphs' memory stays that of a few passes
    keep_graphs = math.ceil(ops.n_samples / ops.chunk_size) <= KEEP_GRAPHS_MAX_CHUNKS
    with ops.kept_gradient_graphs() if keep_graphs else contextlib.nullcontext():
        hf = solve("H_f", ops.hf, "largest", start.get("hf"), 0)
        gram = None
        if factors is not None and ops.distributed is None:  # DDP: factors of a shard, no Gram
            gram = factors.gram().div_(n)
            spectrum = second_moment_from_gram(
                factors,
                k,
                gram=gram,
                tol=solver["tol"],
                seed=seed,
                on_failure=solver["on_failure"],
                check_steps=solver["check_steps"],
                x0=start.get("mt_gram"),
            )
            mt_top, mt_vecs = spectrum.top, spectrum.vectors
            mt_sample_vecs = spectrum.sample_vectors
            diagnostics.update(spectrum.info)
            lap("mt")
        else:
            mt = solve("M", ops.m, "largest", start.get("mt"), 1)
            mt_top, mt_vecs = mt.eigenvalues, mt.eigenvectors
            mt_sample_vecs = None
        hp: EigResult | None = None
        if hp_method == "ritz":
            hp = _hp_ritz(ops, hf, mt_vecs, k)
            diagnostics.update(_solver_info("hp", hp))
            diagnostics["hp_matvecs"] = float(mt_vecs.shape[1])  # H_f products (M ones not counted)
            diagnostics["hp_ritz"] = 1.0
            lap("hp")
        elif hp_method == "solve":
            hp = solve("H_p", ops.hp, "both", start.get("hp"), 2)
        traces = _hutchinson(ops, trace_probes, seed, with_m=factors is None)

    if factors is not None:
        (trace_mt,) = sum_scalars(ops.distributed, float(factors.sq_norms().sum()), like=ops.theta)
        traces.update(trace_mt=trace_mt / n, trace_mt_stderr=0.0)
    lap("trace")
    out = dict(
        hf_top=hf.eigenvalues,
        hf_vecs=hf.eigenvectors,
        mt_top=mt_top,
        mt_vecs=mt_vecs,
        hp_top=hp.eigenvalues[:k] if hp is not None else torch.full((k,), math.nan),
        hp_bottom=hp.eigenvalues[k:] if hp is not None else torch.full((k,), math.nan),
        trace_hf=traces["trace_hf"],
        trace_mt=traces.get("trace_mt", math.nan),
        trace_hp=traces.get("trace_mt", math.nan) - traces["trace_hf"],
        trace_hf_stderr=traces["trace_hf_stderr"],
        trace_mt_stderr=traces.get("trace_mt_stderr", math.nan),
        trace_hp_stderr=traces["trace_hp_stderr"],
        diagnostics=diagnostics,
    )
    if hp is not None:
        out["hp_top_vecs"], out["hp_bottom_vecs"] = hp.eigenvectors[:, :k], hp.eigenvectors[:, k:]
    if mt_sample_vecs is not None:
        out["mt_sample_vecs"] = mt_sample_vecs
    if batch_size is not None:
        c = minibatch_coefficient(n, batch_size)
        if gram is not None:
            out["mb_top"], info = top_eigenvalues(
                minibatch_gram(gram, c),
                k,
                tol=solver["tol"],
                seed=seed,
                on_failure=solver["on_failure"],
                check_steps=solver["check_steps"],
                name="M_b (Gram)",
            )
            diagnostics.update({f"mb_{key}": value for key, value in info.items()})
            lap("mb")
        else:
            out["mb_top"] = solve(
                "M_b", lambda v: ops.mb(v, batch_size), "largest", mt_vecs, 3
            ).eigenvalues
    if gram is not None:
        out["gram"] = gram  # K = G Gᵀ / n, for M's exact density
    return out


def _density_settings(density: bool | DensitySettings | None, seed: int) -> DensitySettings | None:
    """`compute_spectra`'s `density=` argument: None/False off, True the defaults (probes drawn
    from `seed`), or a DensitySettings as given."""
    if density is None or density is False:
        return None
    if density is True:
        return DensitySettings(seed=seed)
    if isinstance(density, DensitySettings):
        return density
    raise ValueError(
        f"density must be None, a bool or a DensitySettings, got {type(density).__name__}"
    )


def _iterative_densities(
    ops: CurvatureOperators,
    out: dict,
    factors: GradientFactors | None,
    settings: DensitySettings,
    hp_method: str,
    dense_threads: int | None,
) -> SpectralDensities:
    """Densities of H_f and H_p by SLQ with the snapshot's solves merged in as outliers (top-k of
    H_f; top- and bottom-k of H_p when they come from a converged solve), M's exact spectrum
    from the Gram matrix of the per-sample gradients (the snapshot's own, else from the factors,
    else from per-sample gradients chunk by chunk; under DDP assembled across the processes)."""
    gram = out.get("gram")  # the snapshot's own K
    if gram is None:  # under DDP assembled across the processes from their shards
        gram = snapshot_gram(ops, factors)
    gram_values = gram_eigenvalues(gram, dense_threads)
    hp_outliers = None
    if hp_method == "solve" and "hp_top_vecs" in out:
        hp_outliers = Outliers(
            torch.cat([out["hp_top"], out["hp_bottom"]]).detach(),
            torch.cat([out["hp_top_vecs"], out["hp_bottom_vecs"]], dim=1),
        )
    keep_graphs = math.ceil(ops.n_samples / ops.chunk_size) <= KEEP_GRAPHS_MAX_CHUNKS
    with ops.kept_gradient_graphs() if keep_graphs else contextlib.nullcontext():
        return slq_densities(
            ops.hf,
            ops.n_params,
            m=ops.m,
            gram_values=gram_values,
            hf_outliers=Outliers(out["hf_top"].detach(), out["hf_vecs"]),
            hp_outliers=hp_outliers,
            settings=settings,
            dtype=ops.theta.dtype,
            device=ops.theta.device,
        )


def _snapshot_densities(
    ops: CurvatureOperators,
    out: dict,
    factors: GradientFactors | None,
    settings: DensitySettings,
    hp_method: str,
    dense_threads: int | None,
) -> SpectralDensities:
    """The snapshot's densities: exact from all eigenvalues (dense method), else by SLQ;
    `density_seconds` (and the SLQ's block products) go to out["diagnostics"]."""
    clock = time.perf_counter()
    if "hf_all" in out:
        densities = exact_densities(
            _numpy(out["hf_all"]), _numpy(out["mt_all"]), _numpy(out["hp_all"]), settings
        )
    else:
        densities = _iterative_densities(ops, out, factors, settings, hp_method, dense_threads)
        out["diagnostics"].update(
            density_hf_products=float(densities.hf_products),
            density_mt_products=float(densities.mt_products),
        )
    out["diagnostics"]["density_seconds"] = time.perf_counter() - clock
    logger.debug(
        "densities in %.2f s: W1(H_p, -H_f) / spread = %.4g",
        out["diagnostics"]["density_seconds"],
        densities.hp_to_minus_hf,
    )
    return densities


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
    dense_max_params: int = 3000,
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
) -> Spectra:
    """Spectra of H_f, M, H_p (and M_b) of the mean cross-entropy at the model's parameters.

    Args:
        model: any nn.Module classifier, model(inputs) -> (n, C) logits; evaluated in eval mode
            on a detached copy of its parameters (left untouched), on its own device.
        inputs: (n, ...) samples; targets: (n,) integer labels in [0, C).
        k: eigenpairs per operator (1 <= k <= P).
        method: "dense", "iterative", or "auto" (dense when P <= dense_max_params).
        dtype: torch.float64 (default) or torch.float32 for all computations.
        batch_size: b, to also return the k largest eigenvalues of M_b (mb_top) and tr(M_b).
        chunk_size: samples per forward/backward pass (default: up to 2048).
        warm_start: a previous snapshot (same model shape): its eigenvectors start the
            iterative solvers (H_f, H_p, and M: its P-side vectors when M goes through
            operator products, its Gram-side `mt_sample_vecs` when it goes through K).
        tol: relative residual tolerance of the iterative solvers (default 1e-8 in float64,
            1e-4 in float32): ||A x - θ x|| <= tol · ||A||.
        max_matvecs: product budget of each iterative solve (see `block_eigsh`).
        block_size: vectors per operator call in the P-side solvers (default 1: thick-restart
            Lanczos; see `block_eigsh`).
        check_steps: products of each solver's multiplicity check (see `block_eigsh`; default
            20; 0 skips it, and then a converged solve may miss copies of a repeated
            eigenvalue beyond the block size).
        m_route: how M is applied in the iterative method: "auto", "linear" (layer-wise factors of
            nn.Linear networks), "dense" (per-sample gradient matrix), "operator" (jvp/vjp).
        memory_budget: bytes allowed for per-sample gradient factors and the Gram matrix.
        dense_max_params: largest P for which method="auto" picks the dense method.
        dense_threads: thread limit for the dense method and every dense eigendecomposition
            (default 1: small dense problems gain little from threads and collapse when the
            threads outnumber free cores; None: leave the thread pools as they are).
        trace_probes: Hutchinson probes for tr(H_f) in the iterative method (0: NaN).
        seed: seed of the random starting blocks and probes (results are reproducible).
        on_nonconvergence: "warn" (ConvergenceWarning), "raise" (ConvergenceError), "ignore".
        distributed: a `distributed.Reduction` when several processes (DDP ranks) share the
            snapshot: every rank passes the same samples and gets the same result; each
            applies the operators to its shard and the sums are all-reduced. M then goes
            through P×P sums (dense) or products with the shard's per-sample factors summed
            over the ranks and a Lanczos solve (iterative), not through the n×n Gram matrix.
        hp_method: the extremes of H_p in the iterative method: "solve" (a converged block
            Lanczos solve on H_p = M - H_f) or "ritz" (Rayleigh-Ritz of H_p on span(top-k of H_f,
            top-k of M): k extra H_f products instead of a third solve; estimates, not converged
            eigenvalues: their relative residuals are in diagnostics["hp_max_residual"]) or
            "none" (H_p's extremes are not computed: hp_top and hp_bottom are NaN; the traces
            still are. For snapshots that only need H_f, M and their principal angles).
        params: the parameters θ spans (the model's own tensors or their names); default: the
            trainable ones (requires_grad=True). The others are held fixed.
        self_check: in the iterative method with per-sample gradient factors, compare one M
            product (a Gaussian probe) through the factors with the jvp/vjp product; a relative
            difference above SELF_CHECK_TOLERANCE (1e-6 float64, 1e-3 float32) abandons the
            factors for jvp/vjp products with a `RouteWarning` (diagnostics["m_self_check"]).
        density: None/False: off; True (the defaults of `DensitySettings`, probes from `seed`)
            or a DensitySettings: also the spectral densities of H_f, M and H_p and
            W1(H_p, -H_f) / spread (`Spectra.densities`; docs/densities.md). Dense method: exact,
            from all eigenvalues. Iterative: SLQ for H_f and H_p with the snapshot's top-k of
            H_f and (hp_method="solve") top/bottom-k of H_p merged in, M exact from the n×n
            Gram matrix (under `distributed` assembled from the ranks' shards, the same on
            every rank; the SLQ products are sharded like the others).

    Raises ValueError for C < 2 classes, non-finite inputs or parameters, inputs that are not one
    tensor (dicts, tuples: wrap the model), parametrised weights, and bad arguments.
    """
    started = time.perf_counter()
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if on_nonconvergence not in ("warn", "raise", "ignore"):
        raise ValueError(
            f"on_nonconvergence must be 'warn', 'raise' or 'ignore', got {on_nonconvergence!r}"
        )
    check_dtype(dtype)
    if chunk_size is not None:
        chunk_size = check_positive_int(chunk_size, "chunk_size")
    if m_route not in ("auto", "linear", "dense", "operator"):
        raise ValueError(
            f"m_route must be 'auto', 'linear', 'dense' or 'operator', got {m_route!r}"
        )
    if hp_method not in _HP_METHODS:
        raise ValueError(f"hp_method must be one of {_HP_METHODS}, got {hp_method!r}")
    if trace_probes < 0:
        raise ValueError(f"trace_probes must be >= 0, got {trace_probes}")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    density_settings = _density_settings(density, seed)
    with evaluation_mode(model), torch.inference_mode(False), torch.enable_grad():
        fm = FunctionalModel(model, dtype, params)
        k = check_k(k, fm.n_params)
        x, y = prepare_data(fm, inputs, targets)
        n, p = x.shape[0], fm.n_params
        batch_size = check_batch_size(batch_size, n)
        warm = _check_warm_start(warm_start, p)
        chosen = method if method != "auto" else ("dense" if p <= dense_max_params else "iterative")
        distributed = check_reduction(distributed)
        ops = CurvatureOperators(fm, x, y, chunk_size=chunk_size, distributed=distributed)
        loss, accuracy, mu = ops.loss_gradient()
        logger.debug(
            "curvature snapshot: %s method, P = %d, n = %d, k = %d, %s on %s",
            chosen,
            p,
            n,
            k,
            str(dtype).replace("torch.", ""),
            fm.device,
        )
        if chosen == "dense":
            m_used = "dense"
            factors = None
            with limit_threads(dense_threads):  # small problems: oversubscription costs most
                out = _dense_snapshot(ops, k, batch_size, memory_budget, dense_threads, seed)
        else:
            clock = time.perf_counter()
            # under DDP: factors of this rank's shard (M products summed over the ranks)
            factors = gradient_factors(
                fm, ops.inputs, ops.targets, ops.chunk_size, memory_budget, m_route
            )
            factors_seconds = time.perf_counter() - clock
            ops.gradients = factors
            check: dict[str, float] = {}
            if factors is not None and self_check:
                clock = time.perf_counter()
                discrepancy = fast_route_discrepancy(ops, seed)
                check = dict(
                    m_self_check=discrepancy, m_self_check_seconds=time.perf_counter() - clock
                )
                if not discrepancy <= SELF_CHECK_TOLERANCE[dtype]:
                    warnings.warn(
                        f"M: the per-sample gradient factors disagree with jvp/vjp products "
                        f"(relative difference {discrepancy:.2e} > "
                        f"{SELF_CHECK_TOLERANCE[dtype]:.0e}): M through jvp/vjp products",
                        RouteWarning,
                        stacklevel=2,
                    )
                    factors = ops.gradients = None
            m_used = {None: "operator", DenseGradients: "dense"}.get(
                type(factors) if factors is not None else None, "linear"
            )
            logger.debug(
                "M through %s",
                {
                    "operator": "jvp/vjp products",
                    "dense": "the per-sample gradient matrix and its Gram",
                    "linear": "layer-wise factors and the Gram matrix",
                }[m_used],
            )
            solver = dict(
                tol=default_tolerance(dtype) if tol is None else tol,
                max_matvecs=max_matvecs,
                block_size=block_size,
                on_failure=on_nonconvergence,
                check_steps=check_steps,
            )
            out = _iterative_snapshot(
                ops, k, batch_size, factors, warm, solver, trace_probes, seed, hp_method
            )
            out["diagnostics"]["factors_seconds"] = factors_seconds
            out["diagnostics"].update(check)
        densities = None
        if density_settings is not None:
            densities = _snapshot_densities(
                ops, out, factors, density_settings, hp_method, dense_threads
            )
    grad_norm = float(mu.norm())
    trace_mb = None
    if batch_size is not None:
        c = minibatch_coefficient(n, batch_size)
        trace_mb = c * out["trace_mt"] + (1.0 - c) * grad_norm**2
    hf_vecs = out["hf_vecs"].detach().cpu()
    mt_vecs = out["mt_vecs"].detach().cpu()
    eps = torch.finfo(dtype).eps
    rel_zero = 10.0 * min(n, p) * eps
    if chosen != "dense":
        rel_zero = max(rel_zero, default_tolerance(dtype) if tol is None else tol)
    cosines = defined_cosines(out["hf_top"], out["mt_top"], hf_vecs, mt_vecs, rel_zero)
    out["diagnostics"]["cosines_defined"] = float(np.isfinite(cosines).sum())
    spectra = Spectra(
        k=k,
        method=chosen,
        m_route=m_used,
        dtype=str(dtype).replace("torch.", ""),
        n_samples=n,
        n_params=p,
        hf_top=_numpy(out["hf_top"]),
        mt_top=_numpy(out["mt_top"]),
        hp_top=_numpy(out["hp_top"]),
        hp_bottom=_numpy(out["hp_bottom"]),
        cosines=cosines,
        hf_vecs=hf_vecs,
        mt_vecs=mt_vecs,
        trace_hf=out["trace_hf"],
        trace_mt=out["trace_mt"],
        trace_hp=out["trace_hp"],
        trace_hf_stderr=out["trace_hf_stderr"],
        trace_mt_stderr=out["trace_mt_stderr"],
        trace_hp_stderr=out["trace_hp_stderr"],
        grad_norm=grad_norm,
        loss=loss,
        accuracy=accuracy,
        hf_all=_numpy(out["hf_all"]) if "hf_all" in out else None,
        mt_all=_numpy(out["mt_all"]) if "mt_all" in out else None,
        hp_all=_numpy(out["hp_all"]) if "hp_all" in out else None,
        batch_size=batch_size,
        mb_top=_numpy(out["mb_top"]) if "mb_top" in out else None,
        trace_mb=trace_mb,
        hp_top_vecs=out["hp_top_vecs"].detach().cpu() if "hp_top_vecs" in out else None,
        hp_bottom_vecs=out["hp_bottom_vecs"].detach().cpu() if "hp_bottom_vecs" in out else None,
        mt_sample_vecs=out["mt_sample_vecs"].detach().cpu() if "mt_sample_vecs" in out else None,
        densities=densities,
        diagnostics=out["diagnostics"],
    )
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
