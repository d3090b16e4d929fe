"""Spectral densities of H_f, M and H_p = M - H_f, and "H_p -> -H_f" as a number.

- H_f and H_p: stochastic Lanczos quadrature (`lanczos_quadrature`), m probes × q steps, one
  H_f product per step for H_f and one M and one H_f product per step for H_p. Known extreme
  eigenpairs (the top/bottom-k of a solve, `Outliers`) are merged in exactly: the probes are
  deflated (kept orthogonal to the known eigenvectors), the quadrature then estimates the
  measure of the other P - k eigenvalues, and the result is
      μ = (1/P) Σ_{known} δ(λ - λ_i) + ((P - k)/P) μ_quadrature.
- M: exact, no estimate. Its nonzero eigenvalues are those of the n×n Gram matrix
  K = G Gᵀ / n of the per-sample gradients (G: n×P), the other P - min(n, P) are 0.
- The distance of H_p's measure from -H_f's: W1(μ_{H_p}, μ_{-H_f}) / (λmax(H_f) - λmin(H_f))
  (0 when H_p = -H_f, i.e. M = 0; `measures.relative_w1`).
- A smoothed density of each on a grid (`measures.smoothed_density`), all three with the same
  symlog threshold τ and width σ.

The defaults (`DensitySettings`) were chosen from the measurements in docs/densities.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from sgd_dynamics.utils.validate import positive_int

from ..solvers.lanczos_quadrature import PROBE_KINDS, lanczos_quadrature, random_probes
from .measures import SpectralMeasure, relative_w1, smoothed_density

Matmat = Callable[[Tensor], Tensor]
OPERATORS = ("hf", "mt", "hp")

# measured in docs/densities.md: W1 <= 6e-3 of the spread on Gauss-10 at these settings, and the
# smoothed density within L1 <= 0.05 of the exact one smoothed alike
DEFAULT_PROBES = 4
DEFAULT_STEPS = 40
DEFAULT_WIDTH = 0.3  # σ in t = asinh(λ / τ)
DEFAULT_LINTHRESH = 0.03  # τ as a fraction of λmax(H_f) - λmin(H_f): about the quadrature's
# resolution (nodes ~ spread / q apart); finer structure near 0 is not resolved by q steps


@dataclass(frozen=True)
class DensitySettings:
    """How densities are estimated and smoothed.

    Attributes:
        probes: m random probes per estimated operator; steps: q Lanczos steps per probe.
        probe_kind: "gaussian" or "rademacher" entries (normalised after deflation).
        width: σ, the Gaussian smoothing's standard deviation in t = asinh(λ / τ).
        linthresh: τ as a fraction of the spread λmax(H_f) - λmin(H_f) of the snapshot.
        grid_points: points of each density's grid.
        seed: seed of the probes (all processes of a distributed snapshot draw the same ones).
    """

    probes: int = DEFAULT_PROBES
    steps: int = DEFAULT_STEPS
    probe_kind: str = "gaussian"
    width: float = DEFAULT_WIDTH
    linthresh: float = DEFAULT_LINTHRESH
    grid_points: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("probes", "steps", "grid_points"):
            positive_int(getattr(self, name), f"density {name}")
        if self.probe_kind not in PROBE_KINDS:
            raise ValueError(
                f"density probe_kind must be one of {PROBE_KINDS}, got {self.probe_kind!r}"
            )
        for name in ("width", "linthresh"):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (number and value > 0 and np.isfinite(value)):
                raise ValueError(f"density {name} must be a positive number, got {value!r}")


@dataclass
class Outliers:
    """Known eigenpairs of an operator: values (k,), vectors (P, k) with matching columns
    (orthonormal up to the solver's accuracy; they are re-orthonormalised for the deflation)."""

    values: Tensor | np.ndarray
    vectors: Tensor


@dataclass
class OperatorDensity:
    """The spectral measure of one operator and its smoothed density.

    measure: atoms (nodes, weights), weights summing to 1.
    grid, density: (G,) eigenvalues and the smoothed density there (integrates to 1 over λ).
    exact: True when the measure holds the exact eigenvalues (M; the dense method).
    outliers: (k,) the known eigenvalues merged in as atoms of weight 1/P (empty if none).
    """

    measure: SpectralMeasure
    grid: np.ndarray
    density: np.ndarray
    exact: bool
    outliers: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass
class SpectralDensities:
    """Densities of H_f, M, H_p at one snapshot and the distance of H_p from -H_f.

    hp_to_minus_hf: W1(μ_{H_p}, μ_{-H_f}) / spread, spread = λmax(H_f) - λmin(H_f) (support of
        H_f's measure). NaN when H_p's density was not computed. Since M ⪰ 0, Weyl's
        monotonicity gives λ_i(H_p) = λ_i(-H_f + M) >= λ_i(-H_f) for every i (both sorted), so
        the optimal coupling pairs the sorted eigenvalues and W1 = (1/P) Σ_i (λ_i(H_p) -
        λ_i(-H_f)) = tr(M) / P exactly. It is computed so whenever M's measure is exact (from
        the Gram matrix, or dense), and from the measures when those are all exact.
    hp_to_minus_hf_slq: the same distance between the SLQ estimates of the two measures (NaN
        where the measures are exact): their estimation error, compared with the exact value.
    linthresh: τ of the smoothing (absolute); width: σ in t = asinh(λ / τ).
    hf_products, mt_products: operator calls on (P, m) blocks (m = probes).
    """

    hf: OperatorDensity
    mt: OperatorDensity | None
    hp: OperatorDensity | None
    hp_to_minus_hf: float
    spread: float
    linthresh: float
    width: float
    probes: int
    steps: int
    hf_products: int = 0
    mt_products: int = 0
    hp_to_minus_hf_slq: float = np.nan

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Snapshot keys (see `sgd_dynamics.run_folder.snapshots`): for each operator X in hf,
        mt, hp present, ``X_density_nodes`` / ``X_density_weights`` (the measure, nodes ascending),
        ``X_density_grid`` / ``X_density`` (the smoothed density); scalars
        ``hp_to_minus_hf_w1``, ``density_spread``, ``density_linthresh``, ``density_width``,
        ``density_probes``, ``density_steps``, ``density_exact`` (1 when all are exact), and
        ``hp_to_minus_hf_w1_slq`` where the SLQ estimate differs from the exact value."""
        out: dict[str, np.ndarray] = {}
        exact = True
        for name in OPERATORS:
            part: OperatorDensity | None = getattr(self, name)
            if part is None:
                continue
            exact &= part.exact
            out[f"{name}_density_nodes"] = part.measure.nodes
            out[f"{name}_density_weights"] = part.measure.weights
            out[f"{name}_density_grid"] = part.grid
            out[f"{name}_density"] = part.density
        scalars = {
            "hp_to_minus_hf_w1": self.hp_to_minus_hf,
            "density_spread": self.spread,
            "density_linthresh": self.linthresh,
            "density_width": self.width,
            "density_probes": self.probes,
            "density_steps": self.steps,
            "density_exact": float(exact),
        }
        if np.isfinite(self.hp_to_minus_hf_slq):
            scalars["hp_to_minus_hf_w1_slq"] = self.hp_to_minus_hf_slq
        out.update({key: np.asarray(value, dtype=np.float64) for key, value in scalars.items()})
        return out


def second_moment_measure(gram_values: Tensor | np.ndarray, n_params: int) -> SpectralMeasure:
    """M's exact measure from the eigenvalues of K = G Gᵀ / n (n,): its min(n, P) largest
    (clipped at 0: M is positive semi-definite) with weight 1/P each, and one atom at 0 of
    weight (P - min(n, P)) / P for the zeros beyond the rank."""
    values = np.sort(np.asarray(torch.as_tensor(gram_values).cpu().double()).ravel())[::-1]
    kept = np.clip(values[: min(values.size, n_params)], 0.0, None)
    zeros = n_params - kept.size
    nodes = np.concatenate([kept, [0.0]]) if zeros else kept
    weights = np.full(nodes.size, 1.0 / n_params)
    if zeros:
        weights[-1] = zeros / n_params
    return SpectralMeasure(nodes, weights)


def _orthonormal(vectors: Tensor) -> Tensor:
    q, _ = torch.linalg.qr(vectors)
    return q


def operator_measure(
    matmat: Matmat,
    n_params: int,
    settings: DensitySettings,
    *,
    outliers: Outliers | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    seed_offset: int = 0,
) -> tuple[SpectralMeasure, np.ndarray, int]:
    """(measure, outlier values, products) of a symmetric operator by deflated SLQ.

    matmat: V (P, m) -> A V; outliers: known eigenpairs, merged in as atoms of weight 1/P."""
    generator = torch.Generator(device=device)
    generator.manual_seed(settings.seed + seed_offset)
    probes = random_probes(n_params, settings.probes, settings.probe_kind, generator, dtype, device)
    known = np.zeros(0)
    deflate = None
    if outliers is not None:
        known = np.asarray(torch.as_tensor(outliers.values).cpu().double()).ravel()
        vectors = torch.as_tensor(outliers.vectors).to(device=device, dtype=dtype)
        if vectors.ndim != 2 or vectors.shape != (n_params, known.size):
            raise ValueError(
                f"outlier vectors must have shape (P, k) = ({n_params}, {known.size}), got "
                f"{tuple(vectors.shape)}"
            )
        deflate = _orthonormal(vectors) if known.size else None
    rest = n_params - known.size
    steps = min(settings.steps, rest)
    if rest == 0:
        return SpectralMeasure.from_eigenvalues(known), known, 0
    quadrature = lanczos_quadrature(matmat, probes, steps, deflate)
    weights = quadrature.weights.ravel() * (rest / n_params / settings.probes)
    nodes = np.concatenate([known, quadrature.nodes.ravel()])
    weights = np.concatenate([np.full(known.size, 1.0 / n_params), weights])
    used = weights > 0
    return SpectralMeasure(nodes[used], weights[used]), known, quadrature.products


def _density(
    measure: SpectralMeasure, exact: bool, known: np.ndarray, linthresh: float, s: DensitySettings
) -> OperatorDensity:
    grid, density = smoothed_density(measure, linthresh, s.width, points=s.grid_points)
    return OperatorDensity(measure, grid, density, exact, np.sort(known))


def _assemble(
    measures: dict[str, tuple[SpectralMeasure, bool, np.ndarray]],
    settings: DensitySettings,
    hf_products: int = 0,
    mt_products: int = 0,
) -> SpectralDensities:
    low, high = measures["hf"][0].support
    spread = high - low
    if not spread > 0:
        raise ValueError("H_f's spectrum has no spread (a single eigenvalue): nothing to scale by")
    linthresh = settings.linthresh * spread
    parts = {
        name: _density(measure, exact, known, linthresh, settings)
        for name, (measure, exact, known) in measures.items()
    }
    hp, mt = parts.get("hp"), parts.get("mt")
    distance = estimated = np.nan
    if hp is not None:
        from_measures = relative_w1(hp.measure, parts["hf"].measure.negated(), spread)
        if hp.exact and parts["hf"].exact:
            distance = from_measures
        else:
            estimated = distance = from_measures  # an estimate unless M's measure is exact:
            if mt is not None and mt.exact:  # Weyl (see SpectralDensities): W1 = tr(M) / P
                distance = mt.measure.mean() / spread
    return SpectralDensities(
        hf=parts["hf"],
        mt=parts.get("mt"),
        hp=hp,
        hp_to_minus_hf=distance,
        spread=spread,
        linthresh=linthresh,
        width=settings.width,
        probes=settings.probes,
        steps=settings.steps,
        hf_products=hf_products,
        mt_products=mt_products,
        hp_to_minus_hf_slq=estimated,
    )


def spectral_densities(
    hf: Matmat,
    n_params: int,
    *,
    m: Matmat | None = None,
    gram_values: Tensor | np.ndarray | None = None,
    hf_outliers: Outliers | None = None,
    hp_outliers: Outliers | None = None,
    settings: DensitySettings | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> SpectralDensities:
    """Densities of H_f (SLQ), M (exact, from `gram_values`) and H_p = M - H_f (SLQ, when `m`
    is given) at one snapshot, and W1(H_p, -H_f) relative to H_f's spread.

    Cost: q·m H_f columns for H_f, q·m H_f and q·m M columns for H_p, in q block calls each.

    Args:
        hf: V (P, b) -> H_f V (e.g. `CurvatureOperators.hf`), in `dtype` on `device`; under DDP
            every process passes the same settings (same probes) and all-reducing products.
        n_params: P.
        m: V (P, b) -> M V, or None (no H_p density).
        gram_values: the n eigenvalues of K = G Gᵀ / n (M's exact measure), or None (no M).
        hf_outliers, hp_outliers: known extreme eigenpairs (top-k of H_f; top-k and bottom-k of H_p
            together), merged in exactly; None: pure SLQ.
        settings: probes, steps and smoothing (None: the defaults of `DensitySettings`).
        dtype, device: of the probes.

    Returns:
        The `SpectralDensities` of the snapshot (H_p's and W1 NaN without `m`).
    """
    settings = settings or DensitySettings()
    counts = {"hf": 0, "mt": 0}

    def counted(name: str, fn: Matmat) -> Matmat:
        def call(block: Tensor) -> Tensor:
            counts[name] += 1
            return fn(block)

        return call

    hf_counted = counted("hf", hf)
    measures: dict[str, tuple[SpectralMeasure, bool, np.ndarray]] = {}
    common = dict(dtype=dtype, device=device)
    measure, known, _ = operator_measure(
        hf_counted, n_params, settings, outliers=hf_outliers, **common
    )
    measures["hf"] = (measure, False, known)
    if gram_values is not None:
        measures["mt"] = (second_moment_measure(gram_values, n_params), True, np.zeros(0))
    if m is not None:
        m_counted = counted("mt", m)
        measure, known, _ = operator_measure(
            lambda v: m_counted(v) - hf_counted(v),
            n_params,
            settings,
            outliers=hp_outliers,
            seed_offset=1,
            **common,
        )
        measures["hp"] = (measure, False, known)
    return _assemble(measures, settings, counts["hf"], counts["mt"])


def exact_densities(
    hf_all: np.ndarray,
    mt_all: np.ndarray,
    hp_all: np.ndarray,
    settings: DensitySettings | None = None,
) -> SpectralDensities:
    """The densities from all P eigenvalues of each operator (the dense method).

    Args:
        hf_all, mt_all, hp_all: (P,) all eigenvalues of H_f, M and H_p.
        settings: the smoothing (None: the defaults of `DensitySettings`).

    Returns:
        `SpectralDensities` with exact measures and an exact W1(H_p, -H_f).
    """
    settings = settings or DensitySettings()
    measures = {
        name: (SpectralMeasure.from_eigenvalues(values), True, np.zeros(0))
        # M is positive semi-definite: its rounding-level negative eigenvalues are zeros
        for name, values in (("hf", hf_all), ("mt", np.clip(mt_all, 0.0, None)), ("hp", hp_all))
    }
    return _assemble(measures, settings)
