"""Tiny float64 classifiers of several kinds (MLP with ReLU, MLP with tanh, small CNN) and data."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def make_model(kind: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    if kind == "mlp_relu":  # P = 4·6+6 + 6·3+3 = 51
        model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    elif kind == "mlp_tanh":  # P = 25 + 30 + 18 = 73
        model = nn.Sequential(
            nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 5), nn.Tanh(), nn.Linear(5, 3)
        )
    elif kind == "cnn":  # P = 2·9+2 + 18·3+3 = 77
        model = nn.Sequential(
            nn.Unflatten(1, (1, 5, 5)),
            nn.Conv2d(1, 2, 3),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(18, 3),
        )
    else:
        raise ValueError(kind)
    return model.double()


def make_data(kind: str, n: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    dim = 25 if kind == "cnn" else 4
    x = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=generator)
    return x, y


KINDS = ["mlp_relu", "mlp_tanh", "cnn"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(autouse=True)
def one_thread():
    """These problems are small: one thread is as fast and immune to busy cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
