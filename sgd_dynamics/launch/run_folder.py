"""The run folder is the project's own: claimed before Hydra writes in it, held for the run.

Three moments:

- `claim_resume_folder`, on the command line before Hydra (``train.py ckpt_path=...``): the
  checkpoint must lie in a run folder (``RUN_DIR/checkpoints/``, beside
  ``RUN_DIR/.hydra/overrides.yaml``), the folder's path must be one Hydra can hold, the folder
  must hold no symbolic link and no other live process, and the checkpoint must exist (a run
  killed before its first checkpoint gets the command that starts it again); then its lock is
  taken, before Hydra rewrites ``RUN_DIR/.hydra``.
- `RunFolderGuard.on_run_start` (a Hydra callback, conf/train.yaml), when Hydra has resolved
  ``hydra.run.dir`` and has written nothing yet: `claim_run_folder` (the same checks, plus
  `check_new_run_folder` for a new run); then the lock. In a sweep, each job's folder is
  locked while the job runs (`on_job_start` / `on_job_end`).
- `check_run_settings`, with the composed configuration, before the run is built: the
  checkpoint folder is the run folder's ``checkpoints/``; a resume's ``trainer.max_steps`` is not
  below the checkpoint's step, and the snapshots up to that step read back whole.

Only the launching process (global rank 0) checks and locks; the other DDP processes join.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from hydra.errors import OverrideParseException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from sgd_dynamics.launch.overrides import (
    check_replayed_overrides,
    override_key,
    parse_overrides,
)
from sgd_dynamics.lifecycle.run_lock import acquire_run_lock, release_run_lock
from sgd_dynamics.run_folder.hydra_record import read_run_overrides
from sgd_dynamics.run_folder.ownership import (
    check_folder_links,
    check_new_run_folder,
    check_not_in_use,
    damaged_snapshot,
    is_launching_process,
    read_record,
)
from sgd_dynamics.utils.commands import override_argument, train_command, unusable_run_folder_path
from sgd_dynamics.utils.errors import ConfigError, SetupError

__all__ = [
    "RunFolderGuard",
    "check_run_settings",
    "claim_resume_folder",
    "claim_run_folder",
    "resume_checkpoint_of",
    "start_again_command",
]


def resume_checkpoint_of(argv: list[str]) -> str | None:
    """The checkpoint a single run's command line resumes from (its last ``ckpt_path``), or
    None: no ``ckpt_path`` (or null, or empty), a sweep or another flag, or an argument Hydra
    cannot parse (Hydra reports it)."""
    if any(a.startswith("-") for a in argv) or not any("ckpt_path" in a for a in argv):
        return None
    try:
        parsed = parse_overrides(argv)
    except OverrideParseException:
        return None
    values = [o.value() for o in parsed if override_key(o) == "ckpt_path" and not o.is_delete()]
    if not values or values[-1] in ("", None) or not isinstance(values[-1], str | int | float):
        return None
    return str(values[-1])


def start_again_command(run_dir: Path) -> str:
    """The command that starts the run of `run_dir` again from step 0: its overrides
    (``.hydra/overrides.yaml``) and, when the folder holds nothing to keep, the folder itself
    (a new run takes such a folder over); else the run gets a new folder. The overrides are
    checked first as a resume's are (`check_replayed_overrides`): a command is never printed
    with what the replay guard refuses.

    Raises:
        ConfigError: overrides the replay guard refuses.
        SetupError: ``.hydra/overrides.yaml`` cannot be read.
    """
    overrides = read_run_overrides(run_dir)
    if overrides is None:
        raise SetupError(
            f"{run_dir} holds no checkpoint, and its .hydra/overrides.yaml cannot be read: start "
            "the run again with its original command"
        )
    check_replayed_overrides(overrides, run_dir / ".hydra" / "overrides.yaml")
    if not read_record(run_dir).holds_results:
        overrides = [*overrides, override_argument("hydra.run.dir", run_dir)]
    return train_command(overrides)


def claim_run_folder(run_dir: str | os.PathLike, new_run: bool) -> None:
    """Check `run_dir` and take its lock for this process (`acquire_run_lock`). Refused: a path
    Hydra cannot hold (`unusable_run_folder_path`), a symbolic link inside the folder, a folder
    another live process holds, and, for a `new_run`, a folder holding another run's results
    (`check_new_run_folder`, whose message gives the command resuming that run).

    Raises:
        SetupError: one line naming the folder and what to do.
    """
    run_dir = Path(run_dir)
    if (problem := unusable_run_folder_path(run_dir)) is not None:
        raise SetupError(problem)
    if run_dir.is_dir():
        check_folder_links(run_dir)
        check_not_in_use(run_dir)
        if new_run:
            checkpoints = read_record(run_dir).checkpoints
            resume = checkpoints and train_command([override_argument("ckpt_path", checkpoints[0])])
            check_new_run_folder(run_dir, resume or None)
    run_dir.mkdir(parents=True, exist_ok=True)
    acquire_run_lock(run_dir)


def claim_resume_folder(argv: list[str]) -> None:
    """Before Hydra, for a resume (``ckpt_path=RUN_DIR/checkpoints/NAME.ckpt`` without
    ``hydra.run.dir``) in the launching process: refuse what cannot be resumed and take the run
    folder's lock (see the module's docstring). Other command lines: nothing.

    Raises:
        SetupError: a checkpoint outside a run folder, ``hydra.run.dir`` given with it, a run
            folder refused by `claim_run_folder`, a missing checkpoint.
    """
    ckpt = resume_checkpoint_of(argv)
    if ckpt is None or not is_launching_process():
        return
    parsed = parse_overrides(argv)
    run_dir = Path(ckpt).absolute().parent.parent
    if any(override_key(o) == "hydra.run.dir" for o in parsed):
        raise SetupError(
            f"ckpt_path={ckpt} with hydra.run.dir: a run is resumed in its own folder "
            f"({run_dir}); leave hydra.run.dir out"
        )
    if Path(ckpt).parent.name != "checkpoints" or not (run_dir / ".hydra").is_dir():
        raise SetupError(
            f"ckpt_path={ckpt}: not a checkpoint of a run folder (RUN_DIR/checkpoints/NAME.ckpt "
            "beside RUN_DIR/.hydra/): a run is resumed in its own folder, with its own settings"
        )
    run_dir = run_dir.resolve()  # links on the way to the folder are the user's; none inside
    claim_run_folder(run_dir, new_run=False)
    if not (run_dir / ".hydra" / "overrides.yaml").is_file():
        raise SetupError(
            f"{run_dir} is not a run folder that can be resumed: .hydra/overrides.yaml, the "
            "run's settings, is missing"
        )
    if not (run_dir / "checkpoints" / Path(ckpt).name).is_file():
        _refuse_missing_checkpoint(run_dir, ckpt)


def _refuse_missing_checkpoint(run_dir: Path, ckpt: str) -> None:
    record = read_record(run_dir)
    if record.checkpoints:
        names = ", ".join(str(p) for p in record.checkpoints)
        raise SetupError(
            f"cannot read checkpoint {ckpt}: no such file (the run folder has {names})"
        )
    if record.status == "running":
        why = (
            "its run was killed before it wrote its first checkpoint (status.json says "
            "running, and no process holds the folder)"
        )
    else:
        why = f"its run stopped before it wrote its first checkpoint (status {record.status})"
    raise SetupError(
        f"{run_dir} holds no checkpoint: {why}; nothing was trained, so there is nothing to "
        f"resume: start it again with: {start_again_command(run_dir)}"
    )


def _exit_with(error: SetupError) -> None:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


class RunFolderGuard(Callback):
    """Hydra callback: claims a single run's folder before Hydra writes in it
    (`claim_run_folder`), and locks each job's folder of a sweep while the job runs. Refusals
    print ``error: ...`` and exit with status 2."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not is_launching_process():
            return
        try:
            folder = Path(os.path.abspath(str(config.hydra.run.dir)))
        except Exception:  # resolvable only later (a ${hydra:...} of the job): Hydra reports it
            return
        try:
            claim_run_folder(folder, new_run=config.get("ckpt_path") is None)
        except SetupError as error:
            _exit_with(error)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN or not is_launching_process():
            return
        try:
            acquire_run_lock(config.hydra.runtime.output_dir)
        except SetupError as error:
            _exit_with(error)

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:
            release_run_lock(config.hydra.runtime.output_dir)


def _checkpoint_step(path: str) -> int | None:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # check_checkpoint reports an unreadable file
        return None
    step = state.get("global_step") if isinstance(state, dict) else None
    return int(step) if isinstance(step, int) else None


def check_run_settings(cfg: DictConfig, run_dir: str | os.PathLike) -> None:
    """With the composed configuration, before the run is built: the checkpoint callback writes
    into ``run_dir/checkpoints`` (the folder a resume continues); and on a resume
    (``ckpt_path``), ``trainer.max_steps`` is not below the checkpoint's step and every snapshot
    at or before that step reads back whole (`damaged_snapshot`). A resume with ``max_steps``
    equal to the checkpoint's step trains nothing and redoes the run's end (summary, figures,
    ``completed``).

    Raises:
        ConfigError: naming the setting or the damaged file, and what to do.
    """
    run_dir = Path(run_dir)
    checkpoint = (cfg.get("callbacks") or {}).get("checkpoint")
    if checkpoint is not None and checkpoint.get("dirpath") is not None:
        dirpath = Path(str(checkpoint.dirpath))
        if dirpath.absolute().resolve() != (run_dir / "checkpoints").absolute().resolve():
            raise ConfigError(
                f"callbacks.checkpoint.dirpath={dirpath}: the checkpoint is kept in the run "
                f"folder ({run_dir / 'checkpoints'}), which a resume continues; leave it unset"
            )
    if cfg.get("ckpt_path") is None:
        return
    ckpt = str(cfg.ckpt_path)
    step = _checkpoint_step(ckpt)
    if step is None:
        return
    max_steps = cfg.get("trainer", {}).get("max_steps")
    if isinstance(max_steps, int) and 0 <= max_steps < step:
        raise ConfigError(
            f"trainer.max_steps={max_steps}: the checkpoint {ckpt} is at step {step}, and a "
            f"resume continues from there: give trainer.max_steps >= {step} (or leave it out)"
        )
    damaged = damaged_snapshot(run_dir, step)
    if damaged is not None:
        path, reason = damaged
        raise ConfigError(
            f"snapshot {path} is damaged ({reason}); it was taken at or before the "
            f"checkpoint's step {step}, so the resume would not take it again: move it out of "
            f"{path.parent} to resume without it (the run's history then lacks it), or start the "
            "run again"
        )
