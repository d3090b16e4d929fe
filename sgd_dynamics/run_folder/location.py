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
    if "\0" in str(path):
        return f"cannot write {str(path)!r}: a path cannot hold a NUL character"
    if (problem := _too_long(path)) is not None:
        return f"cannot write {_shorten(path)}: {problem}"
    existing = path
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if existing.is_symlink() and not existing.exists():
        target = os.readlink(existing)
        return (
            f"cannot write {path}: {existing} is a symbolic link to {target}, which does not exist"
        )
    if not existing.is_dir():
        return f"cannot write {path}: {existing} is not a folder"
    stats = os.statvfs(existing)
    if stats.f_flag & os.ST_RDONLY:
        return f"cannot write {path}: {existing} is on a read-only file system"
    if stats.f_blocks == 0:  # /proc, /sys: kernel interfaces, no storage for files
        return f"cannot write {path}: {existing} is on a file system that stores no files"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot write {path}: no permission to write into {existing}"
    return None


# the longest path a run writes below its folder (wandb's offline run files), in characters
RUN_FILE_DEPTH = 160


def _limit(name: str, default: int) -> int:
    try:
        return os.pathconf("/", name)
    except (OSError, ValueError):
        return default


def _too_long(path: Path) -> str | None:
    """Why the OS would refuse `path` as a run folder for its length, or None: a name longer
    than NAME_MAX bytes, or a path that leaves less than `RUN_FILE_DEPTH` characters of
    PATH_MAX for the files the run writes inside it."""
    name_max, path_max = _limit("PC_NAME_MAX", 255), _limit("PC_PATH_MAX", 4096)
    for part in path.parts:
        if len(os.fsencode(part)) > name_max:
            return f"a folder name of {len(os.fsencode(part))} bytes; at most {name_max}"
    if len(os.fsencode(str(path))) + RUN_FILE_DEPTH > path_max:
        return (
            f"a path of {len(os.fsencode(str(path)))} bytes; at most "
            f"{path_max - RUN_FILE_DEPTH} (PATH_MAX {path_max} less the run's own files)"
        )
    return None


def _shorten(path: Path, keep: int = 60) -> str:
    text = str(path)
    return text if len(text) <= 2 * keep else f"{text[:keep]}...{text[-keep:]}"
