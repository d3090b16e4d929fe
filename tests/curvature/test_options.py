"""SpectraOptions: the one check of compute_spectra's settings, and the named solver thresholds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sgd_dynamics.config_schema import KEYS
from sgd_dynamics.curvature import compute_spectra
from sgd_dynamics.curvature.choices import HpMethod, Method
from sgd_dynamics.curvature.density import DensitySettings
from sgd_dynamics.curvature.options import DTYPES, SpectraOptions
from sgd_dynamics.curvature.thresholds import (
    DENSE_MAX_PARAMS,
)

from .conftest import make_data, make_model


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(k=0), r"^k must be an integer >= 1, got 0$"),
        (dict(k=True), "^k must be an integer >= 1"),
        (dict(method="exact"), "^method must be one of auto, dense, iterative, got 'exact'$"),
        (dict(hp_method="exact"), "^hp_method must be one of solve, ritz, none, got 'exact'$"),
        (dict(m_route="magic"), "^m_route must be one of auto, linear, dense, operator"),
        (dict(on_nonconvergence="loud"), "^on_nonconvergence must be one of warn, raise, ignore"),
        (dict(dtype=torch.float16), "^dtype must be torch.float32 or torch.float64"),
        (dict(dtype="half"), "^dtype must be torch.float32 or torch.float64"),
        (dict(chunk_size=0), "^chunk_size must be an integer >= 1 or None, got 0$"),
        (dict(trace_probes=-1), "^trace_probes must be an integer >= 0, got -1$"),
        (dict(tol=0.0), "^tol must be a finite number > 0 or None"),
        (dict(check_steps=-1), "^check_steps must be an integer >= 0 or None"),
        (dict(dense_threads=0), "^dense_threads must be an integer >= 1 or None"),
        (dict(density="yes"), "^density must be None, a bool or a DensitySettings, got str$"),
    ],
)
def test_bad_setting_is_named_with_what_is_accepted(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SpectraOptions(**change)


def test_settings_resolve_as_documented() -> None:
    options = SpectraOptions(dtype="float32", density=True, seed=7)
    assert options.dtype is torch.float32 and options.dtype_name == "float32"
    assert options.solver_tolerance == 1e-4 and SpectraOptions().solver_tolerance == 1e-8
    assert options.density_settings == DensitySettings(seed=7)
    assert SpectraOptions().density_settings is None
    assert SpectraOptions(method="auto").method_for(DENSE_MAX_PARAMS) == "dense"
    assert SpectraOptions(method="auto").method_for(DENSE_MAX_PARAMS + 1) == "iterative"
    assert SpectraOptions(method="iterative").method_for(10) == "iterative"


def test_choices_as_members_or_strings_give_the_same_snapshot() -> None:
    model = make_model("mlp_tanh")
    x, y = make_data("mlp_tanh", n=20)
    settings = dict(k=4, method="iterative", hp_method="ritz", seed=3, tol=1e-10)
    members = dict(settings, method=Method.ITERATIVE, hp_method=HpMethod.RITZ)
    as_members = SpectraOptions(**members)
    assert as_members == SpectraOptions(**settings)
    assert type(as_members.method) is str and type(as_members.hp_method) is str
    by_strings = compute_spectra(model, x, y, SpectraOptions(**settings), batch_size=5)
    by_members = compute_spectra(model, x, y, options=as_members, batch_size=5)
    by_strings_arrays, by_members_arrays = by_strings.to_arrays(), by_members.to_arrays()
    assert by_strings_arrays.keys() == by_members_arrays.keys()
    for key, value in by_strings_arrays.items():
        if not key.endswith("seconds"):
            np.testing.assert_array_equal(value, by_members_arrays[key], err_msg=key)


def test_settings_only_through_the_options() -> None:
    model = make_model("mlp_relu")
    x, y = make_data("mlp_relu", n=6)
    with pytest.raises(TypeError, match="unexpected keyword argument 'k'"):
        compute_spectra(model, x, y, k=3)
    with pytest.raises(ValueError, match="^options must be a SpectraOptions .* got int$"):
        compute_spectra(model, x, y, 3)


def test_the_schema_offers_the_engine_choices() -> None:
    assert KEYS["spectral.method"].kind.values == Method.values()
    assert KEYS["spectral.hp_method"].kind.values == HpMethod.values()
    assert set(KEYS["spectral.dtype"].kind.values) == set(DTYPES)
    assert not KEYS["spectral.hp_method"].kind.accepts(HpMethod.RITZ)  # the configuration: str
