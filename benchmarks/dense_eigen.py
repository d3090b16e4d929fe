"""Benchmark of the dense method's eigendecomposition: all eigenvalues and the top-k vectors.

Usage:
    python benchmarks/dense_eigen.py                    # P = 1000, 2000, 3000; 3 rounds
    python benchmarks/dense_eigen.py --quick            # smoke run: P = 200, 400; 1 round

`dense.eigenvalues_and_top_vectors` needs, for each P×P matrix of the dense method (H_f, and M
when it does not go through the Gram matrix), all P eigenvalues and the eigenvectors of the k
largest. Rows, each the median of interleaved rounds on one thread (the dense method's default,
`dense_threads=1`), on seeded symmetric matrices shaped like a Hessian (a few large outliers
over a bulk of both signs), k = 15:

    scipy eigh x2 (baseline): scipy.linalg.eigh without vectors (all values), then with
        subset_by_index for the top k: two tridiagonal reductions, the fallback path.
    lapack top (this project): `dense._lapack_top`, one tridiagonal reduction (sytrd) for both,
        sterf for all values, stemr for the k vectors on the tridiagonal, back-transformed by
        torch.ormqr.
    scipy eigh all vectors: one scipy.linalg.eigh with every eigenvector, then the top k.
    torch eigh: torch.linalg.eigh with every eigenvector (the GPU path).

"x base" is the baseline's time over the row's (> 1: faster); "max relerr" compares the row's
top-k eigenvalues with the baseline's, "vec err" is 1 - the smallest |cosine| between matching
eigenvectors (0 when they agree; near-multiple eigenvalues are avoided by the construction).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

from sgd_dynamics.curvature.snapshot.dense import _lapack_top
from sgd_dynamics.threads import limit_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import machine, write_results  # noqa: E402

K = 15
Result = tuple[np.ndarray, np.ndarray, np.ndarray]  # all values ascending, top-k, (P, k) vectors


def hessian_like(p: int, seed: int) -> np.ndarray:
    """Symmetric (p, p) float64: k well separated outliers over a bulk of both signs."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((p, p)))
    bulk = rng.standard_normal(p) * 1e-2
    bulk[: 2 * K] = np.geomspace(10.0, 0.1, 2 * K)
    return (basis * bulk) @ basis.T


def scipy_twice(a: np.ndarray) -> Result:
    p = a.shape[0]
    values = scipy.linalg.eigh(a, eigvals_only=True, check_finite=False)
    top, vectors = scipy.linalg.eigh(a, subset_by_index=[p - K, p - 1])
    return values, top[::-1], vectors[:, ::-1]


def lapack_top(a: np.ndarray) -> Result:
    return _lapack_top(a, K)


def scipy_all_vectors(a: np.ndarray) -> Result:
    values, vectors = scipy.linalg.eigh(a, check_finite=False)
    return values, values[-K:][::-1], vectors[:, -K:][:, ::-1]


def torch_eigh(a: np.ndarray) -> Result:
    values, vectors = torch.linalg.eigh(torch.from_numpy(a))
    return values.numpy(), values[-K:].flip(0).numpy(), vectors[:, -K:].flip(1).numpy()


PATHS: dict[str, Callable[[np.ndarray], Result]] = {
    "scipy eigh x2 (baseline)": scipy_twice,
    "lapack top (this project)": lapack_top,
    "scipy eigh all vectors": scipy_all_vectors,
    "torch eigh": torch_eigh,
}
ROW = "{:>5} {:<26} {:>9} {:>7} {:>10} {:>9}"


def measure(a: np.ndarray, rounds: int) -> dict[str, tuple[float, Result]]:
    """Median seconds and the last result of each path, rounds interleaved (order alternating)."""
    times: dict[str, list[float]] = {name: [] for name in PATHS}
    results: dict[str, Result] = {}
    names = list(PATHS)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            results[name] = PATHS[name](a.copy())
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), results[name]) for name in PATHS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="P = 200, 400; one round")
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    sizes = args.sizes or ([200, 400] if args.quick else [1000, 2000, 3000])
    rounds = args.rounds or (1 if args.quick else 3)
    print(ROW.format("P", "path", "seconds", "x base", "max relerr", "vec err"), flush=True)
    where, rows = machine(), []
    with limit_threads(1):
        for p in sizes:
            measured = measure(hessian_like(p, seed=p), rounds)
            base_seconds, (_, base_top, base_vectors) = measured["scipy eigh x2 (baseline)"]
            for name, (seconds, (values, top, vectors)) in measured.items():
                err = float(np.max(np.abs(top - base_top) / np.abs(base_top)))
                cosines = np.abs(np.sum(vectors * base_vectors, axis=0))
                assert values.shape == (p,)
                rows.append(
                    {
                        "P": p,
                        "path": name,
                        "seconds": seconds,
                        "speedup_vs_baseline": base_seconds / seconds,
                        "max_relerr": err,
                        "vec_err": float(1.0 - cosines.min()),
                    }
                )
                print(
                    ROW.format(
                        p,
                        name,
                        f"{seconds:.3f}",
                        f"{base_seconds / seconds:.2f}",
                        f"{err:.1e}",
                        f"{1.0 - cosines.min():.1e}",
                    ),
                    flush=True,
                )
    if not args.quick:  # a smoke run is not a result
        settings = {"sizes": sizes, "rounds": rounds, "k": K, "threads": 1}
        print(f"# wrote {write_results('dense_eigen', rows, settings, where)}")


if __name__ == "__main__":
    main()
