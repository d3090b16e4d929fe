"""Small helpers shared by the library: the project's error class, run folder names."""

from sgd_dynamics.utils.errors import ConfigError, SetupError
from sgd_dynamics.utils.run_dir import run_dir_of_checkpoint, run_name, sweep_name

__all__ = [
    "ConfigError",
    "SetupError",
    "run_dir_of_checkpoint",
    "run_name",
    "sweep_name",
]
