"""The accepted values of the engine's choice settings, one `str` Enum each.

Members compare equal to their strings (``Method.DENSE == "dense"``), so a setting may be given
as either; the settings keep the plain string (`SpectraOptions` stores ``member.value``). The
configuration schema builds its choices from these too (`values()`).
"""

from __future__ import annotations

from enum import Enum

__all__ = ["Choice", "Method", "HpMethod", "MRoute", "OnNonconvergence", "check_choice"]


class Choice(str, Enum):
    """A setting's accepted values; str() and format() give the value."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """The accepted strings, in declaration order."""
        return tuple(member.value for member in cls)


class Method(Choice):
    """How a snapshot is computed: exact P×P matrices, matrix-free, or by P."""

    AUTO = "auto"  # DENSE when P <= dense_max_params, else ITERATIVE
    DENSE = "dense"  # the exact P×P matrices and all their eigenvalues
    ITERATIVE = "iterative"  # matrix-free products and block Lanczos


class HpMethod(Choice):
    """How the iterative method finds H_p's extremes."""

    SOLVE = "solve"  # a converged block Lanczos solve on H_p = M - H_f
    RITZ = "ritz"  # Rayleigh-Ritz estimates on span(top-k of H_f, top-k of M)
    NONE = "none"  # not computed (NaN)


class MRoute(Choice):
    """How the iterative method applies M."""

    AUTO = (
        "auto"  # LINEAR when the model allows and it fits, else DENSE when it fits, else OPERATOR
    )
    LINEAR = "linear"  # layer-wise per-sample factors of nn.Linear networks
    DENSE = "dense"  # the per-sample gradient matrix G (n×P)
    OPERATOR = "operator"  # jvp/vjp products


class OnNonconvergence(Choice):
    """What a solver does when it stops unconverged."""

    WARN = "warn"  # a ConvergenceWarning
    RAISE = "raise"  # a ConvergenceError
    IGNORE = "ignore"  # nothing (the diagnostics still say it)


def check_choice(name: str, value: object, accepted: type[Choice]) -> str:
    """Check a choice setting.

    Args:
        name: the setting's name, for the message.
        value: a member of `accepted` or its string.
        accepted: the Enum of the accepted values.

    Returns:
        The value as a plain string.

    Raises:
        ValueError: ``<name> must be one of <values>, got <value>`` for anything else.
    """
    values = accepted.values()
    if not isinstance(value, str) or value not in values:
        raise ValueError(f"{name} must be one of {', '.join(values)}, got {value!r}")
    return str(value)
