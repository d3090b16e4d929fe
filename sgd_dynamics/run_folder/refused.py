"""A run refused while it is built (missing data files, a size the data set does not have)
leaves nothing behind: `remove_refused_run_folder` removes the folder Hydra made for it.

By then Hydra has created the run folder and written its job record, ``.hydra/config.yaml``,
``hydra.yaml`` and ``overrides.yaml``, and opened an empty ``train.log``. The folder is removed
only when it is certainly this invocation's own and holds nothing else: its name ends with the
run id train.py drew for this invocation (``SGD_DYNAMICS_RUN_ID``, part of the default
``hydra.run.dir``), so a folder named with ``hydra.run.dir=...`` is kept (and then gets
``status.json`` "failed"). Its parent folders (``outputs/runs/``) are left as they are.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sgd_dynamics.lifecycle.run_lock import LOCK_NAME, lock_holder, release_run_lock

RUN_ID_VARIABLE = "SGD_DYNAMICS_RUN_ID"

HYDRA_RECORD = frozenset({"config.yaml", "hydra.yaml", "overrides.yaml"})


def is_fresh_hydra_folder(run_dir: Path, run_id: str | None) -> bool:
    """Whether `run_dir` is a folder this invocation's Hydra made and nothing has used yet: its
    name ends with ``_<run_id>``, and it holds only ``.hydra/`` (the job record, at most its
    three files), empty ``*.log`` files (Hydra's job log) and the folder's lock, held by this
    process."""
    if not run_id or not run_dir.name.endswith(f"_{run_id}") or not run_dir.is_dir():
        return False
    for entry in run_dir.iterdir():
        if entry.name == LOCK_NAME and lock_holder(run_dir) == os.getpid():
            continue  # the lock this process took for the run
        if entry.name == ".hydra" and entry.is_dir() and not entry.is_symlink():
            if not {p.name for p in entry.iterdir()} <= HYDRA_RECORD:
                return False
        elif not (
            entry.suffix == ".log"
            and entry.is_file()
            and not entry.is_symlink()
            and entry.stat().st_size == 0
        ):
            return False
    return True


def remove_refused_run_folder(run_dir: str | os.PathLike, run_id: str | None = None) -> bool:
    """Remove `run_dir` if it is a fresh folder of this invocation (`is_fresh_hydra_folder`;
    `run_id` defaults to ``$SGD_DYNAMICS_RUN_ID``); True when it was removed."""
    run_dir = Path(run_dir)
    if run_id is None:
        run_id = os.environ.get(RUN_ID_VARIABLE)
    if not is_fresh_hydra_folder(run_dir, run_id):
        return False
    release_run_lock(run_dir)
    shutil.rmtree(run_dir)
    return True
