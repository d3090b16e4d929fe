"""A run folder is the project's own: what it holds, and the checks before a run writes in it.

- No symbolic link inside it (`find_symlink`): the run's files are never read or written
  through a link (wandb's own links in ``wandb/``, which wandb replaces, are the exception).
- A new run never writes into a folder that holds another run's results (`check_new_run_folder`).
- A resume starts only from snapshots that read back whole (`damaged_snapshot`).
- Only the launching process of a run (global rank 0, `is_launching_process`) checks and locks
  its folder: DDP ranks started for the same run join it.

No Hydra, no torch: the entry point calls these before Hydra writes anything.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sgd_dynamics.lifecycle.run_lock import lock_holder
from sgd_dynamics.run_folder.files import read_json
from sgd_dynamics.run_folder.snapshots import (
    RunFolderError,
    list_snapshots,
    load_snapshot,
    snapshot_step,
)
from sgd_dynamics.run_folder.status import STATUS_FILE
from sgd_dynamics.utils.errors import SetupError

__all__ = [
    "RANK_VARIABLES",
    "NoFollowFileHandler",
    "RunRecord",
    "check_folder_links",
    "check_new_run_folder",
    "check_not_in_use",
    "damaged_snapshot",
    "find_symlink",
    "is_launching_process",
    "read_record",
]

SUMMARY_FILE = "summary.json"
CHECKPOINTS_DIRNAME = "checkpoints"
HPC_CHECKPOINT_GLOB = "hpc_ckpt_*.ckpt"  # Lightning's SLURM requeue checkpoints, in RUN_DIR
# the links wandb makes and replaces (it removes the old link first): wandb/<name>, and
# wandb/<run>/logs/debug-core.log
_WANDB_LINKS = frozenset({"latest-run", "debug.log", "debug-internal.log"})
# a process's global rank, as launchers set it: torchrun, SLURM, Lightning's DDP re-launch
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "NODE_RANK", "LOCAL_RANK", "GROUP_RANK")


def is_launching_process(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process launched its run (global rank 0): every rank variable of
    `RANK_VARIABLES` that is set is 0. The other DDP processes of a run join its folder."""
    return all(environ.get(name, "0").strip() in ("", "0") for name in RANK_VARIABLES)


def _made_by_wandb(relative: Path) -> bool:
    parts = relative.parts
    if len(parts) == 2 and parts[0] == "wandb":
        return parts[1] in _WANDB_LINKS
    return len(parts) == 4 and parts[0] == "wandb" and parts[2:] == ("logs", "debug-core.log")


def find_symlink(run_dir: str | os.PathLike) -> Path | None:
    """The first symbolic link inside `run_dir` (at any depth, links not followed), or None.
    The links wandb makes in ``wandb/`` (`_WANDB_LINKS`, ``logs/debug-core.log``) do not count:
    wandb removes and re-creates them, and the project reads nothing through them."""
    top = Path(run_dir)
    for root, dirs, files in os.walk(top, followlinks=False):
        for name in sorted([*dirs, *files]):
            path = Path(root, name)
            if path.is_symlink() and not _made_by_wandb(path.relative_to(top)):
                return path
    return None


def check_folder_links(run_dir: str | os.PathLike) -> None:
    """Refuse a run folder that holds a symbolic link (`find_symlink`).

    Raises:
        SetupError: naming the link and where it points.
    """
    link = find_symlink(run_dir)
    if link is not None:
        raise SetupError(
            f"{link} is a symbolic link (to {os.readlink(link)}): a run folder's files are "
            "never read or written through a link; replace it by the file or folder itself, "
            "or use another run folder"
        )


def check_not_in_use(run_dir: str | os.PathLike) -> None:
    """Refuse a run folder whose lock another live process holds (without creating anything).

    Raises:
        SetupError: ``<run_dir> is in use by process N``.
    """
    holder = lock_holder(run_dir)
    if holder is not None and holder != os.getpid():
        who = f"process {holder}" if holder > 0 else "another process"
        raise SetupError(f"{run_dir} is in use by {who}: wait for it to end, or stop it first")


@dataclass(frozen=True)
class RunRecord:
    """What a run folder holds of a run (read without following links: check them first)."""

    folder: Path
    status: str | None  # status.json's "status"; None when there is no readable status.json
    checkpoints: tuple[Path, ...]  # checkpoints/*.ckpt, then Lightning's hpc_ckpt_*.ckpt
    n_snapshots: int
    has_summary: bool
    has_hydra_record: bool  # .hydra/

    @property
    def holds_results(self) -> bool:
        """Whether anything of the run is worth keeping: a checkpoint, a snapshot, the summary,
        or a completed status. (A folder without any of them holds a run that stopped before
        its first checkpoint: nothing was trained.)"""
        return bool(
            self.checkpoints or self.n_snapshots or self.has_summary or self.status == "completed"
        )

    def describe(self) -> str:
        """``status S, checkpoint at ..., N snapshots``: what the record holds, for messages."""
        parts = [f"status {self.status or 'unknown'}"]
        if self.checkpoints:
            parts.append(f"checkpoint {self.checkpoints[0]}")
        if self.n_snapshots:
            parts.append(f"{self.n_snapshots} snapshot(s)")
        if self.has_summary:
            parts.append(SUMMARY_FILE)
        return ", ".join(parts)


def read_record(run_dir: str | os.PathLike) -> RunRecord:
    """What `run_dir` holds of a run (`RunRecord`)."""
    folder = Path(run_dir)
    status = read_json(folder / STATUS_FILE)
    value = status.get("status") if status else None
    checkpoints = sorted((folder / CHECKPOINTS_DIRNAME).glob("*.ckpt"))
    checkpoints += sorted(folder.glob(HPC_CHECKPOINT_GLOB))
    return RunRecord(
        folder=folder,
        status=value if isinstance(value, str) else None,
        checkpoints=tuple(p for p in checkpoints if p.is_file()),
        n_snapshots=len(list_snapshots(folder)),
        has_summary=(folder / SUMMARY_FILE).is_file(),
        has_hydra_record=(folder / ".hydra").is_dir(),
    )


def check_new_run_folder(
    run_dir: str | os.PathLike,
    resume_command: str | None,
    environ: Mapping[str, str] = os.environ,
) -> None:
    """Refuse to start a new run in `run_dir` when it holds another run's results
    (`RunRecord.holds_results`). A folder whose run stopped before its first checkpoint (nothing
    trained, nothing kept) is taken over. Under SLURM (``SLURM_JOB_ID``), a folder holding
    Lightning's requeue checkpoint ``hpc_ckpt_*.ckpt`` is a requeued job, which Lightning
    resumes from it. `resume_command`: the command that resumes the run, for the message.

    Raises:
        SetupError: naming the folder, what it holds and what to do.
    """
    folder = Path(run_dir)
    if not folder.is_dir():
        return
    record = read_record(folder)
    if not record.holds_results:
        return
    if "SLURM_JOB_ID" in environ and any(folder.glob(HPC_CHECKPOINT_GLOB)):
        return
    todo = (
        f"resume it with: {resume_command}; or"
        if resume_command is not None
        else "it has no checkpoint to resume from: move it away, or"
    )
    raise SetupError(
        f"{folder} already holds a run ({record.describe()}): a new run never writes into "
        f"another run's folder; {todo} give another hydra.run.dir"
    )


def damaged_snapshot(run_dir: str | os.PathLike, up_to_step: int) -> tuple[Path, str] | None:
    """The first snapshot of `run_dir` at a step <= `up_to_step` that does not read back whole,
    with the reason, or None. Each file is opened as a zip archive, every member is read with
    its CRC checked, then every array is loaded (`snapshots.load_snapshot`) and its stored
    step compared with the step in its name."""
    for path in list_snapshots(run_dir):
        step = snapshot_step(path)
        if step > up_to_step:
            continue
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                return path, f"{bad} fails its CRC check"
            stored = load_snapshot(path).get("step")
        except (OSError, zipfile.BadZipFile, RunFolderError, EOFError, ValueError) as exc:
            cause = exc.__cause__ or exc
            text = str(cause).strip()
            return path, type(cause).__name__ + (f": {text.splitlines()[0]}" if text else "")
        if stored is None or int(stored) != step:
            return path, f"it stores step {stored}, not the step in its name"
    return None


class NoFollowFileHandler(logging.FileHandler):
    """`logging.FileHandler` that appends to its file without following a symbolic link
    (``O_NOFOLLOW``: a link in the file's place is an error, never written through). Hydra's
    job log, ``RUN_DIR/train.log``, uses it (conf/train.yaml)."""

    def _open(self):
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.baseFilename, flags, 0o666)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)
