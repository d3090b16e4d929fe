"""The shared checks of sgd_dynamics.utils: one positive-integer validator, one dotted lookup
for plain mappings (checked against OmegaConf.select on the same data)."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from sgd_dynamics.curvature import SpectraOptions
from sgd_dynamics.data.classification import positive_int as data_positive_int
from sgd_dynamics.schedule import density_steps
from sgd_dynamics.utils import SetupError
from sgd_dynamics.utils.dotted import get_dotted
from sgd_dynamics.utils.validate import is_integer, positive_int


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.int32(1)])
def test_positive_int_accepts_integers_from_one(value):
    result = positive_int(value, "n")
    assert result == int(value) and type(result) is int


@pytest.mark.parametrize("value", [0, -2, True, False, 2.0, "3", None, np.float64(2.0)])
def test_positive_int_refuses_the_rest_with_one_message(value):
    with pytest.raises(ValueError) as info:
        positive_int(value, "chunk_size")
    assert str(info.value) == f"chunk_size must be an integer >= 1, got {value!r}"


def test_every_caller_uses_the_same_validator():
    """The data modules raise SetupError, the curvature engine and the schedule ValueError,
    with the same text."""
    with pytest.raises(SetupError, match=r"^n_train must be an integer >= 1, got 0$"):
        data_positive_int("n_train", 0)
    with pytest.raises(ValueError, match=r"^k must be an integer >= 1, got True$"):
        SpectraOptions(k=True)
    with pytest.raises(ValueError, match=r"^spectral.density_points must be an integer >= 1"):
        density_steps([0, 1], 0)
    assert is_integer(np.int8(1)) and not is_integer(True) and not is_integer(1.0)


CONFIG = {
    "a": {"b": {"c": 3, "d": None, "e": [1, 2]}, "f": "x"},
    "g": 0,
    "h": None,
}


@pytest.mark.parametrize("key", ["a.b.c", "a.b.d", "a.b.e", "a.f", "g", "h", "a.b", "a"])
def test_dotted_lookup_agrees_with_omegaconf_select(key):
    expected = OmegaConf.select(OmegaConf.create(CONFIG), key)
    expected = OmegaConf.to_container(expected) if OmegaConf.is_config(expected) else expected
    assert get_dotted(CONFIG, key) == expected


@pytest.mark.parametrize("key", ["x", "a.x", "a.b.c.d", "a.f.g", "g.x", "h.x", "a.b.e.0"])
def test_dotted_lookup_of_a_missing_key_is_none(key):
    assert get_dotted(CONFIG, key) is None
    assert get_dotted(None, key) is None
