"""Small helpers shared by the library: the project's error classes, dotted keys, value checks,
console lines."""

from sgd_dynamics.utils.errors import ConfigError, SetupError

__all__ = ["ConfigError", "SetupError"]
