"""Checks of single argument values, shared by the library: one definition of an integer
argument (a Python or numpy integer, never a bool) and of a positive one."""

from __future__ import annotations

import numbers

__all__ = ["is_integer", "positive_int"]


def is_integer(value: object) -> bool:
    """Whether `value` is an integer: an int or numpy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_int(value: object, name: str, error: type[ValueError] = ValueError) -> int:
    """`value` as an int >= 1.

    Raises:
        error (ValueError, or a subclass such as `SetupError`): ``<name> must be an integer
            >= 1, got <value!r>``.
    """
    if not is_integer(value) or value < 1:
        raise error(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)
