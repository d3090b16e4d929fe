"""The solver choices that the size of a snapshot steers, in one place, each with what it trades.

n: samples of the snapshot (per process under DDP for the products), P: parameters, k: eigenpairs
asked for. The figures behind the constants come from `benchmarks/` (spectra.py, dense_eigen.py,
density.py), not from the tests.
"""

from __future__ import annotations

import math

from .choices import Method

__all__ = [
    "DENSE_MAX_PARAMS",
    "MAX_CHUNK_SAMPLES",
    "KEEP_GRAPHS_MAX_CHUNKS",
    "DENSE_GRAM_MAX",
    "GRAM_BLOCK_SIZE",
    "method_for",
    "keeps_gradient_graphs",
    "dense_m_through_gram",
    "gram_solved_densely",
    "RITZ_MAX_RESIDUAL",
]

# hp_method="ritz": a Ritz pair (θ, v) of the symmetric H_p with relative residual
# ||H_p v - θ v|| <= δ ||H_p|| has an eigenvalue of H_p within δ ||H_p|| of θ; above this δ the
# estimates are flagged (warned or raised per on_nonconvergence), naming hp_method="solve".
RITZ_MAX_RESIDUAL = 1e-2

# method="auto": the dense method up to this P. It holds three P×P matrices (H_f, M, H_p: 72 MB
# each at P = 3000 in float64) and runs O(P³) eigendecompositions for every eigenvalue; above it
# the iterative method's matrix-free products (O(n·P) each) and O(P·k) vectors cost less.
DENSE_MAX_PARAMS = 3000

# Samples per forward/backward pass by default (`operators.default_chunk_size`): all of them up
# to this many, so small data sets take one pass; larger ones are cut to bound the activations
# and gradient graphs held at once (memory grows with the chunk, passes with n / chunk).
MAX_CHUNK_SAMPLES = 2048

# Through all the H_f products of an iterative snapshot the gradient graphs of the data chunks
# are kept when the data are at most this many chunks: a product then backpropagates through the
# kept graphs instead of rebuilding them (no forward pass), for the memory of this many chunks'
# graphs.
KEEP_GRAPHS_MAX_CHUNKS = 4

# Up to this n (and whenever k >= n) the n×n Gram matrix K is solved by a dense eigh (O(n³),
# every eigenpair) rather than by Lanczos (O(n²) per product, a few k products): below it the
# dense solve is the cheaper of the two and needs no convergence check.
DENSE_GRAM_MAX = 400

# Vectors per product with K in its Lanczos solve: one product reads all n² entries of K
# whatever the block width, so a block of about k vectors costs little more than one vector and
# cuts the number of passes over K.
GRAM_BLOCK_SIZE = 16


def method_for(n_params: int, method: str, dense_max_params: int = DENSE_MAX_PARAMS) -> str:
    """The method a snapshot runs.

    Args:
        n_params: P.
        method: a `Method` value.
        dense_max_params: the largest P of the dense method under "auto".

    Returns:
        `method`, or for "auto": "dense" when P <= dense_max_params, else "iterative".
    """
    if method != Method.AUTO:
        return method
    return Method.DENSE.value if n_params <= dense_max_params else Method.ITERATIVE.value


def keeps_gradient_graphs(n_samples: int, chunk_size: int) -> bool:
    """Whether a snapshot keeps its chunks' gradient graphs.

    Args:
        n_samples: n (per process under DDP).
        chunk_size: samples per chunk.

    Returns:
        True when the data are at most KEEP_GRAPHS_MAX_CHUNKS chunks.
    """
    return math.ceil(n_samples / chunk_size) <= KEEP_GRAPHS_MAX_CHUNKS


def dense_m_through_gram(n_samples: int, n_params: int, itemsize: int, memory_budget: int) -> bool:
    """Whether the dense method takes M's spectrum from the n×n Gram matrix.

    The Gram matrix is the smaller eigenproblem when n < P: its nonzero eigenvalues are M's, the
    other P - n are 0; otherwise the P×P eigendecomposition of M is used.

    Args:
        n_samples, n_params: n and P.
        itemsize: bytes per number of the computation dtype.
        memory_budget: bytes G (n×P) may take.

    Returns:
        True when n < P and G fits the budget.
    """
    return n_samples < n_params and n_samples * n_params * itemsize <= memory_budget


def gram_solved_densely(n_samples: int, k: int) -> bool:
    """Whether the top-k of an n×n Gram matrix comes from a dense eigh.

    Args:
        n_samples: n.
        k: eigenvalues wanted.

    Returns:
        True when k >= n or n <= DENSE_GRAM_MAX, else False (a Lanczos solve).
    """
    return k >= n_samples or n_samples <= DENSE_GRAM_MAX
