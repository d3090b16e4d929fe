"""The named solver thresholds at their boundaries."""

from __future__ import annotations

from sgd_dynamics.curvature.thresholds import (
    DENSE_GRAM_MAX,
    DENSE_MAX_PARAMS,
    KEEP_GRAPHS_MAX_CHUNKS,
    gram_solved_densely,
    keeps_gradient_graphs,
    method_for,
)


def test_thresholds_at_their_boundaries() -> None:
    assert method_for(DENSE_MAX_PARAMS, "auto") == "dense"
    assert method_for(DENSE_MAX_PARAMS + 1, "auto") == "iterative"
    assert method_for(1, "iterative") == "iterative"
    assert keeps_gradient_graphs(KEEP_GRAPHS_MAX_CHUNKS * 100, 100)
    assert not keeps_gradient_graphs(KEEP_GRAPHS_MAX_CHUNKS * 100 + 1, 100)
    assert gram_solved_densely(DENSE_GRAM_MAX, 15)
    assert not gram_solved_densely(DENSE_GRAM_MAX + 1, 15)
    assert gram_solved_densely(DENSE_GRAM_MAX + 1, DENSE_GRAM_MAX + 1)  # k >= n: every pair
