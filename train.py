"""Train a classifier with SGD and record the run: ``python train.py [key=value ...]``.

Hydra composes conf/train.yaml with the overrides. This file is the only place that knows
Hydra: it builds the data module, network, LightningModule, loggers, callbacks and Trainer
from the config and hands them to `sgd_dynamics.lightning.run.train_and_measure`. Bad input (a
value out of range, missing data files) is printed as ``error: ...`` with exit status 2.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning (libgomp reads this once, when torch loads it):
# spinning threads take the cores other processes need when the machine is shared.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import secrets
import sys
from pathlib import Path

if __name__ == "__main__":  # a signal while torch and Lightning load: one line, no traceback
    from sgd_dynamics.lifecycle.stop import exit_on_signal_during_setup

    exit_on_signal_during_setup()

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

# Light imports only: torch and Lightning load inside `build`/`main`, so `--help` is fast.
from sgd_dynamics.lifecycle.faults import fault_point
from sgd_dynamics.lifecycle.stop import SetupInterrupted
from sgd_dynamics.utils import ConfigError, SetupError, run_dir_of_checkpoint, run_name, sweep_name
from sgd_dynamics.utils.console import say
from sgd_dynamics.utils.run_dir import unwritable_output


def register_resolvers() -> None:
    """Resolvers used by conf/: ${run_name:DIR} and ${sweep_name:DIR} (wandb name and group)."""
    OmegaConf.register_new_resolver("run_name", run_name, replace=True)
    OmegaConf.register_new_resolver("sweep_name", sweep_name, replace=True)


def resume_argv(argv: list[str]) -> list[str]:
    """Rewrite the command line of ``ckpt_path=RUN_DIR/checkpoints/X.ckpt`` to continue RUN_DIR:
    the run's own overrides first (from RUN_DIR/.hydra/overrides.yaml), then the new ones (which
    win), then ``hydra.run.dir=RUN_DIR``. Other command lines are returned unchanged."""
    if any(a.startswith("-") for a in argv) or any(a.startswith("hydra.run.dir=") for a in argv):
        return argv
    ckpt = [a.split("=", 1)[1] for a in argv if a.startswith("ckpt_path=")]
    run_dir = run_dir_of_checkpoint(ckpt[-1]) if ckpt and ckpt[-1] not in ("", "null") else None
    if run_dir is None:
        return argv

    def key(override: str) -> str:
        return override.split("=", 1)[0].lstrip("~+")

    new_keys = {key(a) for a in argv}
    from sgd_dynamics.resume_guard import check_checkpoint, check_replayed_overrides

    original = [str(o) for o in OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")]
    check_replayed_overrides(original, run_dir / ".hydra" / "overrides.yaml")
    check_checkpoint(ckpt[-1])  # before Hydra rewrites anything in RUN_DIR
    kept = [o for o in original if key(o) not in new_keys]
    return [*kept, *argv, f"hydra.run.dir='{run_dir.resolve()}'"]


DDP_CHILD_JOB_NAME = "train_ddp_process_"  # hydra.job.name that Lightning gives DDP children


def ddp_child_argv(argv: list[str]) -> list[str]:
    """The command line of a DDP process that Lightning re-launched (``LOCAL_RANK`` > 0): it
    joins its parent's run folder (Lightning passes ``hydra.run.dir``) and writes no file of its
    own there (Hydra's job log goes to the console only). Other command lines: unchanged."""
    if os.environ.get("LOCAL_RANK", "0") == "0" or not any(
        a.startswith(f"hydra.job.name={DDP_CHILD_JOB_NAME}") for a in argv
    ):
        return argv
    return [*argv, "hydra.job_logging.root.handlers=[console]", "~hydra.job_logging.handlers.file"]


def _main_is_this_script() -> bool:
    """Whether this process runs train.py as a script (what Lightning's DDP launcher re-runs),
    not a launcher's worker module (joblib's loky, submitit) that called `main`."""
    import __main__

    return (
        getattr(__main__, "__spec__", None) is None
        and Path(getattr(__main__, "__file__", "")).resolve() == Path(__file__).resolve()
    )


def check_ddp_launch(cfg: DictConfig) -> None:
    """SetupError for DDP in a job that a launcher runs in a worker process (joblib,
    submitit_local): Lightning starts the other ranks by re-running the script, which is the
    worker's, not train.py. (Under SLURM, srun starts every rank and this does not apply.)"""
    from hydra.types import RunMode

    strategy = str(cfg.trainer.get("strategy", "auto"))
    if not strategy.startswith("ddp") or "SLURM_NTASKS" in os.environ:
        return
    if HydraConfig.get().mode == RunMode.MULTIRUN and not _main_is_this_script():
        raise SetupError(
            f"trainer.strategy={strategy} in a job run by a launcher's worker process "
            "(hydra/launcher=joblib or submitit_local) is not supported: Lightning starts the "
            "other ranks by re-running the script. Sweep DDP runs with Hydra's basic launcher "
            "(no hydra/launcher=) or with hydra/launcher=submitit_slurm and "
            "hydra.launcher.tasks_per_node = trainer.devices"
        )


def prepare_ddp_relaunch() -> None:
    """Make Lightning's DDP re-launch of this script join this job's folder in a sweep.

    Lightning starts the other processes as ``python train.py <sys.argv[1:]>
    hydra.run.dir=<HydraConfig.run.dir>``; in a job of a sweep (``-m``) that would run the whole
    sweep again, in the wrong folder. So in a sweep job run by Hydra's basic launcher, sys.argv
    becomes the job's own overrides and hydra.run.dir the job's folder. (Launchers that run jobs
    in worker processes cannot be re-launched this way: use DDP with submitit_slurm, whose srun
    starts every process.)"""
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN or not _main_is_this_script():
        return
    sys.argv[1:] = list(hydra_cfg.overrides.task)
    OmegaConf.set_readonly(hydra_cfg, False)
    with open_dict(hydra_cfg):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
    OmegaConf.set_readonly(hydra_cfg, True)


# set in os.environ by Lightning's DDP launcher in the process that launches the others
DDP_ENVIRONMENT = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


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


def set_threads(cfg: DictConfig, net, n_train: int) -> str:
    """Size the thread pools by `cfg.threads` (sgd_dynamics.threads); returns the start-up line.
    The run's size: the network over the spectral samples (the batch with spectra off)."""
    from sgd_dynamics.models import num_parameters
    from sgd_dynamics.threads import Work, apply_threads, threads_for_run

    spectral = cfg.get("spectral")
    samples = cfg.batch_size if spectral is None else min(spectral.n_samples or n_train, n_train)
    launcher = HydraConfig.get().launcher if HydraConfig.initialized() else None
    work = Work(num_parameters(net), max(samples, cfg.batch_size))
    choice = threads_for_run(cfg.threads, trainer=cfg.trainer, launcher=launcher, work=work)
    apply_threads(choice.threads)
    return str(choice)


def build(cfg: DictConfig) -> dict:
    """Instantiate everything a run needs from the composed config; loads the data (so missing
    files and bad values stop the run before training)."""
    import inspect

    import pytorch_lightning as pl

    from sgd_dynamics.config_schema import validate_config, validate_sizes
    from sgd_dynamics.lightning.module import ClassifierModule
    from sgd_dynamics.lightning.run import quiet_lightning
    from sgd_dynamics.models import num_parameters
    from sgd_dynamics.resume_guard import check_checkpoint

    validate_config(cfg, trainer_arguments=inspect.signature(pl.Trainer).parameters)
    quiet_lightning()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.dataset)
    datamodule.load()
    net = instantiate(cfg.model, input_dim=datamodule.input_dim, num_classes=datamodule.num_classes)
    validate_sizes(cfg, n_train=datamodule.n_train, n_params=num_parameters(net))
    say(set_threads(cfg, net, datamodule.n_train))
    module = ClassifierModule(net, **OmegaConf.to_container(cfg.optimizer, resolve=True))
    if cfg.ckpt_path is not None:
        check_checkpoint(cfg.ckpt_path, module)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if cfg.get("spectral") is not None:
        callbacks.append(instantiate(cfg.spectral))
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    config = OmegaConf.to_container(cfg, resolve=True)
    config["overrides"] = (
        list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    )
    return dict(datamodule=datamodule, module=module, trainer=trainer, config=config)


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


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    from sgd_dynamics.lifecycle.status import write_failed_status
    from sgd_dynamics.lightning.announce import announce_resume, exit_for
    from sgd_dynamics.lightning.run import train_and_measure as run  # here: `--help` needs neither

    register_resolvers()  # again here: launcher workers run main without this module's import
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    prepare_ddp_relaunch()
    environment = {name: os.environ.get(name) for name in DDP_ENVIRONMENT}
    try:
        check_ddp_launch(cfg)
        fault_point("setup")  # test-only hook (sgd_dynamics.lifecycle.faults)
        parts = build(cfg)
    except SetupInterrupted:
        if cfg.ckpt_path is None:  # a resumed run's status stays as it was
            write_failed_status(run_dir, "interrupted during set-up", "interrupted")
        raise
    except Exception as exc:
        message = user_error(exc)
        if message is None:
            raise
        if not isinstance(exc, ConfigError) and cfg.ckpt_path is None:
            # a refused config leaves no status.json; a refused resume leaves the run's as it was
            write_failed_status(run_dir, f"error: {message}")
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    announce_resume(parts["trainer"])
    try:
        run(run_dir=run_dir, ckpt_path=cfg.ckpt_path, **parts)
    except Exception as exc:  # interrupted, diverged, unwritable folder: its lines, exit code
        from hydra.types import RunMode

        if not exit_for(exc, in_sweep=HydraConfig.get().mode == RunMode.MULTIRUN):
            raise
    finally:
        end_ddp_run(environment)
        say(f"Outputs: {run_dir}")


register_resolvers()

if __name__ == "__main__":
    os.environ["SGD_DYNAMICS_RUN_ID"] = secrets.token_hex(3)
    try:
        sys.argv[1:] = ddp_child_argv(resume_argv(sys.argv[1:]))
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    if (problem := unwritable_output(sys.argv[1:])) is not None:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    main()
