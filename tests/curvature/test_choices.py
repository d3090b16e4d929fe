"""The choice Enums: members are their strings, anything else is refused with the accepted list."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sgd_dynamics.curvature.choices import (
    Choice,
    HpMethod,
    Method,
    MRoute,
    OnNonconvergence,
    check_choice,
)

ENUMS = (Method, HpMethod, MRoute, OnNonconvergence)


@pytest.mark.parametrize("enum", ENUMS)
def test_members_read_as_their_values(enum: type[Choice]) -> None:
    assert enum.values() == tuple(member.value for member in enum)
    assert len(set(enum.values())) == len(enum)
    for member in enum:
        assert member == member.value and str(member) == member.value
        assert f"{member}" == member.value and f"{member:>12}" == f"{member.value:>12}"
        checked = check_choice("setting", member, enum)
        assert checked == member.value and type(checked) is str
        assert check_choice("setting", member.value, enum) == member.value


@given(value=st.one_of(st.text(max_size=12), st.integers(), st.none(), st.booleans()))
def test_anything_else_is_refused_with_the_accepted_values(value: object) -> None:
    for enum in ENUMS:
        if value in enum.values():
            continue
        expected = f"^setting must be one of {', '.join(enum.values())}, got "
        with pytest.raises(ValueError, match=expected):
            check_choice("setting", value, enum)
