"""Setting the sizes of the thread pools of torch and of the BLAS/OpenMP libraries.

Dense eigendecompositions collapse when their threads outnumber the free cores (a 1000×1000
float64 `eigh` went from 0.3 s on one thread to 9-16 s on two threads beside another busy
process). `apply_threads` sizes every pool of the process once for a run; `limit_threads` caps
them inside a block (dense linear algebra) and restores them afterwards.

Whether idle OpenMP threads spin or sleep (`OMP_WAIT_POLICY`) is read once, when torch loads its
OpenMP library: entry points set it before importing torch (see train.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_limits


def apply_threads(n_threads: int) -> None:
    """Size this process's pools to `n_threads`: torch's intra-op pool (its OpenMP and MKL
    threads), its inter-op pool (torch allows that only before the pool's first use, so a later
    job of a sweep in the same process keeps the first job's), and the BLAS/OpenMP libraries of
    numpy and scipy (threadpoolctl; scipy.linalg is imported so that its BLAS is loaded)."""
    import scipy.linalg  # noqa: F401

    if n_threads < 1:
        raise ValueError(f"the number of threads must be >= 1, got {n_threads}")
    torch.set_num_threads(n_threads)
    if torch.get_num_interop_threads() != n_threads:
        try:
            torch.set_num_interop_threads(n_threads)
        except RuntimeError:
            pass  # already used or set in this process
    threadpool_limits(limits=n_threads)


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
