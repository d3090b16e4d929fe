"""One snapshot of the curvature: spectra of H_f, M, H_p (and M_b), principal angles, traces.

`compute_spectra(model, inputs, targets, ...)` measures the quantities of docs/math.md for the
mean cross-entropy of `model(inputs)` (logits (n, C)) against `targets` (n,), as functions of
the model's trainable parameters θ (requires_grad=True; `params=` for another set) at their
current values. The network is evaluated in **eval mode** on a detached copy of its parameters
cast to `dtype`; the model itself (parameters, dtype, requires_grad flags, train/eval state) is
left exactly as found.

Two methods:
- "dense" (`snapshot.dense`): the exact P×P matrices and their full spectra (all P eigenvalues
  of H_f, M, H_p); M's spectrum from the n×n Gram matrix when n < P. Exact traces.
- "iterative" (`snapshot.iterative`): matrix-free products and `block_eigsh`: k largest of H_f
  and M, k largest and k smallest of H_p = M - H_f (a solve, Rayleigh-Ritz estimates with
  hp_method="ritz", or none), M through per-sample gradient factors and their Gram matrix when
  they fit `memory_budget`, else jvp/vjp products (`operators.m_route`, with a self-check of
  the fast route), Hutchinson traces. A previous snapshot passed as `warm_start` provides the
  starting vectors of the solvers.
"auto" picks "dense" when P <= dense_max_params (`thresholds.DENSE_MAX_PARAMS`).

The settings are checked once, by `SpectraOptions`; the per-call arguments by
`snapshot.arguments`. Each method fills one `SnapshotParts`; the shared steps (densities:
`snapshot.densities`, principal angles where defined: `solvers.angles.defined_cosines`, ||μ||,
tr(M_b)) complete it into the `Spectra` (`_to_spectra`).

Timings of the parts and solver figures are in `Spectra.diagnostics`; progress goes to the logger
"sgd_dynamics.curvature" (INFO: method and route, DEBUG: solver iterations).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from sgd_dynamics.threads import limit_threads

from ..choices import Method
from ..density.densities import SpectralDensities
from ..operators.distributed import Reduction, check_reduction
from ..operators.functional import FunctionalModel, evaluation_mode
from ..operators.m_route import RouteWarning
from ..operators.products import CurvatureOperators, minibatch_coefficient
from ..options import SpectraOptions
from ..solvers.angles import defined_cosines
from .arguments import check_batch_size, check_k, check_warm_start, prepare_data
from .dense import dense_snapshot
from .densities import snapshot_densities
from .iterative import iterative_snapshot
from .parts import SnapshotParts, to_numpy
from .precision import PrecisionWarning, check_float32

__all__ = ["PrecisionWarning", "RouteWarning", "Spectra", "SpectraOptions", "compute_spectra"]

logger = logging.getLogger("sgd_dynamics.curvature")


@dataclass
class Spectra:
    """A curvature snapshot. Eigenvalue arrays are float64 numpy; eigenvectors CPU tensors.

    Attributes:
        hf_top, mt_top: (k,) largest eigenvalues of H_f and M, descending.
        hp_top: (k,) largest eigenvalues of H_p, descending; hp_bottom: (k,) smallest, ascending.
        hf_vecs, mt_vecs: (P, k) orthonormal eigenvectors (the trainable parameters, or `params`,
            flattened in model.named_parameters() order), columns matching hf_top / mt_top.
        cosines: (k,) cosines of the principal angles between the top eigenspaces of H_f and M,
            descending, where defined: between span(hf_vecs[:, :a]) and span(mt_vecs[:, :r]) with r
            the numerical rank of M among the k (eigenvalues > ρ λ_1(M)) and a the number of
            positive H_f eigenvalues among the k (> ρ max|λ|), ρ = max(10 min(n, P) eps, solver
            tolerance in the iterative method). Entries from min(a, r) on are NaN: beyond M's rank
            its eigenvectors are an arbitrary basis of its null space, and the angles would be
            arbitrary (diagnostics["cosines_defined"] = min(a, r)).
        hf_all, mt_all, hp_all: (P,) all eigenvalues ascending (dense method), else None.
        trace_hf, trace_mt, trace_hp: traces, each with its standard error (trace_hf_stderr,
            trace_mt_stderr, trace_hp_stderr; 0 where exact). Exact in the dense method; in the
            iterative method trace_hf is a Hutchinson estimate (`trace_probes` Rademacher probes,
            standard error std / sqrt(probes)), trace_mt is exact when M goes through per-sample
            gradient factors and a Hutchinson estimate on the same probes otherwise, and trace_hp =
            trace_mt - trace_hf (its standard error from the per-probe differences).
        grad_norm: ||μ||, μ = ∇F; loss, accuracy: mean loss and accuracy on the samples (eval mode).
        batch_size, mb_top, trace_mb: the size-b mini-batch second moment M_b (when batch_size
            given).
        hp_top_vecs, hp_bottom_vecs: (P, k) eigenvectors of H_p (iterative method; for warm starts).
        mt_sample_vecs: (n, min(k, n)) eigenvectors of the Gram matrix K = G Gᵀ / n matching mt_top
            (iterative method, M through the Gram matrix; they start the next snapshot's solve on
            K).
        densities: spectral densities of H_f, M and H_p and W1(H_p, -H_f) (`density=` on), else
            None.
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
        """Everything storable: the snapshot without its P×k eigenvector blocks.

        Returns:
            Name -> float64 numpy array (0-d for scalars): the eigenvalue arrays, traces, sizes,
            `dense` (1.0 for the dense method), `seconds`, the diagnostics and, with densities,
            their arrays.
        """
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
            "dense": float(self.method == Method.DENSE),
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


# the fields a `SnapshotParts` hands to its `Spectra` as they are, as float64 numpy arrays (those
# that may be None too), and as CPU tensors
_TRACE_FIELDS = tuple(f"trace_{m}{e}" for m in ("hf", "mt", "hp") for e in ("", "_stderr"))
_TOP_FIELDS = ("hf_top", "mt_top", "hp_top", "hp_bottom")
_ALL_FIELDS = ("hf_all", "mt_all", "hp_all", "mb_top")
_VECTOR_FIELDS = ("hf_vecs", "mt_vecs", "hp_top_vecs", "hp_bottom_vecs", "mt_sample_vecs")


def _cpu(x: Tensor | None) -> Tensor | None:
    return None if x is None else x.detach().cpu()


def _numpy_or_none(x: Tensor | None) -> np.ndarray | None:
    return None if x is None else to_numpy(x)


def _to_spectra(
    parts: SnapshotParts,
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
    if method != Method.DENSE:
        rel_zero = max(rel_zero, options.solver_tolerance)
    cosines = defined_cosines(
        parts.hf_top, parts.mt_top, vectors["hf_vecs"], vectors["mt_vecs"], rel_zero
    )
    parts.diagnostics["cosines_defined"] = float(np.isfinite(cosines).sum())
    arrays = {name: to_numpy(getattr(parts, name)) for name in _TOP_FIELDS}
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


def compute_spectra(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    options: SpectraOptions | None = None,
    *,
    batch_size: int | None = None,
    warm_start: Spectra | dict | None = None,
    distributed: Reduction | None = None,
    params: Iterable[Tensor] | Iterable[str] | None = None,
) -> Spectra:
    """Spectra of H_f, M, H_p (and M_b) of the mean cross-entropy at the model's parameters.

    Args:
        model: any nn.Module classifier, model(inputs) -> (n, C) logits; evaluated in eval mode on a
            detached copy of its parameters (left untouched), on its own device.
        inputs: (n, ...) samples, one tensor (or array) of real numbers.
        targets: (n,) integer labels in [0, C).
        options: the settings (k, method, dtype, solver tolerances, densities, ...), documented and
            checked by `SpectraOptions`; None: its defaults.
        batch_size: b, to also return the k largest eigenvalues of M_b (mb_top) and tr(M_b).
        warm_start: a previous snapshot (same model shape): its eigenvectors start the iterative
            solvers (H_f, H_p, and M: its P-side vectors when M goes through operator products, its
            Gram-side `mt_sample_vecs` when it goes through K).
        distributed: a `Reduction` when DDP ranks share the snapshot: every rank passes the same
            samples, applies the operators to its shard, the sums are all-reduced and every rank
            gets the same result. M goes through P×P sums (dense) or a Lanczos solve on its products
            (iterative), not through the n×n Gram matrix.
        params: the parameters θ spans (the model's own tensors or their names); default: the
            trainable ones (requires_grad=True). The others are held fixed.

    Returns:
        The snapshot as a `Spectra` (float64 numpy eigenvalues, CPU eigenvectors), timed in
        `Spectra.seconds`.

    Raises:
        ValueError: for C < 2 classes, non-finite inputs or parameters, inputs that are not one
            tensor (dicts, tuples: wrap the model), parametrised weights, and bad arguments.
    """
    if options is None:
        options = SpectraOptions()
    elif not isinstance(options, SpectraOptions):
        raise ValueError(
            f"options must be a SpectraOptions (the settings k, method, dtype, ...) or None, "
            f"got {type(options).__name__}"
        )
    started = time.perf_counter()
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    with evaluation_mode(model), torch.inference_mode(False), torch.enable_grad():
        fm = FunctionalModel(model, options.dtype, params)
        k = check_k(options.k, fm.n_params)
        x, y = prepare_data(fm, inputs, targets)
        batch_size = check_batch_size(batch_size, x.shape[0])
        warm = check_warm_start(warm_start, fm.n_params)
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
        if method == Method.DENSE:
            with limit_threads(options.dense_threads):  # small problems: oversubscription costs
                parts = dense_snapshot(ops, k, batch_size, options)
        else:
            parts = iterative_snapshot(ops, k, batch_size, warm, options)
        if options.density_settings is not None:
            parts.densities = snapshot_densities(ops, parts, options)
        check_float32(ops, parts.diagnostics)
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
