"""Histogram bins that show a spectrum: its bulk near 0 and its outliers, each in bins of their own.

A Hessian spectrum is a bulk of many eigenvalues close to 0 and a few outliers orders of
magnitude larger; linear bins put nearly all of it in one bin. Here the bins are evenly spaced
in a transformed value:

- `symlog_edges` (indefinite spectra, H_f and H_p): s(x) = sign(x) log(1 + |x| / t), linear
  within about t of 0 and logarithmic beyond, with t = `LINEAR_DECADES` decades below the
  largest magnitude, so the bins cover each sign's decades down to t;
- `log_edges` (positive values, M's nonzero part; M is PSD of rank <= n, its zeros are counted
  apart): s(x) = log(x).

In both, when the largest value is not alone in its bin, one edge is added between it and the
next value below (their midpoint in s), so the top eigenvalue always sits in a bin of its own
when it is strictly the largest. Edges are float64, strictly increasing, the first one the
smallest value and the last one the largest: every value falls in a bin of ``np.histogram``.
"""

from __future__ import annotations

import numpy as np

N_BINS = 64
LINEAR_DECADES = 6.0  # symlog: linear within 10^-6 x the largest magnitude of 0


def _finite(values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    return np.sort(array[np.isfinite(array)])


def _single_bin(value: float) -> np.ndarray:
    width = max(abs(value) * 1e-6, 1e-300)
    return np.array([value - width, value + width])


def _edges_in(values: np.ndarray, forward, inverse, n_bins: int) -> np.ndarray:
    """`n_bins` edges evenly spaced in s = forward(x) over the sorted `values`, plus one edge
    between the two largest values when the largest shares its bin."""
    low, high = float(values[0]), float(values[-1])
    if low == high:
        return _single_bin(low)
    edges = inverse(np.linspace(forward(low), forward(high), n_bins + 1))
    edges[0], edges[-1] = low, high
    edges = np.unique(edges)  # sorted; rounding may merge two edges
    below = values[values < high]
    if below.size:
        second = float(below[-1])
        if second >= edges[-2]:  # the largest is not alone in the last bin: split it
            cut = float(inverse(0.5 * (forward(second) + forward(high))))
            if not second < cut < high:  # s too coarse there (adjacent floats): split in x
                cut = second + 0.5 * (high - second)
            if second < cut < high:
                edges = np.unique(np.append(edges[edges < cut], [cut, high]))
    return edges


def symlog_edges(values: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Bin edges for an indefinite spectrum, evenly spaced in sign(x) log(1 + |x| / t).

    Args:
        values: eigenvalues, any shape (non-finite ones are ignored); at least one finite.
        n_bins: bins before the split that isolates the largest value.

    Returns:
        float64 edges, strictly increasing, from the smallest to the largest value.
    """
    sorted_values = _finite(values)
    if sorted_values.size == 0:
        raise ValueError("symlog_edges needs at least one finite value")
    scale = float(np.abs(sorted_values).max())
    t = scale * 10.0**-LINEAR_DECADES if scale > 0 else 1.0

    def forward(x):
        return np.sign(x) * np.log1p(np.abs(x) / t)

    def inverse(s):
        return np.sign(s) * t * np.expm1(np.abs(s))

    return _edges_in(sorted_values, forward, inverse, n_bins)


def log_edges(values: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Bin edges for positive values, evenly spaced in log(x).

    Args:
        values: positive numbers (M's nonzero eigenvalues), any shape; non-finite and
            non-positive ones are ignored; at least one positive finite value.
        n_bins: bins before the split that isolates the largest value.

    Returns:
        float64 edges, strictly increasing, from the smallest to the largest value.
    """
    sorted_values = _finite(values)
    sorted_values = sorted_values[sorted_values > 0]
    if sorted_values.size == 0:
        raise ValueError("log_edges needs at least one positive finite value")
    return _edges_in(sorted_values, np.log, np.exp, n_bins)


def spectrum_histogram(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(counts, edges)`` of the finite `values` within `edges` (``np.histogram``: each bin
    half-open, the last one closed), the pair ``wandb.Histogram(np_histogram=...)`` takes."""
    array = np.asarray(values, dtype=np.float64).ravel()
    counts, edges = np.histogram(array[np.isfinite(array)], bins=edges)
    return counts, edges
