"""The entry point's two halves: the command line before Hydra (`prepare_command_line`) and
the job Hydra runs with the composed configuration (`run_job`). ``train.py`` calls both."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from sgd_dynamics.launch.build import build
from sgd_dynamics.launch.command_line import check_command_line
from sgd_dynamics.launch.ddp import (
    DDP_ENVIRONMENT,
    check_ddp_launch,
    ddp_child_argv,
    end_ddp_run,
    prepare_ddp_relaunch,
)
from sgd_dynamics.launch.overrides import check_typed_resolvers, output_folder
from sgd_dynamics.launch.resume import restore_run_record, resume_argv
from sgd_dynamics.launch.run_folder import check_run_settings, claim_resume_folder
from sgd_dynamics.lifecycle.faults import fault_point
from sgd_dynamics.lifecycle.run_lock import abandon_run_locks
from sgd_dynamics.lifecycle.stop import SetupInterrupted
from sgd_dynamics.run_folder.location import run_name, sweep_name, unwritable_output
from sgd_dynamics.utils import ConfigError, SetupError
from sgd_dynamics.utils.commands import remember_original_command

__all__ = ["prepare_command_line", "register_resolvers", "run_job", "user_error"]


def register_resolvers() -> None:
    """Resolvers used by conf/: ${run_name:DIR} and ${sweep_name:DIR} (wandb name and group)."""
    OmegaConf.register_new_resolver("run_name", run_name, replace=True)
    OmegaConf.register_new_resolver("sweep_name", sweep_name, replace=True)


def user_error(exc: BaseException) -> str | None:
    """The message to print for an error caused by the user's input, or None for a bug."""
    seen = exc
    while seen is not None:
        if isinstance(seen, SetupError):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, InstantiationException):
        return str(exc)
    return None


def _refuse(message: str) -> NoReturn:
    """Print ``error: <message>`` and exit with status 2 (bad input, no traceback)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def prepare_command_line(argv: list[str]) -> list[str]:
    """The command line Hydra gets: a resume continues its run folder (`resume_argv`), a
    re-launched DDP process joins its parent's (`ddp_child_argv`). Draws this invocation's
    run id (``SGD_DYNAMICS_RUN_ID``, part of the output folder's name). Bad input (a resolver
    outside `check_typed_resolvers`'s, a refused resume, an output folder that cannot be written)
    prints ``error: ...`` and exits with status 2, before Hydra creates anything."""
    os.environ["SGD_DYNAMICS_RUN_ID"] = secrets.token_hex(3)
    remember_original_command(argv)
    try:
        check_typed_resolvers(argv)  # no ${oc.env:...} and other resolvers in typed values
        claim_resume_folder(argv)  # a resume's folder: checked and locked before Hydra
        argv = ddp_child_argv(resume_argv(argv))
        if (problem := unwritable_output(output_folder(argv))) is not None:
            raise SetupError(problem)
        check_command_line(argv)  # Hydra's errors, the schema, run limits: one line each
    except SetupError as exc:
        abandon_run_locks()  # a refused command leaves the folder it claimed as it was
        _refuse(str(exc))
    return argv


def _build_keeping_record(cfg: DictConfig, script: str | os.PathLike) -> dict:
    """`build` (after the DDP launch check); when it fails, a resume's RUN_DIR/.hydra files,
    which Hydra has rewritten, are put back first (`restore_run_record`)."""
    try:
        check_ddp_launch(cfg, script)
        fault_point("setup")  # test-only hook (sgd_dynamics.lifecycle.faults)
        check_run_settings(cfg, HydraConfig.get().runtime.output_dir)
        return build(cfg)
    except BaseException:
        restore_run_record()
        raise


def _build_or_exit(cfg: DictConfig, run_dir: Path, script: str | os.PathLike) -> dict:
    """`build`, or for bad input: ``error: ...`` and exit status 2; a single run's fresh folder
    is removed, other folders get ``status.json`` "failed" (unless the config itself was
    refused or a resume was)."""
    from sgd_dynamics.run_folder.status import write_failed_status

    try:
        return _build_keeping_record(cfg, script)
    except SetupInterrupted:
        if cfg.ckpt_path is None:  # a resumed run's status stays as it was
            write_failed_status(run_dir, "interrupted during set-up", "interrupted")
        raise
    except Exception as exc:
        message = user_error(exc)
        if message is None:
            raise
        if cfg.ckpt_path is None and not _removed_if_single_run(run_dir):
            if not isinstance(exc, ConfigError):
                # a refused config leaves no status.json, a refused resume the run's as it was
                write_failed_status(run_dir, f"error: {message}")
        _refuse(message)


def _removed_if_single_run(run_dir: Path) -> bool:
    """A refused single run (not a sweep's job, whose folder the report reads): its folder, if
    this invocation's Hydra made it, removed (`remove_refused_run_folder`)."""
    from hydra.types import RunMode

    from sgd_dynamics.run_folder.refused import remove_refused_run_folder

    return HydraConfig.get().mode == RunMode.RUN and remove_refused_run_folder(run_dir)


def run_job(cfg: DictConfig, script: str | os.PathLike) -> None:
    """One job: build the run from `cfg` and train it
    (`sgd_dynamics.lightning.run.train_and_measure`); `script` is the entry point's file (what
    Lightning's DDP launcher re-runs). Ends with ``Outputs: <run folder>``; an interrupted,
    diverged or unwritable run prints its lines and exits with its status
    (`sgd_dynamics.lightning.announce.exit_for`)."""
    from hydra.types import RunMode

    from sgd_dynamics.lightning.announce import announce_outputs, exit_for
    from sgd_dynamics.lightning.run import train_and_measure

    register_resolvers()  # again here: launcher workers run the job without train.py's import
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    prepare_ddp_relaunch(script)
    environment = {name: os.environ.get(name) for name in DDP_ENVIRONMENT}
    parts = _build_or_exit(cfg, run_dir, script)
    try:
        train_and_measure(run_dir=run_dir, ckpt_path=cfg.ckpt_path, **parts)
    except Exception as exc:  # interrupted, diverged, unwritable folder: its lines, exit code
        if not exit_for(exc, in_sweep=HydraConfig.get().mode == RunMode.MULTIRUN):
            raise
    finally:
        end_ddp_run(environment)
        announce_outputs(run_dir)
