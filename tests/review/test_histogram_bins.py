"""The histogram bins of the wandb spectra: for generated spectra (a bulk near 0 and a few
outliers, of either sign), the largest value sits alone in its bin, every value falls in a bin,
the edges increase, and the bulk spreads over several bins."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sgd_dynamics.wandb_io.histogram_bins import log_edges, spectrum_histogram, symlog_edges

magnitudes = st.floats(min_value=1e-12, max_value=1e12)


@st.composite
def spectra(draw, positive: bool):
    """A bulk of n values within `bulk` of 0 (a share exactly 0 unless positive), and 1-5
    outliers between 1x and 1e4x `scale`, the largest of them strictly the largest."""
    scale = draw(magnitudes)
    bulk = scale * draw(st.floats(min_value=1e-9, max_value=0.5))
    n = draw(st.integers(min_value=0, max_value=300))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    rng = np.random.default_rng(seed)
    low = 0.0 if positive else -bulk
    values = rng.uniform(low, bulk, n)
    if not positive:
        values[: n // 5] = 0.0
        values = np.concatenate([values, -scale * rng.uniform(1, 1e4, draw(st.integers(0, 3)))])
    else:
        values = values[values > 0]
    outliers = scale * rng.uniform(1, 1e4, draw(st.integers(min_value=1, max_value=5)))
    return np.concatenate([values, outliers])


def check_bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    assert edges.dtype == np.float64 and edges.ndim == 1 and edges.size >= 2
    assert np.all(np.diff(edges) > 0)  # strictly increasing
    counts, _ = spectrum_histogram(values, edges)
    assert counts.sum() == values.size  # every value falls in a bin
    top = values.max()
    (top_bin,) = np.nonzero((edges[:-1] <= top) & (top <= edges[1:]))[0][-1:]
    inside = (values >= edges[top_bin]) & (values <= edges[top_bin + 1])
    assert np.all(values[inside] == top)  # the largest value is alone in its bin
    return counts


@settings(max_examples=100, deadline=None)
@given(spectra(positive=False))
def test_symlog_bins_isolate_the_top_eigenvalue(values):
    check_bins(values, symlog_edges(values))


@settings(max_examples=100, deadline=None)
@given(spectra(positive=True))
def test_log_bins_isolate_the_top_eigenvalue(values):
    check_bins(values, log_edges(values))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50))
def test_any_values_fall_in_increasing_bins(values):
    values = np.asarray(values)
    edges = symlog_edges(values)
    assert np.all(np.diff(edges) > 0)
    assert spectrum_histogram(values, edges)[0].sum() == values.size
    positive = values[values > 0]
    if positive.size:
        edges = log_edges(positive)
        assert np.all(np.diff(edges) > 0)
        assert spectrum_histogram(positive, edges)[0].sum() == positive.size


def test_a_bulk_over_decades_spreads_over_several_bins():
    """A bulk log-uniform over 1e-6..1e-1 with one outlier at 50: linear bins put all of the
    bulk in the first bin; these bins spread it over many."""
    rng = np.random.default_rng(0)
    bulk = 10 ** rng.uniform(-6, -1, 1000) * rng.choice([-1, 1], 1000)
    values = np.append(bulk, 50.0)
    linear, _ = np.histogram(values, bins=64)
    assert linear.max() >= 1000
    counts = check_bins(values, symlog_edges(values))
    assert np.count_nonzero(counts) >= 20 and counts.max() < 0.25 * values.size
    m_counts = check_bins(np.abs(values), log_edges(np.abs(values)))
    assert np.count_nonzero(m_counts) >= 20


def test_no_finite_value_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        symlog_edges(np.array([np.nan]))
    with pytest.raises(ValueError, match="positive"):
        log_edges(np.array([0.0, -1.0]))
