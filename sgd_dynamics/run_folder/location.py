"""Run folders: names derived from their place on disk, and resume targets."""

from __future__ import annotations

import os
from pathlib import Path

MULTIRUN_MARKER = "multirun.yaml"  # Hydra writes it into every sweep folder
FIGURES_DIRNAME = "figures"  # RUN_DIR/figures/*.png


def sweep_name(run_dir: str | os.PathLike) -> str | None:
    """The sweep folder's name when `run_dir` is a job of a sweep (its parent holds Hydra's
    multirun.yaml), else None. Used as the wandb group of the sweep's jobs."""
    parent = Path(run_dir).resolve().parent
    return parent.name if (parent / MULTIRUN_MARKER).is_file() else None


def run_name(run_dir: str | os.PathLike) -> str:
    """A readable run name: ``<sweep name>/<job number>`` for a sweep job, else the folder name."""
    run_dir = Path(run_dir).resolve()
    sweep = sweep_name(run_dir)
    return f"{sweep}/{run_dir.name}" if sweep else run_dir.name


def run_dir_of_checkpoint(ckpt_path: str | os.PathLike) -> Path | None:
    """The run folder that `ckpt_path` belongs to (``RUN_DIR/checkpoints/*.ckpt`` with
    ``RUN_DIR/.hydra/overrides.yaml``), or None when it lies elsewhere."""
    ckpt = Path(ckpt_path)
    run_dir = ckpt.parent.parent
    if ckpt.parent.name == "checkpoints" and (run_dir / ".hydra" / "overrides.yaml").is_file():
        return run_dir
    return None


def unwritable_output(folder: str | os.PathLike, cwd: str | os.PathLike = ".") -> str | None:
    """Why `folder` (relative to `cwd`), the output folder of a run, cannot take files, or None.
    Checked before Hydra creates it (``sgd_dynamics.launch.overrides.output_folder`` reads it
    from the command line): the deepest part of it that exists must be a folder this process
    may write into, on a file system mounted read-write."""
    path = Path(cwd, str(folder) or ".").expanduser().absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"cannot write {path}: {existing} is not a folder"
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        return f"cannot write {path}: {existing} is on a read-only file system"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot write {path}: no permission to write into {existing}"
    return None
