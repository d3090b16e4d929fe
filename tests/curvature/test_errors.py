"""Bad input gets one clear ValueError before any deep torch traceback."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sgd_dynamics.curvature import compute_spectra

from .conftest import make_data, make_model


@pytest.fixture
def setup():
    model = make_model("mlp_relu")  # P = 51, C = 3
    x, y = make_data("mlp_relu", n=6)
    return model, x, y


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(k=52), "k must be an integer with 1 <= k <= P = 51"),
        (dict(k=0), "k must be"),
        (dict(k=2.5), "k must be"),
        (dict(targets=torch.tensor([0, 1, 2, 3, 0, 1])), r"targets must lie in \[0, C\)"),
        (dict(targets=torch.tensor([0, 1, -1, 2, 0, 1])), r"targets must lie in \[0, C\)"),
        (dict(targets=torch.zeros(6)), "integer class labels"),
        (dict(targets=torch.zeros(6, 1, dtype=torch.long)), "1-D"),
        (dict(targets=torch.zeros(5, dtype=torch.long)), "same length"),
        (dict(inputs=torch.zeros(0, 4), targets=torch.zeros(0, dtype=torch.long)), "at least one"),
        (dict(method="exact"), "method must be"),
        (dict(dtype=torch.float16), "dtype must be"),
        (dict(batch_size=7), "batch_size must be"),
        (dict(batch_size=0), "batch_size must be"),
        (dict(chunk_size=0), "chunk_size must be"),
        (dict(m_route="magic", method="iterative"), "m_route"),
        (dict(warm_start=object(), method="iterative"), "warm_start"),
    ],
)
def test_bad_input(setup, change: dict, message: str) -> None:
    model, x, y = setup
    kwargs = dict(inputs=x, targets=y, k=3)
    kwargs.update(change)
    with pytest.raises(ValueError, match=message):
        compute_spectra(model, **kwargs)


def test_model_without_parameters() -> None:
    x, y = make_data("mlp_relu", n=4)
    with pytest.raises(ValueError, match="no parameters"):
        compute_spectra(nn.Sequential(nn.Identity()), x, y, k=1)


def test_model_with_wrong_output_shape() -> None:
    x, y = make_data("mlp_relu", n=4)
    with pytest.raises(ValueError, match=r"logits of shape \(n, C\)"):
        compute_spectra(nn.Sequential(nn.Linear(4, 3), nn.Flatten(0)), x, y, k=1)
