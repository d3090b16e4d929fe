"""Spectral measures as weighted atoms, their distance, and their smoothed densities.

The spectral measure of a symmetric P×P matrix A is μ_A = (1/P) Σ_i δ(λ - λ_i), a probability
measure. Here it is held as atoms: `nodes` (N,) and `weights` (N,) >= 0 summing to 1, exact (all
eigenvalues, weight 1/P each) or estimated (stochastic Lanczos quadrature, `lanczos_quadrature`).

- `relative_w1`: the Wasserstein-1 distance W1(μ, ν) = ∫ |F_μ(x) - F_ν(x)| dx (F: cumulative
  distribution functions) divided by a spread, by `scipy.stats.wasserstein_distance`.
- `smoothed_density`: the measure convolved with a Gaussian in the coordinate
  t(λ) = asinh(λ / τ) (linear for |λ| << τ, logarithmic for |λ| >> τ, like a symlog axis): the
  density ρ(λ) = Σ_j w_j N(t(λ); t(θ_j), σ²) t'(λ), t'(λ) = 1 / sqrt(λ² + τ²), on a grid
  uniform in t. It integrates to 1 over λ; the width is relative (σ·|λ|) far from 0 and
  absolute (σ·τ) near 0. A measure whose atoms are all >= 0 (M, any positive semi-definite
  matrix) is smoothed with the kernel reflected at 0, N(t; t_j, σ²) + N(t; -t_j, σ²) for t >= 0
  and 0 below: the density keeps the support [0, ∞) and still integrates to 1 (t is odd in λ,
  so reflecting in t is reflecting in λ).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import wasserstein_distance

__all__ = ["SpectralMeasure", "relative_w1", "smoothed_density", "symlog_grid"]


@dataclass
class SpectralMeasure:
    """A probability measure on the real line as atoms: nodes (N,) float64 ascending, weights
    (N,) float64 >= 0 with sum 1."""

    nodes: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        nodes = np.asarray(self.nodes, dtype=np.float64).ravel()
        weights = np.asarray(self.weights, dtype=np.float64).ravel()
        if nodes.shape != weights.shape or nodes.size == 0:
            raise ValueError(
                f"a spectral measure needs as many weights as nodes (>= 1), got {nodes.shape} "
                f"nodes and {weights.shape} weights"
            )
        if not (np.all(np.isfinite(nodes)) and np.all(np.isfinite(weights))):
            raise ValueError("a spectral measure needs finite nodes and weights")
        if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0, rtol=0, atol=1e-9):
            raise ValueError(
                f"a spectral measure needs weights >= 0 summing to 1, got sum {weights.sum()!r}"
            )
        order = np.argsort(nodes, kind="stable")
        self.nodes, self.weights = nodes[order], weights[order]

    @classmethod
    def from_eigenvalues(cls, eigenvalues: np.ndarray) -> SpectralMeasure:
        """(1/P) Σ δ(λ - λ_i) of all P eigenvalues."""
        values = np.asarray(eigenvalues, dtype=np.float64).ravel()
        return cls(values, np.full(values.size, 1.0 / max(values.size, 1)))

    @property
    def support(self) -> tuple[float, float]:
        """(smallest, largest) node carrying positive weight."""
        kept = self.nodes[self.weights > 0]
        return float(kept[0]), float(kept[-1])

    def negated(self) -> SpectralMeasure:
        """The measure of -A."""
        return SpectralMeasure(-self.nodes, self.weights)

    def mean(self) -> float:
        """∫ λ dμ = tr(A) / P."""
        return float(self.nodes @ self.weights)


def relative_w1(first: SpectralMeasure, second: SpectralMeasure, spread: float) -> float:
    """The Wasserstein-1 distance of two measures relative to a spread.

    Args:
        first, second: the measures.
        spread: > 0, e.g. λmax - λmin of a reference spectrum.

    Returns:
        W1(first, second) / spread.

    Raises:
        ValueError: for a spread that is not positive.
    """
    if not spread > 0:
        raise ValueError(f"the spread must be positive, got {spread!r}")
    distance = wasserstein_distance(first.nodes, second.nodes, first.weights, second.weights)
    return float(distance) / spread


def symlog_grid(low: float, high: float, linthresh: float, points: int = 512) -> np.ndarray:
    """A grid uniform in t = asinh(λ / linthresh).

    Args:
        low, high: its ends.
        linthresh: τ > 0, the width of the linear part around 0.
        points: its size.

    Returns:
        (points,) values from low to high.
    """
    t = np.linspace(np.arcsinh(low / linthresh), np.arcsinh(high / linthresh), points)
    return linthresh * np.sinh(t)


def smoothed_density(
    measure: SpectralMeasure,
    linthresh: float,
    width: float,
    grid: np.ndarray | None = None,
    points: int = 512,
    reflect: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The measure smoothed by a Gaussian of standard deviation `width` in
    t = asinh(λ / linthresh) (see the module docstring), as a density in λ.

    With `reflect` (default: when every node is >= 0) the kernel is reflected at 0: the density
    is 0 below 0 and the default grid starts at 0, so a positive semi-definite matrix's density
    never reaches negative eigenvalues.

    Args:
        measure: the atoms to smooth.
        linthresh: τ > 0.
        width: σ > 0, in t.
        grid: (G,) where to evaluate the density; None: the nodes ± 5 widths, uniform in t, `points`
            values.
        points: the default grid's size.
        reflect: reflect the kernel at 0 (support [0, ∞)); None: when all nodes are >= 0.

    Returns:
        (grid (G,), density (G,)), float64; the density integrates to 1 over λ.

    Raises:
        ValueError: unless linthresh and width are positive.
    """
    if not (linthresh > 0 and width > 0):
        raise ValueError(f"linthresh and width must be positive, got {linthresh!r}, {width!r}")
    t_nodes = np.arcsinh(measure.nodes / linthresh)
    if reflect is None:
        reflect = bool(measure.nodes.size) and bool(measure.nodes[0] >= 0.0)
    if grid is None:
        low = 0.0 if reflect else t_nodes[0] - 5 * width
        t_grid = np.linspace(low, t_nodes[-1] + 5 * width, points)
        grid = linthresh * np.sinh(t_grid)
    else:
        grid = np.asarray(grid, dtype=np.float64)
        t_grid = np.arcsinh(grid / linthresh)
    density_t = _kernel_sum(t_grid, t_nodes, measure.weights, width)
    if reflect:
        density_t += _kernel_sum(t_grid, -t_nodes, measure.weights, width)
        density_t[grid < 0.0] = 0.0
    return grid, density_t / np.hypot(grid, linthresh)


def _kernel_sum(
    t_grid: np.ndarray, t_nodes: np.ndarray, weights: np.ndarray, width: float
) -> np.ndarray:
    """Σ_j w_j N(t; t_j, width²) at each t of `t_grid` (G,), float64."""
    density_t = np.zeros_like(t_grid)
    for start in range(0, t_nodes.size, 256):  # bounded temporaries: (G, 256)
        z = (t_grid[:, None] - t_nodes[None, start : start + 256]) / width
        density_t += np.exp(-0.5 * z * z) @ weights[start : start + 256]
    return density_t / (width * np.sqrt(2.0 * np.pi))
