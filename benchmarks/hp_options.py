"""What a full snapshot with H_p converged can cost at least, and what each knob buys.

Usage:
    python benchmarks/hp_options.py            # mnist workload of spectra.py (about 5 minutes)
    python benchmarks/hp_options.py --quick    # smoke run, small sizes

On the MNIST-sized workload of `benchmarks/spectra.py` (MLP 784-100-100-10, ReLU, n = 5000,
float32, trained 300 SGD steps):

1. Products of the H_f solve (top-k) and of the H_p solve (k largest and k smallest), main
   Krylov run and multiplicity check, for k in (15, 9) and relative residual tolerances 1e-4
   (the default in float32), 3e-4 and 1e-3, each with its max relative eigenvalue error against
   this project's solver in float64 at tol 1e-10.
2. The cost of one Hessian-vector product in gradient passes: autograd's double backward through
   the kept gradient graph (what the snapshot uses) and a hand-written forward-over-reverse
   product for this ReLU MLP (`relu_mlp_hvp`: two matrix products per layer forward, three
   back), medians of interleaved rounds with the gradient pass timed in each.
3. The floor: the main runs' products times the cheaper of the two per-product costs, plus M's
   part (per-sample factors, Gram matrix, its top-k), then with the multiplicity checks'
   products, before the traces and the orthogonalization are counted; and the full default
   snapshot at each k (what the spectral callback computes: checks on, 16 trace probes), timed.
The unit is the gradient pass of `benchmarks/spectra.py` (`t_grad_of`: the project's full-data
gradient of the mean loss, float32), so the figures compare with its rows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spectra import make_problem, rel_err, t_grad_of, timed, workload  # noqa: E402

from sgd_dynamics.curvature import SpectraOptions, compute_spectra  # noqa: E402
from sgd_dynamics.curvature.operators import (
    CurvatureOperators,  # noqa: E402
    FunctionalModel,  # noqa: E402
)
from sgd_dynamics.curvature.snapshot.arguments import prepare_data  # noqa: E402
from sgd_dynamics.curvature.solvers import block_eigsh  # noqa: E402


def relu_mlp_hvp(model: nn.Sequential, x: Tensor, y: Tensor):
    """(V -> H V) for the mean cross-entropy of a Linear/ReLU `model`, V and H V given as lists
    of per-parameter tensors in model.parameters() order: forward tangents
    ż_l = V_l a_{l-1} + v_l + W_l ȧ_{l-1}, ȧ_l = 1[z_l > 0] ż_l, then back
    δ̇_L = (diag p - p pᵀ) ż_L / n, δ̇_{l-1} = 1[z_{l-1} > 0] (W_lᵀ δ̇_l + V_lᵀ δ_l) and
    (H V)_{W_l} = δ̇_l a_{l-1}ᵀ + δ_l ȧ_{l-1}ᵀ (ReLU: no second-derivative term)."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    weights = [m.weight.detach() for m in linears]
    acts, pre = [x], []
    for i, layer in enumerate(linears):
        pre.append(layer(acts[-1]).detach())
        acts.append(torch.relu(pre[-1]) if i < len(linears) - 1 else pre[-1])
    masks = [(z > 0).to(x.dtype) for z in pre[:-1]]
    p = torch.softmax(pre[-1], 1)
    delta_out = (p - nn.functional.one_hot(y, p.shape[1]).to(x.dtype)) / len(y)

    def hvp(v: list[Tensor]) -> list[Tensor]:
        vw, vb = v[0::2], v[1::2]
        dots: list[Tensor | None] = [None]
        for i in range(len(weights)):
            z_dot = acts[i] @ vw[i].T + vb[i]
            if dots[-1] is not None:
                z_dot = z_dot + dots[-1] @ weights[i].T
            dots.append(masks[i] * z_dot if i < len(weights) - 1 else z_dot)
        z_dot = dots.pop()
        delta, delta_dot = delta_out, (p * z_dot - p * (p * z_dot).sum(1, keepdim=True)) / len(y)
        out: list[Tensor] = []
        for i in reversed(range(len(weights))):
            grad_w = delta_dot.T @ acts[i]
            if dots[i] is not None:
                grad_w = grad_w + delta.T @ dots[i]
            out[:0] = [grad_w, delta_dot.sum(0)]
            if i:
                delta_dot = masks[i - 1] * (delta_dot @ weights[i] + delta @ vw[i])
                delta = masks[i - 1] * (delta @ weights[i])
        return out

    return hvp


def solver_rows(ops: CurvatureOperators, ref, ks: tuple[int, ...]) -> dict[int, dict[str, int]]:
    """Products and errors of the H_f and H_p solves; returns, per k at tol 1e-4, the main runs'
    products ("H_f", "H_p") and the two multiplicity checks' ("checks")."""
    print(f"{'operator':8} {'k':>3} {'tol':>7} {'products':>8} {'check':>6} {'max relerr':>10}")
    main_runs: dict[int, dict[str, int]] = {}
    for k in ks:
        for name, op, which in (("H_f", ops.hf, "largest"), ("H_p", ops.hp, "both")):
            for tol in (1e-4, 3e-4, 1e-3):
                r = block_eigsh(
                    op,
                    ops.n_params,
                    k,
                    which,
                    tol=tol,
                    dtype=torch.float32,
                    seed=2,
                    on_failure="ignore",
                )
                values = r.eigenvalues.double().numpy()
                if name == "H_f":
                    err = rel_err(values, ref.hf_top[:k])
                else:
                    err = max(
                        rel_err(values[:k], ref.hp_top[:k]), rel_err(values[k:], ref.hp_bottom[:k])
                    )
                print(
                    f"{name:8} {k:>3} {tol:>7.0e} {r.matvecs:>8} {r.check_matvecs:>6} "
                    f"{err:>10.1e}{'' if r.converged else '  NOT converged'}",
                    flush=True,
                )
                if tol == 1e-4:
                    main_runs.setdefault(k, {})[name] = r.matvecs - r.check_matvecs
                    main_runs[k]["checks"] = main_runs[k].get("checks", 0) + r.check_matvecs
    return main_runs


def product_costs(model, x, y, ops: CurvatureOperators, rounds: int) -> dict[str, float]:
    """Median over interleaved rounds of (product time / gradient pass time in that round)."""
    params = list(model.parameters())
    vs = [torch.randn_like(p) for p in params]
    hand = relu_mlp_hvp(model, x, y)
    flat = torch.cat([v.reshape(-1) for v in vs])[:, None]

    with ops.kept_gradient_graphs():
        ops.hf(flat)  # builds the graphs
        autograd = ops.hf(flat)[:, 0]  # flat follows model.parameters(), as ops does
        by_hand = torch.cat([t.reshape(-1) for t in hand(vs)])
        scale = float(autograd.abs().max())
        print(
            f"# hand-written product against autograd: max difference "
            f"{float((autograd - by_hand).abs().max()) / scale:.1e} of the largest entry"
        )
        ratios: dict[str, list[float]] = {"autograd, kept graph": [], "hand-written R-op": []}
        for _ in range(rounds):
            t_grad = t_grad_of(model, x, y, torch.float32, 5)
            ratios["autograd, kept graph"].append(timed(lambda: ops.hf(flat), 5)[0] / t_grad)
            ratios["hand-written R-op"].append(timed(lambda: hand(vs), 5)[0] / t_grad)
    costs = {name: statistics.median(r) for name, r in ratios.items()}
    for name, cost in costs.items():
        print(f"# one H_f product, {name}: {cost:.2f} gradient passes (median of {rounds} rounds)")
    return costs


def snapshot_costs(model, x, y, k: int, rounds: int) -> float:
    """Gradient passes of M's part of a snapshot (per-sample factors, the Gram matrix, its top-k
    with the multiplicity check) and of the full default snapshot at this k (float32, tol 1e-4,
    H_p solve, 16 trace probes, checks on): medians over rounds of seconds over the round's own
    gradient pass. Prints both; returns M's."""
    m_ratios, full_ratios = [], []
    for _ in range(rounds):
        t_grad = t_grad_of(model, x, y, torch.float32, 5)
        start = time.perf_counter()
        s = compute_spectra(
            model, x, y, SpectraOptions(k=k, method="iterative", dtype=torch.float32, tol=1e-4)
        )
        full_ratios.append((time.perf_counter() - start) / t_grad)
        m_ratios.append((s.diagnostics["factors_seconds"] + s.diagnostics["mt_seconds"]) / t_grad)
    m_cost = statistics.median(m_ratios)
    print(f"# M through its Gram matrix: {m_cost:.0f} gradient passes (median of {rounds} rounds)")
    print(
        f"# full default snapshot at k = {k}: {statistics.median(full_ratios):.0f} gradient "
        f"passes (median of {rounds} rounds)"
    )
    return m_cost


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    w = workload("mnist", args.quick)
    model, x, y, sgd = make_problem(w)
    sgd(w.steps)
    ref = compute_spectra(
        model,
        x,
        y,
        SpectraOptions(k=w.k, method="iterative", dtype=torch.float64, tol=1e-10, trace_probes=0),
    )
    fm = FunctionalModel(model, torch.float32)
    ops = CurvatureOperators(fm, *prepare_data(fm, x, y))
    ks = (w.k, max(1, w.k * 3 // 5))
    with ops.kept_gradient_graphs():
        main_runs = solver_rows(ops, ref, ks)
    rounds = 2 if args.quick else args.rounds
    cost = min(product_costs(model, x, y, ops, rounds).values())
    for k, runs in main_runs.items():
        m_cost = snapshot_costs(model, x, y, k, rounds)
        products = runs["H_f"] + runs["H_p"]
        floor = products * cost + m_cost
        print(
            f"# floor at k = {k}: main runs {runs['H_f']} (H_f) + {runs['H_p']} (H_p) = "
            f"{products} products x {cost:.2f} + M {m_cost:.0f} = {floor:.0f} gradient passes; "
            f"with the multiplicity checks ({runs['checks']} products) "
            f"{floor + runs['checks'] * cost:.0f}, before the traces and the orthogonalization"
        )


if __name__ == "__main__":
    main()
