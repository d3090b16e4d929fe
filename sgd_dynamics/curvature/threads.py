"""Thread limits around dense linear algebra.

Dense eigendecompositions collapse when their threads outnumber the free cores (a 1000×1000
float64 `eigh` went from 0.3 s on one thread to 9-16 s on two threads beside another busy
process, measured on a 2-core machine). `limit_threads` caps both torch's intra-op pool and
the BLAS/OpenMP pools of numpy/scipy (threadpoolctl) inside a block and restores them afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_limits

__all__ = ["limit_threads"]


@contextmanager
def limit_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with at most `n_threads` threads (None: leave the pools as they are)."""
    if n_threads is None:
        yield
        return
    if n_threads < 1:
        raise ValueError(f"the number of threads must be >= 1 or None, got {n_threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(min(n_threads, previous))
    try:
        with threadpool_limits(limits=n_threads):
            yield
    finally:
        torch.set_num_threads(previous)
