"""Checks of single argument values, shared by the library: one definition of an integer
argument (a Python or numpy integer, never a bool) and of a positive one."""

from __future__ import annotations

import numbers

__all__ = ["integer_at_least", "is_integer", "positive_int"]


def is_integer(value: object) -> bool:
    """Whether `value` is an integer: an int or numpy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def integer_at_least(
    value: object, name: str, low: int, optional: bool = False, error: type[ValueError] = ValueError
) -> int | None:
    """`value` as an int >= `low` (None passes when `optional`).

    Raises:
        error (ValueError, or a subclass such as `SetupError`): ``<name> must be an integer
            >= <low>[ or None], got <value!r>``.
    """
    if optional and value is None:
        return None
    if not is_integer(value) or value < low:
        accepted = f"an integer >= {low}" + (" or None" if optional else "")
        raise error(f"{name} must be {accepted}, got {value!r}")
    return int(value)


def positive_int(value: object, name: str, error: type[ValueError] = ValueError) -> int:
    """`value` as an int >= 1 (`integer_at_least` with low = 1)."""
    return integer_at_least(value, name, 1, error=error)
