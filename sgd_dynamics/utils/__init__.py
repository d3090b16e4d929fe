"""Small helpers shared by the library: the project's error class, run folder names."""

from sgd_dynamics.utils.errors import SetupError
from sgd_dynamics.utils.run_dir import run_dir_of_checkpoint, run_name, sweep_name

__all__ = [
    "SetupError",
    "run_dir_of_checkpoint",
    "run_name",
    "sweep_name",
]
