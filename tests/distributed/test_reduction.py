"""The data-parallel curvature engine on 2 CPU processes (gloo): products summed over the ranks'
shards equal the explicit float64 matrices over all samples, and compute_spectra under a
Reduction gives, on every rank, what one process gives on all samples."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from sgd_dynamics.curvature import SpectraOptions, compute_spectra
from sgd_dynamics.curvature.operators import CurvatureOperators, FunctionalModel
from sgd_dynamics.curvature.operators.distributed import (
    Reduction,
    check_reduction,
    default_reduction,
)

N_SAMPLES = 7  # odd: the shards have 4 and 3 samples


def make_problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    inputs = torch.randn(N_SAMPLES, 4)
    targets = torch.randint(0, 3, (N_SAMPLES,))
    return model, inputs, targets


def explicit_matrices(model, inputs, targets) -> tuple[torch.Tensor, torch.Tensor]:
    """H_f and M = (1/n) Σ g_i g_iᵀ in float64, one sample at a time with torch.autograd."""
    model = model.double()
    params = list(model.parameters())
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]
    theta0 = torch.cat([p.detach().reshape(-1) for p in params])

    def loss_of(theta, x, y):
        parts = torch.split(theta, sizes)
        w1, b1, w2, b2 = (t.reshape(s) for t, s in zip(parts, shapes, strict=True))
        logits = torch.tanh(x @ w1.T + b1) @ w2.T + b2
        return nn.functional.cross_entropy(logits, y, reduction="sum")

    x, y = inputs.double(), targets
    hessian = torch.autograd.functional.hessian(lambda t: loss_of(t, x, y), theta0) / len(y)
    grads = torch.stack(
        [
            torch.autograd.functional.jacobian(
                lambda t, i=i: loss_of(t, x[i : i + 1], y[i : i + 1]), theta0
            )
            for i in range(len(y))
        ]
    )
    return hessian, grads.T @ grads / len(y)


def test_shards_partition_the_samples():
    for n in (0, 1, 5, 7, 100):
        for world in (1, 2, 3, 8):
            covered = []
            for rank in range(world):
                covered.extend(range(n)[Reduction(rank, world).shard(n)])
            assert covered == list(range(n))
            sizes = [len(range(n)[Reduction(r, world).shard(n)]) for r in range(world)]
            assert max(sizes) - min(sizes) <= 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="rank"):
        Reduction(rank=2, world_size=2)
    with pytest.raises(ValueError, match="Reduction or None"):
        check_reduction("ddp")
    assert default_reduction() is None  # no process group here


def test_fewer_samples_than_processes_is_named_before_any_communication():
    model, inputs, targets = make_problem()
    fm = FunctionalModel(model, torch.float64)
    for rank in range(4):  # every rank raises (none would wait in a collective)
        with pytest.raises(ValueError, match="3 sample\\(s\\) for 4 processes"):
            CurvatureOperators(fm, inputs[:3].double(), targets[:3], distributed=Reduction(rank, 4))
    ops = CurvatureOperators(fm, inputs[:4].double(), targets[:4], distributed=Reduction(3, 4))
    assert ops.n_local == 1


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        reduction = default_reduction()
        assert reduction == Reduction(rank=rank, world_size=world)
        model, inputs, targets = make_problem()
        fm = FunctionalModel(model, torch.float64)
        ops = CurvatureOperators(fm, inputs.double(), targets, distributed=reduction)
        eye = torch.eye(fm.n_params, dtype=torch.float64)
        results = {
            "n_local": np.array(ops.n_local),
            "hf": ops.hf(eye).numpy(),
            "m": ops.m(eye).numpy(),
            "loss": np.array(ops.loss_gradient()[0]),
        }
        for method in ("dense", "iterative"):
            spectra = compute_spectra(
                model,
                inputs,
                targets,
                SpectraOptions(k=4, method=method),
                batch_size=2,
                distributed=reduction,
            )
            for key, value in spectra.to_arrays().items():
                results[f"{method}/{key}"] = value
        np.savez(Path(out_dir) / f"rank{rank}.npz", **results)
        # every rank done with the group before any tears it down (the SIGABRTs once seen here
        # came from a group that outlived destroy_process_group: test_process_group_release)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in (0, 1)]
    assert [int(r["n_local"]) for r in ranks] == [4, 3]

    model, inputs, targets = make_problem()
    hessian, moment = explicit_matrices(model, inputs, targets)
    for r in ranks:
        np.testing.assert_allclose(r["hf"], hessian.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(r["m"], moment.numpy(), rtol=1e-10, atol=1e-12)

    single = {
        method: compute_spectra(
            model, inputs, targets, SpectraOptions(k=4, method=method), batch_size=2
        )
        for method in ("dense", "iterative")
    }
    for method, spectra in single.items():
        for key, value in spectra.to_arrays().items():
            if key.endswith("_seconds") or key == "seconds":
                continue
            got0, got1 = ranks[0][f"{method}/{key}"], ranks[1][f"{method}/{key}"]
            if key.startswith(("hf_", "mt_", "hp_", "mb_", "trace", "loss", "acc", "grad", "cos")):
                np.testing.assert_array_equal(got0, got1, err_msg=f"{method}/{key} ranks differ")
                scale = max(1.0, float(np.max(np.abs(value))))
                np.testing.assert_allclose(got0, value, rtol=1e-6, atol=1e-9 * scale, err_msg=key)
