"""Spectral densities under DDP: 2 and 4 CPU processes (gloo) against one process on the same
samples. M's n×n Gram matrix assembled across the ranks (layer-wise factors, per-sample gradient
matrices, samples only, or factors on some ranks only) equals the one of all samples' gradients
computed one sample at a time; the SLQ of H_f and H_p with sharded products equals the
single-process one with the same probes; compute_spectra(density=True) gives every rank the same
densities, those of one process; train.py with trainer=ddp_cpu stores them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_ddp_spectra import relative_error, snapshots, train
from torch import nn

from sgd_dynamics.curvature import SpectraOptions, compute_spectra
from sgd_dynamics.curvature.density import DensitySettings, Outliers, spectral_densities
from sgd_dynamics.curvature.gram import gram_eigenvalues, snapshot_gram
from sgd_dynamics.curvature.gram.assembly import assigned_blocks
from sgd_dynamics.curvature.operators import CurvatureOperators, FunctionalModel
from sgd_dynamics.curvature.operators.distributed import Reduction, default_reduction
from sgd_dynamics.curvature.operators.per_sample import gradient_factors
from sgd_dynamics.curvature.snapshot.dense import hessian_matrix

N_SAMPLES = 13  # shards of 7 and 6 (2 ranks), 4, 3, 3, 3 (4 ranks)
CHUNK = 3  # several chunks per shard for the samples-only route
ROUTES = ("linear", "dense", "operator")  # layer-wise factors, G, samples only
SETTINGS = DensitySettings(probes=3, steps=12, seed=5)
SLQ_KEYS = [f"{x}_density{y}" for x in ("hf", "hp") for y in ("_nodes", "_weights", "")]


def make_problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    inputs = torch.randn(N_SAMPLES, 4, dtype=torch.float64)
    targets = torch.randint(0, 3, (N_SAMPLES,))
    return model, inputs, targets


def per_sample_gradients_one_by_one(model, inputs, targets) -> torch.Tensor:
    """G (n×P), one backward pass per sample with torch.autograd."""
    rows = []
    for i in range(inputs.shape[0]):
        model.zero_grad()
        nn.functional.cross_entropy(model(inputs[i : i + 1]), targets[i : i + 1]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    return torch.stack(rows)


def operators(model, inputs, targets, route: str, reduction: Reduction | None):
    fm = FunctionalModel(model, torch.float64)
    ops = CurvatureOperators(fm, inputs, targets, chunk_size=CHUNK, distributed=reduction)
    factors = gradient_factors(fm, ops.inputs, ops.targets, CHUNK, 1 << 30, route)
    ops.gradients = factors
    return ops, factors


def fixed_outliers(model, inputs, targets) -> tuple[Outliers, Outliers]:
    """Top-3 of H_f and top/bottom-2 of H_p from dense matrices on all samples (one process's
    computation, identical on every rank)."""
    ops, factors = operators(model, inputs, targets, "dense", None)
    hessian = hessian_matrix(ops)
    moment = factors.matrix.T @ factors.matrix / N_SAMPLES
    hf_values, hf_vectors = torch.linalg.eigh(hessian)
    hp_values, hp_vectors = torch.linalg.eigh(moment - hessian)
    ends = [0, 1, -2, -1]
    return Outliers(hf_values[-3:], hf_vectors[:, -3:]), Outliers(
        hp_values[ends], hp_vectors[:, ends]
    )


def measurements(reduction: Reduction | None, with_densities: bool) -> dict[str, np.ndarray]:
    """K per route; with_densities: the SLQ with fixed outliers and compute_spectra's densities."""
    model, inputs, targets = make_problem()
    out = {}
    for route in (*ROUTES, "mixed"):
        ops, factors = operators(
            model, inputs, targets, route.replace("mixed", "linear"), reduction
        )
        if route == "mixed" and reduction is not None and reduction.rank % 2:
            factors = None  # factors on the even ranks only (a shard crossing the budget)
        gram = snapshot_gram(ops, factors)
        out[f"{route}/gram"] = gram.numpy()
        if route == "mixed":
            continue
        if not with_densities:
            continue
        hf_outliers, hp_outliers = fixed_outliers(model, inputs, targets)
        direct = spectral_densities(
            ops.hf,
            ops.n_params,
            m=ops.m,
            gram_values=gram_eigenvalues(gram),
            hf_outliers=hf_outliers,
            hp_outliers=hp_outliers,
            settings=SETTINGS,
        )
        out.update({f"{route}/direct/{k}": v for k, v in direct.to_arrays().items()})
        spectra = compute_spectra(
            model,
            inputs,
            targets,
            SpectraOptions(
                k=3, method="iterative", m_route=route, chunk_size=CHUNK, density=SETTINGS
            ),
            distributed=reduction,
        )
        assert spectra.densities is not None
        out.update({f"{route}/spectra/{k}": v for k, v in spectra.densities.to_arrays().items()})
    return out


def _worker(rank: int, world: int, init_file: str, out_dir: str, with_densities: bool) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        reduction = default_reduction()
        assert reduction is not None
        np.savez(Path(out_dir) / f"rank{rank}.npz", **measurements(reduction, with_densities))
        # every rank done with the group before any tears it down (the SIGABRTs once seen here
        # came from a group that outlived destroy_process_group: test_process_group_release)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_ranks(tmp_path: Path, world: int, with_densities: bool) -> list[dict[str, np.ndarray]]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    args = (world, str(tmp_path / "init"), str(tmp_path), with_densities)
    mp.spawn(_worker, args=args, nprocs=world, join=True)
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(world)]
    for other in ranks[1:]:  # every rank the same numbers, bit for bit
        assert sorted(other) == sorted(ranks[0])
        for key, value in ranks[0].items():
            np.testing.assert_array_equal(other[key], value, err_msg=key)
    return ranks


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_assigned_blocks_cover_the_gram_matrix_once():
    for world in range(1, 7):
        for n in (world, world + 1, 13, 20):
            count = np.zeros((n, n), dtype=int)
            for rank in range(world):
                reduction = Reduction(rank, world)
                for sender, own, theirs in assigned_blocks(reduction, n):
                    rows = np.arange(n)[reduction.shard(n)][own]
                    cols = np.arange(n)[Reduction(sender, world).shard(n)][theirs]
                    count[np.ix_(rows, cols)] += 1
                    if sender != rank:
                        count[np.ix_(cols, rows)] += 1
            assert np.all(count == 1), (world, n)


@pytest.mark.slow
@pytest.mark.parametrize("world", [2, 4])
def test_gram_matrix_assembled_across_ranks(tmp_path, world):
    ranks = run_ranks(tmp_path, world, with_densities=False)
    model, inputs, targets = make_problem()
    g = per_sample_gradients_one_by_one(model, inputs, targets)
    reference = (g @ g.T / N_SAMPLES).numpy()
    single = measurements(None, with_densities=False)
    for route in (*ROUTES, "mixed"):
        got = ranks[0][f"{route}/gram"]
        assert relative(got, reference) <= 1e-12, route
        assert relative(got, single[f"{route}/gram"]) <= 1e-13, route


@pytest.mark.slow
def test_densities_on_two_ranks_equal_one_process(tmp_path):
    ranks = run_ranks(tmp_path, 2, with_densities=True)
    single = measurements(None, with_densities=True)
    model, inputs, targets = make_problem()
    g = per_sample_gradients_one_by_one(model, inputs, targets)
    p = g.shape[1]
    mt_all = np.sort(np.linalg.eigvalsh((g.T @ g / N_SAMPLES).numpy()))[::-1][:N_SAMPLES]
    for route in ROUTES:
        for kind in ("direct", "spectra"):
            got = {k.split("/")[-1]: v for k, v in ranks[0].items() if f"{route}/{kind}/" in k}
            want = {k.split("/")[-1]: v for k, v in single.items() if f"{route}/{kind}/" in k}
            assert sorted(got) == sorted(want)
            # M: exact, its n nonzero eigenvalues and the atom of P - n zeros
            nodes = got["mt_density_nodes"]
            assert nodes.size == N_SAMPLES + 1 and nodes[0] == 0.0
            assert relative(np.sort(nodes[1:])[::-1], mt_all) <= 1e-10, route
            assert relative(nodes, want["mt_density_nodes"]) <= 1e-10, route
            np.testing.assert_array_equal(got["mt_density_weights"][0], (p - N_SAMPLES) / p)
            # SLQ of H_f and H_p: sharded products, the same probes; direct: the same outliers,
            # spectra: those of the ranks' own solves (converged alike on this small problem)
            tolerance = 1e-12 if kind == "direct" else 1e-10
            for key in (*SLQ_KEYS, "hp_to_minus_hf_w1", "density_spread", "mt_density"):
                assert relative(got[key], want[key]) <= tolerance, (route, kind, key)


def test_bad_broadcast_source_is_named():
    with pytest.raises(ValueError, match=r"broadcast source must be a rank in \[0, 2\), got 2"):
        Reduction(0, 2).broadcast(torch.zeros(3), 2)


@pytest.mark.slow
def test_train_py_ddp_snapshots_hold_the_single_process_densities(tmp_path):
    """trainer=ddp_cpu with spectral.density=true (iterative): the snapshots hold the densities
    of the single-process run (full-batch GD: the same parameters at every step)."""
    args = ["spectral.method=iterative", "spectral.density=true", "spectral.density_points=2"]
    single, _ = train(tmp_path / "single", *args)
    ddp, _ = train(tmp_path / "ddp", *args, "trainer=ddp_cpu")
    expected, got = snapshots(single), snapshots(ddp)
    assert sorted(got) == sorted(expected) == [0, 2, 4]
    with_densities = [step for step in expected if "hf_density" in expected[step]]
    assert with_densities == [step for step in got if "hf_density" in got[step]]
    assert len(with_densities) == 2
    for step in with_densities:
        for key in ("mt_density_nodes", "hf_density_nodes", "hp_density", "hp_to_minus_hf_w1"):
            error = relative_error(got[step][key], expected[step][key])
            assert error <= 1e-6, f"step {step} {key}: relative error {error:.2e}"
