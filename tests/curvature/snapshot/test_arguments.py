"""Bad input gets one clear ValueError before any deep torch traceback."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sgd_dynamics.curvature import SpectraOptions, compute_spectra

from ..conftest import make_data, make_model


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
    per_call = ("inputs", "targets", "batch_size", "warm_start")
    arguments = {key: kwargs.pop(key) for key in per_call if key in kwargs}
    with pytest.raises(ValueError, match=message):
        compute_spectra(model, options=SpectraOptions(**kwargs), **arguments)


def test_model_without_parameters() -> None:
    x, y = make_data("mlp_relu", n=4)
    with pytest.raises(ValueError, match="no parameters"):
        compute_spectra(nn.Sequential(nn.Identity()), x, y, SpectraOptions(k=1))


def test_model_with_wrong_output_shape() -> None:
    x, y = make_data("mlp_relu", n=4)
    with pytest.raises(ValueError, match=r"logits of shape \(n, C\)"):
        compute_spectra(nn.Sequential(nn.Linear(4, 3), nn.Flatten(0)), x, y, SpectraOptions(k=1))


def test_one_class_is_refused() -> None:
    x, _ = make_data("mlp_relu", n=6)
    model = nn.Sequential(nn.Linear(4, 1)).double()
    for method in ("dense", "iterative"):
        with pytest.raises(ValueError, match="C >= 2"):
            compute_spectra(
                model, x, torch.zeros(6, dtype=torch.long), SpectraOptions(k=1, method=method)
            )


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_inputs_and_parameters_are_refused(setup, bad: float) -> None:
    model, x, y = setup
    x_bad = x.clone()
    x_bad[2, 1] = bad
    with pytest.raises(ValueError, match=r"inputs hold NaN or infinite values \(1 sample"):
        compute_spectra(model, x_bad, y, SpectraOptions(k=2))
    with torch.no_grad():
        model[2].bias[0] = bad
    with pytest.raises(ValueError, match=r"parameters hold NaN or infinite values \(2.bias\)"):
        compute_spectra(model, x, y, SpectraOptions(k=2))


@pytest.mark.parametrize("wrap", [lambda x: {"x": x}, lambda x: (x, x), lambda x: [x, x]])
def test_inputs_that_are_not_one_tensor_are_refused(setup, wrap) -> None:
    model, x, y = setup
    with pytest.raises(ValueError, match="inputs must be one tensor"):
        compute_spectra(model, wrap(x), y, SpectraOptions(k=2, method="iterative"))


def test_nested_lists_of_numbers_are_accepted(setup) -> None:
    model, x, y = setup
    s = compute_spectra(model, x.tolist(), y.tolist(), SpectraOptions(k=2))
    assert s.n_samples == 6


@pytest.mark.parametrize("kind", ["weight_norm", "spectral_norm", "parametrize"])
def test_parametrised_weights_are_refused_by_name(kind: str) -> None:
    from torch.nn.utils import parametrizations, spectral_norm, weight_norm

    x, y = make_data("mlp_relu", n=6)
    model = make_model("mlp_relu")
    if kind == "weight_norm":
        with pytest.warns(FutureWarning):  # deprecated by torch, still in use
            weight_norm(model[0])
    elif kind == "spectral_norm":
        spectral_norm(model[0])
    else:
        parametrizations.orthogonal(model[2])
    layer = "2" if kind == "parametrize" else "0"
    expected = {"weight_norm": "WeightNorm", "spectral_norm": "SpectralNorm"}.get(kind, kind)
    for method in ("dense", "iterative"):
        with pytest.raises(ValueError, match=rf"parametrised weights.*{layer} \({expected}\)"):
            compute_spectra(model, x, y, SpectraOptions(k=2, method=method))


def test_params_must_belong_to_the_model(setup) -> None:
    model, x, y = setup
    with pytest.raises(ValueError, match="not a parameter name"):
        compute_spectra(model, x, y, SpectraOptions(k=2), params=["nope.weight"])
    with pytest.raises(ValueError, match="the model's own parameters"):
        compute_spectra(
            model, x, y, SpectraOptions(k=2), params=[torch.zeros(3, requires_grad=True)]
        )
