"""Benchmark of curvature snapshots against curvlinops + scipy eigsh and PyHessian.

Usage:
    python benchmarks/spectra.py --workload all        # gauss10, mnist, cifar, density (minutes)
    python benchmarks/spectra.py --quick               # smoke run, a few seconds
    python benchmarks/spectra.py --only-hp --repeats 5 # mnist: full-snapshot (H_p) rows, the H_p
                                                       # solve's cost split, H_p starts (minutes)
    python benchmarks/spectra.py --workload density --repeats 5   # density snapshot cost

Workloads (seeded; Gaussian-mixture data, 10 classes, MLPs trained by a few hundred SGD steps so
the snapshot is not taken at initialisation):
    gauss10: MLP 20-32-10, n = 100, all P eigenvalues (dense snapshot, float64 default).
    mnist:   MLP 784-100-100-10, n = 5000, float32: the cost of one H_f product (per vector:
             single, in blocks, with and without the chunks' gradient graphs kept), then
             top-15 of H_f and M with principal angles
             (hp_method="none"; the acceptance rows) cold, warm from a snapshot 10 SGD steps
             earlier, and warm from the snapshot's own eigenvectors (the ideal start, an upper
             bound on any warm start's gain); the cost of the correctness checks (the fast-route
             self-check and the eigensolvers' multiplicity checks) on the default snapshot (H_p
             solve and traces), before/after side by side in interleaved rounds; then the
             rows with H_p's extremes added; the full default snapshot (H_p solve and traces,
             what the spectral callback computes) with H_p products as one Hessian-vector
             product each against the M - H_f products before them, cold and warm, in
             interleaved rounds with the gradient pass timed in each round.
    cifar:   MLP 3072-200-200-10, n = 5000, float32 snapshot (peak memory).
    density: MLP 784-100-100-10, n = 2000, float32: one density snapshot of H_f, M and H_p
             (docs/densities.md) in gradient passes measured in the same run (`run_density`).
Each workload runs in its own process, so the peak RSS column (resource.getrusage ru_maxrss of
that process, after the row) does not mix workloads. Times are medians of --repeats runs for the
cheap rows, single runs for the expensive ones. "x t_grad" divides by one full-data gradient pass;
"x base" is the named baseline's time over this row's time (> 1: faster than the baseline).
The eigenvalue error is max_i |λ_i - λ_i^ref| / |λ_i^ref| over the top-k of H_f and of M (H_f
only for PyHessian), the reference being dense float64 eigh (gauss10) or this project's solver in
float64 with tol 1e-10 (mnist).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from results import machine, write_results
from torch import nn

from sgd_dynamics.curvature import SpectraOptions, compute_spectra
from sgd_dynamics.curvature.operators import CurvatureOperators, FunctionalModel

WORKLOADS = ("gauss10", "mnist", "cifar", "density")


@dataclass
class Workload:
    name: str
    widths: tuple[int, ...]
    n: int
    k: int
    steps: int


def workload(name: str, quick: bool) -> Workload:
    """The named workload; quick: tiny sizes for a smoke run."""
    if name == "gauss10":
        return Workload(name, (20, 32, 10), 100, 15, 20 if quick else 300)
    if name == "mnist":
        return Workload(
            name,
            (784, 100, 100, 10),
            500 if quick else 5000,
            5 if quick else 15,
            20 if quick else 300,
        )
    if name == "cifar":
        return Workload(name, (3072, 200, 200, 10), 500 if quick else 5000, 5 if quick else 15, 20)
    if name == "density":  # the sizes of benchmarks/density.py cost (`run_density`)
        return Workload(name, (784, 100, 100, 10), 200 if quick else 2000, 15, 10 if quick else 100)
    raise ValueError(f"workload must be one of {WORKLOADS} or 'all', got {name!r}")


def make_problem(w: Workload, seed: int = 0):
    """Seeded MLP and Gaussian-mixture data (10 classes), and an SGD step function."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    d, classes = w.widths[0], w.widths[-1]
    means = torch.randn(classes, d, generator=gen) * (3.0 / d**0.5)
    y = torch.randint(0, classes, (w.n,), generator=gen)
    x = means[y] + torch.randn(w.n, d, generator=gen)
    layers: list[nn.Module] = []
    for a, b in zip(w.widths[:-1], w.widths[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def sgd(steps: int) -> None:
        for _ in range(steps):
            idx = torch.randint(0, w.n, (min(128, w.n),), generator=gen)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()

    return model, x, y, sgd


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def rel_err(values, reference) -> float:
    a, b = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    m = min(len(a), len(b))
    return float(np.max(np.abs(a[:m] - b[:m]) / np.abs(b[:m])))


def curvlinops_eigsh(model, x, y, k: int, tol: float):
    """Top-k of H_f and M (empirical Fisher) with curvlinops operators and scipy eigsh ('LA')."""
    from curvlinops import EFLinearOperator, HessianLinearOperator
    from scipy.sparse.linalg import eigsh

    params = [p for p in model.parameters() if p.requires_grad]
    data = [(x[i : i + 2048], y[i : i + 2048]) for i in range(0, x.shape[0], 2048)]
    loss = nn.CrossEntropyLoss(reduction="mean")
    counts = {"hf": 0, "mt": 0}
    out = {}
    for key, cls in (("hf", HessianLinearOperator), ("mt", EFLinearOperator)):
        op = cls(model, loss, params, data, check_deterministic=False).to_scipy()
        matvec = op.matvec

        def counted(v, _key=key, _mv=matvec):
            counts[_key] += 1
            return _mv(v)

        from scipy.sparse.linalg import LinearOperator

        lin = LinearOperator(op.shape, matvec=counted, dtype=op.dtype)
        values = eigsh(lin, k=k, which="LA", tol=tol, return_eigenvectors=False)
        out[key] = np.sort(values)[::-1]
    return out, counts["hf"] + counts["mt"]


def pyhessian_top(model, x, y, k: int):
    from pyhessian import hessian

    h = hessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False)
    values, _ = h.eigenvalues(top_n=k)
    return np.sort(np.asarray(values, dtype=np.float64))[::-1]


ROW = "{:<8} {:<34} {:>9} {:>9} {:>8} {:>8} {:>10} {:>9}"


def header() -> str:
    return ROW.format(
        "workload", "method", "seconds", "x t_grad", "x base", "matvecs", "max relerr", "peak MiB"
    )


ROWS: list[dict[str, object]] = []  # every printed row, written to benchmarks/results/


def _number(value) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def row(work, method, seconds, t_grad, base, matvecs, err) -> None:
    ratio = f"{base / seconds:.2f}" if base else "-"
    ROWS.append(
        {
            "workload": work,
            "method": method.strip(),
            "seconds": _number(seconds),
            "gradient_passes": _number(seconds / t_grad),
            "speedup_vs_baseline": _number(base / seconds) if base else None,
            "matvecs": _number(matvecs),
            "max_relerr": _number(err),
            "peak_mib": _number(peak_rss_mib()),
        }
    )
    print(
        ROW.format(
            work,
            method,
            f"{seconds:.3f}",
            f"{seconds / t_grad:.1f}",
            ratio,
            "-" if matvecs is None else f"{matvecs:.0f}",
            "-" if err is None else f"{err:.1e}",
            f"{peak_rss_mib():.0f}",
        ),
        flush=True,
    )


def t_grad_of(model, x, y, dtype, repeats: int) -> float:
    ops = CurvatureOperators(FunctionalModel(model, dtype), x.to(dtype), y)
    ops.loss_gradient()
    return timed(ops.loss_gradient, repeats)[0]


def product_rows(w: Workload, model, x, y, t_grad: float, repeats: int) -> None:
    """Seconds per vector of H_f products: one vector rebuilding its chunk's gradient graph, one
    vector and a 16-column block through kept graphs (what snapshots use), a 16-column block by
    vmap of forward-over-reverse (outside kept graphs)."""
    ops = CurvatureOperators(FunctionalModel(model, torch.float32), x.float(), y)
    gen = torch.Generator().manual_seed(0)
    one = torch.randn(ops.n_params, 1, generator=gen)
    block = torch.randn(ops.n_params, 16, generator=gen)
    reps = max(repeats, 5)
    seconds, _ = timed(lambda: ops.hf(one), reps)
    row(w.name, "H_f product, 1 vector, new graph", seconds, t_grad, None, 1, None)
    seconds, _ = timed(lambda: ops.hf(block), reps)
    row(w.name, "H_f product, 16 by vmap (per vec)", seconds / 16, t_grad, None, 16, None)
    with ops.kept_gradient_graphs():
        ops.hf(one)  # builds the graphs
        seconds, _ = timed(lambda: ops.hf(one), reps)
        row(w.name, "H_f product, 1 vector, kept graph", seconds, t_grad, None, 1, None)
        seconds, _ = timed(lambda: ops.hf(block), reps)
        row(w.name, "H_f product, 16 kept (per vec)", seconds / 16, t_grad, None, 16, None)


def snapshot_matvecs(s) -> float:
    """Products with P×P operators (H_f, H_p, and M when it goes through jvp/vjp products);
    products with the n×n Gram matrix are not counted (they are in the diagnostics lines)."""
    d = s.diagnostics
    m_products = d.get("mt_matvecs", 0.0) if s.m_route == "operator" else 0.0
    return sum(d.get(f"{key}_matvecs", 0.0) for key in ("hf", "hp")) + m_products


def run_gauss10(w: Workload, quick: bool, repeats: int) -> None:
    model, x, y, sgd = make_problem(w)
    sgd(w.steps)
    t_grad = t_grad_of(model, x, y, torch.float64, max(repeats, 5))
    row(w.name, "one gradient pass (float64)", t_grad, t_grad, None, None, None)
    ref = compute_spectra(model, x, y, SpectraOptions(k=w.k, method="dense"))
    hf_ref, mt_ref = ref.hf_top, ref.mt_top
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base, (vals, mv) = timed(lambda: curvlinops_eigsh(model, x, y, w.k, 1e-6), repeats)
    err = max(rel_err(vals["hf"], hf_ref), rel_err(vals["mt"], mt_ref))
    row(w.name, "curvlinops+eigsh top-k H_f,M (f32)", base, t_grad, None, mv, err)
    seconds, s = timed(
        lambda: compute_spectra(model, x, y, SpectraOptions(k=w.k, method="dense")), repeats
    )
    err = max(rel_err(s.hf_top, hf_ref), rel_err(s.mt_top, mt_ref))
    row(w.name, "this: dense snapshot (all P, f64)", seconds, t_grad, base, None, err)
    if not quick:
        seconds, vals = timed(lambda: pyhessian_top(model, x, y, w.k), 1)
        row(w.name, "pyhessian top-k H_f (f32)", seconds, t_grad, None, None, rel_err(vals, hf_ref))


def run_mnist(w: Workload, quick: bool, repeats: int) -> None:
    model, x, y, sgd = make_problem(w)
    sgd(w.steps - 10)
    # the acceptance workload: top-k of H_f and M with principal angles (H_p's extremes skipped)
    kw = dict(k=w.k, method="iterative", dtype=torch.float32, tol=1e-4, trace_probes=0)
    kw["hp_method"] = "none"
    full_kw = dict(kw, hp_method="solve", trace_probes=16)  # what the spectral callback computes
    previous = compute_spectra(model, x, y, SpectraOptions(**kw))
    previous_full = None if quick else compute_spectra(model, x, y, SpectraOptions(**full_kw))
    sgd(10)
    t_grad = t_grad_of(model, x, y, torch.float32, max(repeats, 5))
    row(w.name, "one gradient pass (float32)", t_grad, t_grad, None, None, None)
    product_rows(w, model, x, y, t_grad, repeats)
    ref = compute_spectra(
        model,
        x,
        y,
        SpectraOptions(
            k=w.k,
            method="iterative",
            dtype=torch.float64,
            tol=1e-10,
            trace_probes=0,
            hp_method="none",
        ),
    )
    hf_ref, mt_ref = ref.hf_top, ref.mt_top

    def err_of(s) -> float:
        return max(rel_err(s.hf_top, hf_ref), rel_err(s.mt_top, mt_ref))

    chosen = None  # the fastest eigsh tolerance whose error is <= 1e-5 (first, single runs)
    for tol in (1e-3, 1e-5) if not quick else (1e-5,):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seconds, (vals, mv) = timed(lambda t=tol: curvlinops_eigsh(model, x, y, w.k, t), 1)
        err = max(rel_err(vals["hf"], hf_ref), rel_err(vals["mt"], mt_ref))
        row(w.name, f"curvlinops+eigsh tol{tol:.0e} (1 run)", seconds, t_grad, None, mv, err)
        if err <= 1e-5 and (chosen is None or seconds < chosen[1]):
            chosen = (tol, seconds, mv, err)
    # side by side under the same load: rounds of (baseline, cold, warm), medians reported
    rounds = 1 if quick else repeats
    times: dict[str, list[float]] = {"base": [], "cold": [], "warm": []}
    for _ in range(rounds):
        if chosen is not None and not quick:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                seconds, _ = timed(lambda: curvlinops_eigsh(model, x, y, w.k, chosen[0]), 1)
            times["base"].append(seconds)
        seconds, cold = timed(lambda: compute_spectra(model, x, y, SpectraOptions(**kw)), 1)
        times["cold"].append(seconds)
        seconds, warm = timed(
            lambda: compute_spectra(model, x, y, SpectraOptions(**kw), warm_start=previous), 1
        )
        times["warm"].append(seconds)
    base = statistics.median(times["base"]) if times["base"] else (chosen or (0, None))[1]
    cold_s, warm_s = statistics.median(times["cold"]), statistics.median(times["warm"])
    if chosen is not None and times["base"]:
        row(w.name, f"curvlinops+eigsh tol{chosen[0]:.0e} (med {rounds})", base, t_grad, None,
            chosen[2], chosen[3])  # fmt: skip
    row(w.name, f"this: cold, H_f+M+angles (med {rounds})", cold_s, t_grad, base,
        snapshot_matvecs(cold), err_of(cold))  # fmt: skip
    row(w.name, f"this: warm, 10 steps (med {rounds})", warm_s, t_grad, base,
        snapshot_matvecs(warm), err_of(warm))  # fmt: skip
    # the most any warm start can give: starting from this snapshot's own eigenvectors
    seconds, ideal = timed(
        lambda: compute_spectra(model, x, y, SpectraOptions(**kw), warm_start=cold), rounds
    )
    row(w.name, "this: warm, 0 steps (ideal start)", seconds, t_grad, base,
        snapshot_matvecs(ideal), err_of(ideal))  # fmt: skip
    block_kw = dict(kw, block_size=w.k)  # the whole start block at once: best for a close start
    ideal_block_s, ideal_block = timed(
        lambda: compute_spectra(model, x, y, SpectraOptions(**block_kw), warm_start=cold), rounds
    )
    row(w.name, f"this: warm, 0 steps, block {w.k} (ideal)", ideal_block_s, t_grad, base,
        snapshot_matvecs(ideal_block), err_of(ideal_block))  # fmt: skip
    listed = [f"{key} " + ", ".join(f"{t:.2f}" for t in ts) for key, ts in times.items()]
    print("# mnist rounds (s): " + "; ".join(listed))
    print(f"# mnist: cold/warm = {cold_s / warm_s:.2f}, cold/ideal warm = {cold_s / seconds:.2f}"
          f" (block {w.k}: {cold_s / ideal_block_s:.2f})")  # fmt: skip
    for name, s in (("cold", cold), ("warm", warm), ("ideal", ideal), ("ideal block", ideal_block)):
        parts = [f"{key}={value:.3g}" for key, value in s.diagnostics.items()
                 if key.endswith(("_seconds", "_matvecs"))]  # fmt: skip
        print(f"# mnist {name}: " + " ".join(parts))
    check_cost_rows(w, model, x, y, t_grad, rounds)
    if quick:
        return
    seconds, s = timed(
        lambda: compute_spectra(model, x, y, SpectraOptions(**dict(kw, hp_method="ritz"))), 1
    )
    row(w.name, "this: cold, + H_p ritz", seconds, t_grad, base, snapshot_matvecs(s), err_of(s))
    print(f"# mnist: hp_max_residual (ritz) = {s.diagnostics['hp_max_residual']:.2e}")
    hp_rows(w, model, x, y, previous_full, rounds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seconds, vals = timed(lambda: pyhessian_top(model, x, y, w.k), 1)
    row(w.name, "pyhessian top-k H_f", seconds, t_grad, base, None, rel_err(vals, hf_ref))


def check_cost_rows(w: Workload, model, x, y, t_grad: float, rounds: int) -> None:
    """The cost of the correctness checks on the default (spectral callback's) snapshot, cold:
    'before' = block 1, no multiplicity check, no self-check (a solver without the checks);
    'no mult. check' = the defaults with check_steps=0; 'after' = the defaults. Interleaved
    rounds, medians. The self-check's share is its own timing (diagnostics m_self_check_seconds)
    over the default snapshot's; the multiplicity check's is (after - no mult. check) / after."""
    full = dict(k=w.k, method="iterative", dtype=torch.float32, tol=1e-4)
    configs = {
        "before": dict(full, block_size=1, check_steps=0, self_check=False),
        "no mult. check": dict(full, check_steps=0),
        "after": full,
    }
    times: dict[str, list[float]] = {name: [] for name in configs}
    last = {}
    for _ in range(rounds):
        for name, kw in configs.items():
            seconds, last[name] = timed(
                lambda kw=kw: compute_spectra(model, x, y, SpectraOptions(**kw)), 1
            )
            times[name].append(seconds)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    for name in configs:
        s = last[name]
        err = max(
            rel_err(s.hf_top, last["before"].hf_top), rel_err(s.mt_top, last["before"].mt_top)
        )
        row(w.name, f"default snapshot, {name} (med {rounds})", med[name], t_grad, med["before"],
            snapshot_matvecs(s), err)  # fmt: skip
    d = last["after"].diagnostics
    self_check = statistics.median([d["m_self_check_seconds"]])
    check_matvecs = sum(d.get(f"{key}_check_matvecs", 0.0) for key in ("hf", "hp"))
    paired = statistics.median(
        after / before for after, before in zip(times["after"], times["before"], strict=True)
    )
    print(f"# mnist default snapshot (k = {w.k}, float32, H_p solve + traces), cold, medians of "
          f"{rounds} interleaved rounds: before {med['before']:.2f} s, after {med['after']:.2f} s "
          f"(after/before = {med['after'] / med['before']:.2f}; median of the rounds' own "
          f"ratios {paired:.2f})")  # fmt: skip
    print(f"# self-check: {self_check:.3f} s = {self_check / med['after']:.1%} of the snapshot "
          f"(relative difference {d['m_self_check']:.1e}); multiplicity checks: "
          f"{(med['after'] - med['no mult. check']) / med['after']:.1%} of the snapshot "
          f"({check_matvecs:.0f} of {snapshot_matvecs(last['after']):.0f} P-side products, "
          f"{d.get('mt_check_matvecs', 0.0):.0f} products with the Gram matrix)")  # fmt: skip
    print("# rounds (s): " + "; ".join(
        f"{name} " + ", ".join(f"{t:.2f}" for t in ts) for name, ts in times.items()))  # fmt: skip


@contextlib.contextmanager
def hp_as_difference():
    """H_p products as M V - H_f V (the route before the Hessian of Σ p_i / p_i(θ₀))."""
    saved = CurvatureOperators.hp
    CurvatureOperators.hp = CurvatureOperators.hp_difference  # type: ignore[method-assign]
    try:
        yield
    finally:
        CurvatureOperators.hp = saved  # type: ignore[method-assign]


def hp_rows(w: Workload, model, x, y, previous, rounds: int) -> None:
    """The full default snapshot (top-k of H_f and M, angles, the k largest and k smallest of
    H_p converged, traces; float32, tol 1e-4, multiplicity checks on), in interleaved rounds of
    (gradient pass, before cold, after cold, after warm): 'before' makes each H_p product as an M
    and an H_f product, 'after' as one Hessian-vector product; warm starts from `previous`, the
    snapshot 10 SGD steps earlier. Errors: max relative error of hf_top, mt_top, hp_top and
    hp_bottom against this project's solver in float64 (tol 1e-10)."""
    full = dict(k=w.k, method="iterative", dtype=torch.float32, tol=1e-4)
    ref = compute_spectra(
        model,
        x,
        y,
        SpectraOptions(k=w.k, method="iterative", dtype=torch.float64, tol=1e-10, trace_probes=0),
    )
    names = ("hf_top", "mt_top", "hp_top", "hp_bottom")

    def err_of(s) -> float:
        return max(rel_err(getattr(s, name), getattr(ref, name)) for name in names)

    ops = CurvatureOperators(FunctionalModel(model, torch.float32), x.float(), y)
    ops.gradients = None
    probe = torch.randn(ops.n_params, 1, generator=torch.Generator().manual_seed(0))
    configs = {  # before: H_p = M - H_f products; after: one Hessian-vector product each
        "M-H_f, cold": (hp_as_difference, None),
        "1 HVP, cold": (contextlib.nullcontext, None),
        "1 HVP, warm": (contextlib.nullcontext, previous),
    }
    times: dict[str, list[float]] = {name: [] for name in ("t_grad", "hp product", *configs)}
    last = {}
    for _ in range(rounds):
        times["t_grad"].append(t_grad_of(model, x, y, torch.float32, 3))
        with ops.kept_gradient_graphs():
            ops.hp(probe)  # builds the graphs
            times["hp product"].append(timed(lambda: ops.hp(probe), 3)[0])
        for name, (route, start) in configs.items():
            with route():
                seconds, last[name] = timed(
                    lambda st=start: compute_spectra(
                        model, x, y, SpectraOptions(**full), warm_start=st
                    ),
                    1,
                )
            times[name].append(seconds)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    t_grad = med["t_grad"]
    row(w.name, f"one gradient pass (med {rounds})", t_grad, t_grad, None, None, None)
    row(w.name, "H_p product, 1 vector, kept graph", med["hp product"], t_grad, None, 1, None)
    for name in configs:
        s = last[name]
        row(w.name, f"full: H_p {name} (med {rounds})", med[name], t_grad,
            med["M-H_f, cold"], snapshot_matvecs(s), err_of(s))  # fmt: skip
    for name in configs:  # robust to load changing between rounds: each round's own ratios
        passes = statistics.median(a / b for a, b in zip(times[name], times["t_grad"], strict=True))
        speedup = statistics.median(
            a / b for a, b in zip(times["M-H_f, cold"], times[name], strict=True)
        )
        print(f"# {name}: median of the rounds' own figures: {passes:.0f} gradient passes, "
              f"{speedup:.2f}x against M-H_f cold")  # fmt: skip
    s = last["1 HVP, cold"]
    print(f"# mnist full snapshot: hp_top err {rel_err(s.hp_top, ref.hp_top):.1e}, hp_bottom err "
          f"{rel_err(s.hp_bottom, ref.hp_bottom):.1e}; load average "
          + ", ".join(f"{value:.2f}" for value in os.getloadavg()))  # fmt: skip
    print("# full snapshot rounds (s): " + "; ".join(
        f"{name} " + ", ".join(f"{t:.3f}" for t in ts) for name, ts in times.items()))  # fmt: skip
    for name in configs:
        parts = [f"{key}={value:.3g}" for key, value in last[name].diagnostics.items()
                 if key.endswith(("_seconds", "_matvecs"))]  # fmt: skip
        print(f"# {name}: " + " ".join(parts))


def hp_start_rows(w: Workload, model, x, y, previous) -> None:
    """Starts of the H_p solve (which = "both", float32, tol 1e-4, checks on), single runs; the
    products they need (each one Hessian-vector product, whatever the start) decide:
    cold (random vector); the top eigenvectors of H_f and M ([U_f, V_M], summed into the
    Lanczos vector); their Rayleigh-Ritz vectors for H_p (k extra H_f and 2k M products, H_f on
    U_f from the solver's Krylov relation), summed, in 2 blocks (top, bottom), in blocks of k;
    the previous snapshot's H_p vectors (10 SGD steps earlier)."""
    from sgd_dynamics.curvature.gram import second_moment_from_gram
    from sgd_dynamics.curvature.operators.per_sample import gradient_factors
    from sgd_dynamics.curvature.snapshot.arguments import prepare_data
    from sgd_dynamics.curvature.solvers import block_eigsh, rayleigh_ritz

    k, kw = w.k, dict(dtype=torch.float32, tol=1e-4, seed=2)
    fm = FunctionalModel(model, torch.float32)
    ops = CurvatureOperators(fm, *prepare_data(fm, x, y))
    ops.gradients = gradient_factors(fm, ops.inputs, ops.targets, ops.chunk_size, 1 << 30, "auto")
    t_grad = t_grad_of(model, x, y, torch.float32, 5)
    with ops.kept_gradient_graphs():
        hf = block_eigsh(ops.hf, ops.n_params, k, **kw)
        assert hf.images is not None
        gram = ops.gradients.gram().div_(ops.n_samples)
        v_m = second_moment_from_gram(ops.gradients, k, gram=gram, tol=1e-4).vectors
        basis = torch.cat([hf.eigenvectors, v_m], dim=1)
        ritz = rayleigh_ritz(basis, ops.m(basis) - torch.cat([hf.images, ops.hf(v_m)], 1), k)
        top, bottom = ritz.eigenvectors[:, :k], ritz.eigenvectors[:, k:]
        starts = {
            "cold": (None, 1),
            "[U_f, V_M] summed": (basis, 1),
            "Ritz vectors summed": (ritz.eigenvectors, 1),
            "Ritz, 2 blocks": (torch.stack([top.sum(1), bottom.sum(1)], 1), 2),
            f"Ritz, blocks of {k}": (ritz.eigenvectors, k),
            "previous snapshot": (
                torch.cat([previous.hp_top_vecs, previous.hp_bottom_vecs], 1),
                1,
            ),
        }
        for name, (x0, block) in starts.items():
            seconds, result = timed(
                lambda x0=x0, b=block: block_eigsh(
                    ops.hp, ops.n_params, k, "both", x0=x0, block_size=b, **kw
                ),
                1,
            )
            row(w.name, f"H_p start: {name}"[:34], seconds, t_grad, None, result.matvecs, None)
    print(f"# Rayleigh-Ritz start: max relative residual {ritz.max_residual:.1e} (its cost, "
          f"{k} H_f and {2 * k} M products, is not in the rows)")  # fmt: skip


def hp_cost_rows(w: Workload, model, x, y, previous, rounds: int) -> None:
    """Where the H_p solve's time goes: the solve alone (which="both", k, float32, tol
    1e-4, multiplicity check on, seed 2 and kept graphs as in the snapshot), cold and warm from
    `previous`, in interleaved rounds with the gradient pass timed in each. Per row: products
    (main Krylov-Schur run + check), the seconds inside the products and outside them
    (reorthogonalisation, Ritz steps, deflation), each over the round's gradient pass (medians
    of the rounds' own ratios). Then the product counts of the variants measured:
    other start seeds, smaller bases (thick restarts), blocks of 2 and 3."""
    from sgd_dynamics.curvature.snapshot.arguments import prepare_data
    from sgd_dynamics.curvature.solvers import block_eigsh

    k, kw = w.k, dict(dtype=torch.float32, tol=1e-4)
    fm = FunctionalModel(model, torch.float32)
    ops = CurvatureOperators(fm, *prepare_data(fm, x, y))
    spent = [0.0]

    def product(block):
        start = time.perf_counter()
        out = ops.hp(block)
        spent[0] += time.perf_counter() - start
        return out

    x0 = torch.cat([previous.hp_top_vecs, previous.hp_bottom_vecs], 1)
    figures: dict[str, list[tuple[float, float]]] = {"cold": [], "warm": []}
    last = {}
    with ops.kept_gradient_graphs():
        ops.hp(x0[:, :1])  # builds the graphs, as the snapshot's H_p solve finds them
        for _ in range(rounds):
            t_grad = t_grad_of(model, x, y, torch.float32, 3)
            for name, start in (("cold", None), ("warm", x0)):
                spent[0] = 0.0
                seconds, last[name] = timed(
                    lambda st=start: block_eigsh(product, ops.n_params, k, "both", x0=st,
                                                 seed=2, **kw), 1)  # fmt: skip
                figures[name].append((spent[0] / t_grad, (seconds - spent[0]) / t_grad))
        for name, pairs in figures.items():
            r = last[name]
            inside = statistics.median(p for p, _ in pairs)
            outside = statistics.median(o for _, o in pairs)
            print(f"# H_p solve {name} (med {rounds}): {r.matvecs} products ({r.check_matvecs} in "
                  f"the check), {inside + outside:.0f} gradient passes = {inside:.0f} in products "
                  f"({inside / r.matvecs:.2f} each) + {outside:.0f} outside them "
                  f"({outside / r.matvecs:.2f} per product)")  # fmt: skip
        variants = {f"seed {s}": dict(seed=s) for s in (0, 1, 3, 4)}
        variants.update({f"max_basis {b}": dict(seed=2, max_basis=b) for b in (50, 70, 90)})
        variants.update({f"block {b}": dict(seed=2, block_size=b) for b in (2, 3)})
        counts = []
        for name, extra in variants.items():
            r = block_eigsh(ops.hp, ops.n_params, k, "both", **kw, **extra)
            counts.append(f"{name}: {r.matvecs} ({r.restarts} restarts)")
        print(f"# H_p solve cold, products of the variants (default: seed 2, max_basis "
              f"{3 * 3 * k}, block 1: {last['cold'].matvecs}): " + "; ".join(counts))  # fmt: skip


def run_hp_only(w: Workload, repeats: int) -> None:
    """Only the full-snapshot rows (`hp_rows`) and the H_p starts (`hp_start_rows`), on the
    mnist workload of `run_mnist`."""
    model, x, y, sgd = make_problem(w)
    sgd(w.steps - 10)
    previous = compute_spectra(
        model, x, y, SpectraOptions(k=w.k, method="iterative", dtype=torch.float32, tol=1e-4)
    )
    sgd(10)
    hp_rows(w, model, x, y, previous, repeats)
    hp_cost_rows(w, model, x, y, previous, repeats)
    hp_start_rows(w, model, x, y, previous)


def run_cifar(w: Workload, quick: bool, repeats: int) -> None:
    model, x, y, sgd = make_problem(w)
    sgd(w.steps)
    kw = dict(k=w.k, method="iterative", dtype=torch.float32, tol=1e-4, trace_probes=0)
    seconds, s = timed(
        lambda: compute_spectra(model, x, y, SpectraOptions(hp_method="ritz", **kw)), 1
    )
    t_grad = t_grad_of(model, x, y, torch.float32, repeats)
    row(w.name, "this: cold (H_f,M, H_p ritz) f32", seconds, t_grad, None, snapshot_matvecs(s),
        None)  # fmt: skip
    row(w.name, "one gradient pass (float32)", t_grad, t_grad, None, None, None)
    print(f"# cifar: P = {s.n_params}, peak RSS {peak_rss_mib():.0f} MiB (ru_maxrss)")


def run_checks_only(w: Workload, repeats: int) -> None:
    """Only the checks' cost rows, on the mnist workload (same model and data as `run_mnist`)."""
    model, x, y, sgd = make_problem(w)
    sgd(w.steps)
    t_grad = t_grad_of(model, x, y, torch.float32, max(repeats, 5))
    row(w.name, "one gradient pass (float32)", t_grad, t_grad, None, None, None)
    check_cost_rows(w, model, x, y, t_grad, repeats)


# ---------------------------------------------------------------- density rows
def run_density(w: Workload, quick: bool, repeats: int) -> None:
    """One density snapshot of H_f, M and H_p (docs/densities.md: M's Gram matrix and its
    eigenvalues, SLQ of H_f and H_p at the defaults, the smoothing) on the MNIST-sized MLP
    784-100-100-10 with n = 2000 spectral samples, float32, in full-data gradient passes timed in
    the same run, between the snapshots (`measure_cost` of benchmarks/density.py; medians of
    --repeats snapshots). Bound: <= 1000 gradient passes."""
    from density import measure_cost  # benchmarks/density.py, beside this script

    cost = measure_cost(quick, repeats, "cpu")
    t_grad = cost.t_grad
    row(w.name, "one gradient pass (float32)", t_grad, t_grad, None, None, None)
    for name, seconds in cost.parts.items():
        row(w.name, f"  {name}", seconds, t_grad, None, None, None)
    row(w.name, "density snapshot (H_f, M, H_p)", cost.t_density, t_grad, None, None, None)
    print(f"# density: MLP {'-'.join(map(str, cost.widths))}, P = {cost.n_params}, n = {cost.n}, "
          f"probes {cost.settings.probes}, steps {cost.settings.steps}: "
          f"{cost.t_density / t_grad:.0f} gradient passes (bound 1000); H_f columns "
          f"{cost.hf_columns}, M columns {cost.mt_columns}")  # fmt: skip


RUNNERS = {"gauss10": run_gauss10, "mnist": run_mnist, "cifar": run_cifar, "density": run_density}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="all", choices=(*WORKLOADS, "all"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the cheap timings")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--only-checks", action="store_true", help="mnist: only the rows of the checks' cost"
    )
    parser.add_argument(
        "--only-hp", action="store_true", help="mnist: only the full-snapshot (H_p) rows"
    )
    args = parser.parse_args(argv)
    if args.only_hp:
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        omp = os.environ.get("OMP_NUM_THREADS")
        print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}, "
              f"OMP_NUM_THREADS={omp}, load average {load}")  # fmt: skip
        print(header(), flush=True)
        run_hp_only(workload("mnist", args.quick), 1 if args.quick else args.repeats)
        return
    if args.only_checks:
        print(header(), flush=True)
        run_checks_only(workload("mnist", args.quick), 1 if args.quick else args.repeats)
        return
    if args.workload == "all" and not args.child:
        omp = os.environ.get("OMP_NUM_THREADS")
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}, "
              f"OMP_NUM_THREADS={omp}, load average {load}")  # fmt: skip
        print(header(), flush=True)
        if args.quick:  # smoke run: one process, small sizes
            for name in ("gauss10", "mnist"):
                RUNNERS[name](workload(name, True), True, 1)
            return
        for name in WORKLOADS:
            cmd = [sys.executable, __file__, "--workload", name, "--repeats", str(args.repeats)]
            cmd += ["--child"] + (["--quick"] if args.quick else [])
            subprocess.run(cmd, check=True)
        return
    if not args.child:
        print(header(), flush=True)
    w = workload(args.workload, args.quick)
    if args.quick:
        args.repeats = 1
    where = machine()
    RUNNERS[w.name](w, args.quick, args.repeats)
    if not args.quick:  # a smoke run is not a result
        settings = {"widths": list(w.widths), "n": w.n, "k": w.k, "sgd_steps": w.steps}
        settings["repeats"] = args.repeats
        print(f"# wrote {write_results(f'spectra_{w.name}', ROWS, settings, where)}")


if __name__ == "__main__":
    main()
