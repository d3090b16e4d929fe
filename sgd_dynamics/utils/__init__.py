"""Small helpers shared by the library: the project's error class, atomic JSON files, run
folder names."""

from sgd_dynamics.utils.errors import SetupError
from sgd_dynamics.utils.files import read_json, write_json_atomic
from sgd_dynamics.utils.run_dir import run_dir_of_checkpoint, run_name, sweep_name

__all__ = [
    "SetupError",
    "read_json",
    "run_dir_of_checkpoint",
    "run_name",
    "sweep_name",
    "write_json_atomic",
]
