"""What DDP needs from the entry point: Lightning re-launches the script for ranks > 0.

Lightning's DDP launcher starts the other processes as ``python <script> <sys.argv[1:]>
hydra.run.dir=<HydraConfig.run.dir>``. These functions make those processes join the job's
folder (also in a sweep), refuse DDP where the re-launch cannot work (a launcher's worker
process), and clean up after a DDP job so that the next job of a sweep starts its own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from sgd_dynamics.utils.errors import SetupError

__all__ = [
    "DDP_CHILD_JOB_NAME",
    "DDP_ENVIRONMENT",
    "check_ddp_launch",
    "ddp_child_argv",
    "end_ddp_run",
    "main_is_script",
    "prepare_ddp_relaunch",
]

DDP_CHILD_JOB_NAME = "train_ddp_process_"  # hydra.job.name that Lightning gives DDP children
# set in os.environ by Lightning's DDP launcher in the process that launches the others
DDP_ENVIRONMENT = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def ddp_child_argv(argv: list[str]) -> list[str]:
    """The command line of a DDP process that Lightning re-launched (``LOCAL_RANK`` > 0): it
    joins its parent's run folder (Lightning passes ``hydra.run.dir``) and writes no file of its
    own there (Hydra's job log goes to the console only). Other command lines: unchanged."""
    if os.environ.get("LOCAL_RANK", "0") == "0" or not any(
        a.startswith(f"hydra.job.name={DDP_CHILD_JOB_NAME}") for a in argv
    ):
        return argv
    return [*argv, "hydra.job_logging.root.handlers=[console]", "~hydra.job_logging.handlers.file"]


def main_is_script(script: str | os.PathLike) -> bool:
    """Whether this process runs `script` (the entry point's file) as a script, which is what
    Lightning's DDP launcher re-runs, not a launcher's worker module (joblib's loky, submitit)
    that called the entry point's main function."""
    import __main__

    return (
        getattr(__main__, "__spec__", None) is None
        and Path(getattr(__main__, "__file__", "")).resolve() == Path(script).resolve()
    )


def _in_sweep() -> bool:
    from hydra.types import RunMode

    return HydraConfig.get().mode == RunMode.MULTIRUN


def check_ddp_launch(cfg: DictConfig, script: str | os.PathLike) -> None:
    """SetupError for DDP in a job that a launcher runs in a worker process (joblib,
    submitit_local): Lightning starts the other ranks by re-running the script, which is the
    worker's, not `script`. (Under SLURM, srun starts every rank and this does not apply.)"""
    strategy = str(cfg.trainer.get("strategy", "auto"))
    if not strategy.startswith("ddp") or "SLURM_NTASKS" in os.environ:
        return
    if _in_sweep() and not main_is_script(script):
        raise SetupError(
            f"trainer.strategy={strategy} in a job run by a launcher's worker process "
            "(hydra/launcher=joblib or submitit_local) is not supported: Lightning starts the "
            "other ranks by re-running the script. Sweep DDP runs with Hydra's basic launcher "
            "(no hydra/launcher=) or with hydra/launcher=submitit_slurm and "
            "hydra.launcher.tasks_per_node = trainer.devices"
        )


def prepare_ddp_relaunch(script: str | os.PathLike) -> None:
    """Make Lightning's DDP re-launch of `script` join this job's folder in a sweep.

    In a job of a sweep (``-m``) the re-launched command line would run the whole sweep again,
    in the wrong folder. So in a sweep job run by Hydra's basic launcher, sys.argv becomes the
    job's own overrides and hydra.run.dir the job's folder. (Launchers that run jobs in worker
    processes cannot be re-launched this way: use DDP with submitit_slurm, whose srun starts
    every process.)"""
    if not _in_sweep() or not main_is_script(script):
        return
    hydra_cfg = HydraConfig.get()
    sys.argv[1:] = list(hydra_cfg.overrides.task)
    OmegaConf.set_readonly(hydra_cfg, False)
    with open_dict(hydra_cfg):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
    OmegaConf.set_readonly(hydra_cfg, True)


def end_ddp_run(environment: dict[str, str | None]) -> None:
    """Undo what a DDP run leaves in this process, so that the next job of a sweep run here
    starts its own: destroy the process group (its other ranks have exited) and restore the
    DDP variables of `environment` (with LOCAL_RANK left set, Lightning would take the next
    job's processes as started externally and wait for them)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    for name, value in environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
