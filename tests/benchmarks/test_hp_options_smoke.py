"""benchmarks/hp_options.py: its hand-written Hessian-vector product equals the explicit float64
Hessian, and its quick run prints converged solver rows and the floor lines."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.func import functional_call

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "hp_options.py"


def test_the_hand_written_product_is_the_explicit_hessian_times_v() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    model = model.double()
    x, y = torch.randn(9, 4, dtype=torch.float64), torch.randint(0, 3, (9,))
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(flat: torch.Tensor) -> torch.Tensor:
        parts = torch.split(flat, [s.numel() for s in shapes])
        params = {n: t.reshape(s) for n, t, s in zip(names, parts, shapes, strict=True)}
        return nn.functional.cross_entropy(functional_call(model, params, (x,)), y)

    hessian = torch.autograd.functional.hessian(loss, theta)  # (P, P), float64
    hvp = runpy.run_path(str(SCRIPT))["relu_mlp_hvp"](model, x, y)
    for seed in range(3):
        v = torch.randn(
            len(theta), dtype=torch.float64, generator=torch.Generator().manual_seed(seed)
        )
        parts = [
            t.reshape(s)
            for t, s in zip(torch.split(v, [s.numel() for s in shapes]), shapes, strict=True)
        ]
        got = torch.cat([t.reshape(-1) for t in hvp(parts)])
        torch.testing.assert_close(got, hessian @ v, rtol=1e-12, atol=1e-13)


def test_quick_run_prints_converged_rows_and_the_floor(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--quick"])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines if line.startswith(("H_f ", "H_p "))]
    assert len(rows) == 2 * 2 * 3  # two k, two operators, three tolerances
    for row in rows:
        assert len(row) == 6, row  # no "NOT converged"
        products, check, relerr = int(row[3]), int(row[4]), float(row[5])
        assert products > check > 0 and relerr < 1e-4
    assert sum(line.startswith("# floor at k = ") for line in lines) == 2
    assert sum(line.startswith("# one H_f product, ") for line in lines) == 2
    assert sum(line.startswith("# M through its Gram matrix: ") for line in lines) == 2
    assert sum(line.startswith("# full default snapshot at k = ") for line in lines) == 2
