"""Cost and accuracy of the spectral densities of H_f, M and H_p (sgd_dynamics.curvature.density).

Usage:
    python benchmarks/density.py cost                 # MNIST-sized MLP, n = 2000, float32
    python benchmarks/density.py accuracy             # error table for several (probes, steps)
    python benchmarks/density.py smoothing            # L1 error of the smoothed density
    python benchmarks/density.py cost --quick         # smoke run, a few seconds

cost: MLP 784-100-100-10 (P = 89,610) on seeded 10-class Gaussian-mixture data, n = 2000 spectral
    samples, float32, trained 100 SGD steps. Baseline: one full-data gradient pass (loss and
    gradient over the n samples), measured in the same run: the median of 5 passes before
    each timed snapshot, so that both see the same load on a shared machine. The density
    snapshot: per-sample gradient factors, the Gram matrix K (`gram_spectrum.snapshot_gram`, as
    in `compute_spectra`) and all its eigenvalues (M exactly),
    SLQ of H_f deflated by its top-15 and of H_p deflated by its top/bottom-15 (the outliers
    come from a solve made beforehand, as in a spectral snapshot, and are not counted), and the
    smoothed densities; the H_f products go through the chunks' kept gradient graphs, as in a
    snapshot. Medians of --repeats runs; the ratio is the density snapshot's time over the
    gradient pass's. The same measurement is the density row of
    `python benchmarks/spectra.py --workload density` (`measure_cost`).
accuracy: the two models of tests/curvature/density/test_densities.py (MLP 20-32-10 on Gauss-10; MLP
    12-24-24-5 tanh on a 5-class Gauss-10 variant), float64, at SGD steps 0, 50 and 400: the worst
    over 3 probe seeds of W1(estimate, exact) / (λmax(H_f) - λmin(H_f)) for H_f and H_p, with the
    outliers merged in (top-15 of H_f; top/bottom-15 of H_p, exact eigenpairs of the dense
    matrices; none with --no-outliers), against all P eigenvalues of the dense matrices.
smoothing: on the first model at the same steps (m = 4 and 8, q = 40, 3 seeds), the worst L1
    distance ∫|ρ_estimate - ρ_exact| dλ between the estimated and the exact density smoothed
    alike, for several thresholds τ (fractions of H_f's spread) and widths σ.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sgd_dynamics.curvature import SpectraOptions, compute_spectra
from sgd_dynamics.curvature.density import (
    DensitySettings,
    Outliers,
    SpectralMeasure,
    relative_w1,
    smoothed_density,
    spectral_densities,
    symlog_grid,
)
from sgd_dynamics.curvature.gram import gram_eigenvalues, snapshot_gram
from sgd_dynamics.curvature.operators import CurvatureOperators, FunctionalModel
from sgd_dynamics.curvature.operators.per_sample import gradient_factors
from sgd_dynamics.curvature.snapshot.dense import hessian_matrix, second_moment_matrix
from sgd_dynamics.data.gauss10 import make_gauss10
from sgd_dynamics.models import MLP

K = 15


def median_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def mixture_mlp(widths: tuple[int, ...], n: int, sgd_steps: int, seed: int = 0):
    """An MLP with these widths trained by SGD (batch 128, lr 0.05) on n Gaussian-mixture
    samples (10 classes, means of norm about 3)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    d, classes = widths[0], widths[-1]
    means = torch.randn(classes, d, generator=gen) * (3.0 / d**0.5)
    y = torch.randint(0, classes, (n,), generator=gen)
    x = means[y] + torch.randn(n, d, generator=gen)
    model = MLP(d, classes, depth=len(widths) - 2, width=widths[1])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(sgd_steps):
        batch = torch.randint(0, n, (min(128, n),), generator=gen)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
        optimizer.step()
    return model, x, y


@dataclass
class DensityCost:
    """One density snapshot's cost against one full-data gradient pass of the same run.

    t_grad: median of the gradient passes (5 before each snapshot); t_density: median of the
    snapshots; parts: median seconds of its two parts; *_columns: operator columns applied."""

    widths: tuple[int, ...]
    n: int
    n_params: int
    settings: DensitySettings
    device: str
    t_grad: float
    t_density: float
    parts: dict[str, float]
    hf_columns: int
    mt_columns: int
    hp_to_minus_hf: float


def measure_cost(quick: bool, repeats: int, device: str) -> DensityCost:
    """The cost workload (module docstring): the density snapshot as `compute_spectra` makes it
    (M's K through `snapshot_gram`), timed between rounds of gradient passes."""
    widths, n = ((784, 100, 100, 10), 2000) if not quick else ((784, 30, 30, 10), 200)
    model, x, y = mixture_mlp(widths, n, 100 if not quick else 10)
    model, x, y = model.to(device), x.to(device), y.to(device)
    settings = DensitySettings(steps=40 if not quick else 8)
    solved = compute_spectra(
        model,
        x,
        y,
        SpectraOptions(k=K, method="iterative", dtype=torch.float32, on_nonconvergence="ignore"),
    )
    fm = FunctionalModel(model, torch.float32)
    ops = CurvatureOperators(fm, x.float(), y)
    sync = torch.cuda.synchronize if device.startswith("cuda") else lambda: None

    def gradient_pass() -> None:
        ops.loss_gradient()
        sync()

    gradient_pass()
    grad_times: list[float] = []
    hf_out = Outliers(solved.hf_top, solved.hf_vecs)
    hp_out = Outliers(
        np.concatenate([solved.hp_top, solved.hp_bottom]),
        torch.cat([solved.hp_top_vecs, solved.hp_bottom_vecs], dim=1),
    )
    parts: dict[str, list[float]] = {"M (factors, K, eigvalsh)": [], "SLQ H_f and H_p": []}

    def snapshot():
        # gradient passes interleaved with the snapshots: both see the same load of the machine
        grad_times.append(median_seconds(gradient_pass, 5)[0])
        start = time.perf_counter()
        factors = gradient_factors(fm, ops.inputs, ops.targets, ops.chunk_size, 1 << 32, "auto")
        ops.gradients = factors
        values = gram_eigenvalues(snapshot_gram(ops, factors))
        sync()
        middle = time.perf_counter()
        with ops.kept_gradient_graphs():
            result = spectral_densities(
                ops.hf,
                fm.n_params,
                m=ops.m,
                gram_values=values,
                hf_outliers=hf_out,
                hp_outliers=hp_out,
                settings=settings,
                dtype=torch.float32,
                device=device,
            )
        sync()
        parts["M (factors, K, eigvalsh)"].append(middle - start)
        parts["SLQ H_f and H_p"].append(time.perf_counter() - middle)
        return result

    t_density, result = median_seconds(snapshot, repeats)
    return DensityCost(
        widths=widths,
        n=n,
        n_params=fm.n_params,
        settings=settings,
        device=device,
        t_grad=statistics.median(grad_times),
        t_density=t_density,
        parts={name: statistics.median(times) for name, times in parts.items()},
        hf_columns=settings.probes * result.hf_products,
        mt_columns=settings.probes * result.mt_products,
        hp_to_minus_hf=result.hp_to_minus_hf,
    )


def run_cost(quick: bool, repeats: int, device: str) -> None:
    cost = measure_cost(quick, repeats, device)
    settings, t_grad = cost.settings, cost.t_grad
    print(
        f"model MLP {'-'.join(map(str, cost.widths))}, P = {cost.n_params}, n = {cost.n}, "
        f"float32, device {device}, probes {settings.probes}, steps {settings.steps}, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"{'quantity':<36}{'seconds':>10}{'x t_grad':>10}")
    print(f"{'one full-data gradient pass':<36}{t_grad:10.4f}{1.0:10.1f}")
    for name, seconds in cost.parts.items():
        print(f"{'  ' + name:<36}{seconds:10.4f}{seconds / t_grad:10.1f}")
    t_density = cost.t_density
    print(f"{'density snapshot (all three)':<36}{t_density:10.4f}{t_density / t_grad:10.1f}")
    print(
        f"H_f columns {cost.hf_columns} (H_f SLQ and H_p SLQ), M columns {cost.mt_columns}; "
        f"W1(H_p, -H_f) / spread = {cost.hp_to_minus_hf:.4f}"
    )


def gauss10_snapshots(name: str, steps=(0, 50, 400)):
    """(step, model) of the two accuracy models (float64), trained by SGD (batch 5, lr 0.1)."""
    data_args, model_args = {
        "gauss10 20-32-10": (dict(input_dim=20, num_classes=10), dict(depth=1, width=32)),
        "12-24-24-5 tanh": (
            dict(input_dim=12, num_classes=5, n_train=60),
            dict(depth=2, width=24, activation="tanh"),
        ),
    }[name]
    data = make_gauss10(0, **data_args)
    x, y = torch.tensor(data.x_train, dtype=torch.float64), torch.tensor(data.y_train)
    torch.manual_seed(0)
    model = MLP(data_args["input_dim"], data_args["num_classes"], **model_args).double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(0)
    for step in range(max(steps) + 1):
        if step in steps:
            fm = FunctionalModel(model, torch.float64)
            hessian = hessian_matrix(CurvatureOperators(fm, x, y))
            yield step, hessian, second_moment_matrix(fm, x, y, x.shape[0])
        batch = torch.randint(0, x.shape[0], (5,), generator=gen)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
        optimizer.step()


def snapshot_estimates(name: str, grid: list[tuple[int, int]], seeds: int, outliers: bool):
    """(step, exact H_f and H_p measures, spread, {(m, q): [SpectralDensities per seed]})."""
    for step, hessian, moment in gauss10_snapshots(name):
        hf_values, hf_vectors = torch.linalg.eigh(hessian)
        hp_values, hp_vectors = torch.linalg.eigh(moment - hessian)
        spread = float(hf_values[-1] - hf_values[0])
        exact = {
            "hf": SpectralMeasure.from_eigenvalues(hf_values.numpy()),
            "hp": SpectralMeasure.from_eigenvalues(hp_values.numpy()),
        }
        hf_out = Outliers(hf_values[-K:], hf_vectors[:, -K:]) if outliers else None
        hp_out = None
        if outliers:
            hp_out = Outliers(
                torch.cat([hp_values[-K:], hp_values[:K]]),
                torch.cat([hp_vectors[:, -K:], hp_vectors[:, :K]], dim=1),
            )
        estimates = {
            (probes, steps): [
                spectral_densities(
                    lambda v, h=hessian: h @ v,
                    hessian.shape[0],
                    m=lambda v, mm=moment: mm @ v,
                    hf_outliers=hf_out,
                    hp_outliers=hp_out,
                    settings=DensitySettings(probes=probes, steps=steps, seed=seed),
                )
                for seed in range(seeds)
            ]
            for probes, steps in grid
        }
        yield step, exact, spread, estimates


def run_accuracy(grid: list[tuple[int, int]], seeds: int, outliers: bool) -> None:
    print(f"{'model':<18}{'step':>5}  " + "".join(f"{f'm={m},q={q}':>18}" for m, q in grid))
    print(f"{'':<25}" + "".join(f"{'H_f / H_p':>18}" for _ in grid))
    for name in ("gauss10 20-32-10", "12-24-24-5 tanh"):
        for step, exact, spread, estimates in snapshot_estimates(name, grid, seeds, outliers):
            cells = []
            for results in estimates.values():
                worst = [
                    max(relative_w1(getattr(r, op).measure, exact[op], spread) for r in results)
                    for op in ("hf", "hp")
                ]
                cells.append(f"{worst[0]:.1e} / {worst[1]:.1e}")
            print(f"{name:<18}{step:>5}  " + "".join(f"{c:>18}" for c in cells), flush=True)


def run_smoothing(seeds: int) -> None:
    fractions, widths = (1e-4, 1e-3, 1e-2, 3e-2), (0.05, 0.1, 0.2, 0.3, 0.5)
    worst = np.zeros((len(fractions), len(widths)))
    for _, exact, spread, estimates in snapshot_estimates(
        "gauss10 20-32-10", [(4, 40), (8, 40)], seeds, True
    ):
        for i, fraction in enumerate(fractions):
            tau = fraction * spread
            for j, width in enumerate(widths):
                for op in ("hf", "hp"):
                    low, high = exact[op].support
                    x = symlog_grid(low - 0.1 * spread, high + 0.1 * spread, tau, 4000)
                    _, reference = smoothed_density(exact[op], tau, width, x)
                    for results in estimates.values():
                        for r in results:
                            _, rho = smoothed_density(getattr(r, op).measure, tau, width, x)
                            l1 = float(np.trapezoid(np.abs(rho - reference), x))
                            worst[i, j] = max(worst[i, j], l1)
    print(f"{'tau / spread':<14}" + "".join(f"{f'sigma={w:g}':>12}" for w in widths))
    for fraction, row in zip(fractions, worst, strict=True):
        print(f"{fraction:<14g}" + "".join(f"{value:12.3f}" for value in row))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("cost", "accuracy", "smoothing"))
    parser.add_argument("--quick", action="store_true", help="cost: tiny sizes, a smoke run")
    parser.add_argument("--repeats", type=int, default=3, help="cost: timed repeats (median)")
    parser.add_argument("--device", default="cpu", help="cost: cpu or cuda")
    parser.add_argument("--seeds", type=int, default=3, help="probe seeds (the worst is shown)")
    parser.add_argument(
        "--no-outliers", action="store_true", help="accuracy: SLQ without merged outliers"
    )
    args = parser.parse_args(argv)
    if args.what == "cost":
        run_cost(args.quick, args.repeats, args.device)
    elif args.what == "smoothing":
        run_smoothing(args.seeds)
    else:
        grid = [(2, 20), (4, 20), (4, 40), (8, 40), (4, 80), (16, 40)]
        run_accuracy(grid, args.seeds, not args.no_outliers)


if __name__ == "__main__":
    sys.exit(main())
