"""Seeded curvature snapshots written as arrays, and two such sets compared bit for bit.

Usage:
    python benchmarks/compare_snapshots.py write DIR      # the snapshots of the code imported
    python benchmarks/compare_snapshots.py compare A B    # 0 differing arrays: exit status 0

`write` computes `Spectra.to_arrays()` of a fixed set of snapshots with the `sgd_dynamics`
found on PYTHONPATH and stores them in DIR/snapshots.npz: the dense method, the iterative method
in float32 and float64 (each M route, H_p by solve and by Rayleigh-Ritz), densities (dense and
iterative), the DDP route (2 processes, gloo: the iterative method with densities and the dense
method, every rank checked equal) and a warm start (a second snapshot of a perturbed model,
started from the first). Run it once per version of the code (e.g. PYTHONPATH pointing at a
worktree of another commit), then `compare` the two folders: arrays are compared bitwise, NaNs
equal; the wall-clock timings (`seconds`, `*_seconds`) are left out, they differ from run to run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from sgd_dynamics.curvature import SpectraOptions, compute_spectra

try:  # the module holding the DDP reduction moved with the engine's layout
    from sgd_dynamics.curvature.operators.distributed import default_reduction
except ImportError:
    from sgd_dynamics.curvature.distributed import default_reduction

FILE = "snapshots.npz"
N_SAMPLES = 24
BATCH = 6


def problem(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """An MLP 6-8-8-4 (P = 164) and n = 24 Gaussian samples of 4 classes, from `seed`."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 4))
    inputs = torch.randn(N_SAMPLES, 6)
    targets = torch.randint(0, 4, (N_SAMPLES,))
    return model, inputs, targets


def arrays(prefix: str, spectra) -> dict[str, np.ndarray]:
    """`to_arrays()` under `prefix/`, without the timings."""
    return {
        f"{prefix}/{key}": value
        for key, value in spectra.to_arrays().items()
        if not key.endswith("seconds")
    }


def single_process() -> dict[str, np.ndarray]:
    """The snapshots of one process."""
    model, x, y = problem()
    out: dict[str, np.ndarray] = {}

    def snap(name: str, warm_start=None, **settings):
        spectra = compute_spectra(
            model,
            x,
            y,
            options=SpectraOptions(**settings),
            batch_size=BATCH,
            warm_start=warm_start,
        )
        out.update(arrays(name, spectra))
        return spectra

    snap("dense", k=5, method="dense")
    snap("dense_gram", k=5, method="dense", memory_budget=1 << 20)
    snap("dense_f32", k=5, method="dense", dtype=torch.float32)
    for dtype in ("float32", "float64"):
        for route in ("auto", "linear", "dense", "operator"):
            snap(f"iterative_{dtype}_{route}", k=5, method="iterative", dtype=dtype, m_route=route)
        snap(f"iterative_{dtype}_ritz", k=5, method="iterative", dtype=dtype, hp_method="ritz")
        snap(f"iterative_{dtype}_nohp", k=5, method="iterative", dtype=dtype, hp_method="none")
    snap("densities_dense", k=5, method="dense", density=True)
    for route in ("auto", "operator"):
        snap(f"densities_iterative_{route}", k=5, method="iterative", density=True, m_route=route)
    first = snap("warm_first", k=5, method="iterative")
    with torch.no_grad():  # a nearby model: one small step
        for p in model.parameters():
            p.add_(1e-3 * torch.randn_like(p))
    snap("warm_second", warm_start=first, k=5, method="iterative")
    snap("warm_second_cold", k=5, method="iterative")
    return out


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        reduction = default_reduction()
        assert reduction is not None
        model, x, y = problem()
        out: dict[str, np.ndarray] = {}
        for name, settings in (
            ("ddp_iterative", dict(method="iterative", density=True)),
            ("ddp_iterative_operator", dict(method="iterative", m_route="operator")),
            ("ddp_dense", dict(method="dense", density=True)),
        ):
            spectra = compute_spectra(
                model,
                x,
                y,
                options=SpectraOptions(k=5, **settings),
                batch_size=BATCH,
                distributed=reduction,
            )
            out.update(arrays(name, spectra))
        np.savez(Path(out_dir) / f"rank{rank}.npz", **out)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def distributed(world: int = 2) -> dict[str, np.ndarray]:
    """The snapshots of `world` processes (gloo), after checking every rank got the same."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_ddp_worker, args=(world, f"{tmp}/init", tmp), nprocs=world, join=True)
        ranks = [dict(np.load(f"{tmp}/rank{r}.npz")) for r in range(world)]
    for other in ranks[1:]:
        differing = differences(ranks[0], other)
        if differing:
            raise SystemExit(f"error: the ranks disagree on {', '.join(differing)}")
    return ranks[0]


def differences(first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> list[str]:
    """Names of the arrays that are not bitwise equal (NaNs equal), or missing on one side."""
    out = sorted(set(first) ^ set(second))
    for key in sorted(set(first) & set(second)):
        a, b = first[key], second[key]
        if a.shape != b.shape or a.dtype != b.dtype or a.tobytes() != b.tobytes():
            if not (a.shape == b.shape and np.array_equal(a, b, equal_nan=True)):
                out.append(key)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write", help="compute the snapshots and store them in DIR")
    write.add_argument("dir", type=Path)
    compare = sub.add_parser("compare", help="compare the snapshots of two folders")
    compare.add_argument("first", type=Path)
    compare.add_argument("second", type=Path)
    args = parser.parse_args()
    if args.command == "write":
        torch.set_num_threads(1)
        out = single_process()
        out.update(distributed())
        args.dir.mkdir(parents=True, exist_ok=True)
        np.savez(args.dir / FILE, **out)
        print(f"{len(out)} arrays written to {args.dir / FILE}")
        return 0
    first, second = (dict(np.load(d / FILE)) for d in (args.first, args.second))
    differing = differences(first, second)
    for key in differing:
        print(f"differs: {key}")
    print(f"{len(differing)} of {len(set(first) | set(second))} arrays differ")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
