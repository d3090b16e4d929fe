"""Lightning loggers set up for unattended runs."""

from __future__ import annotations

import os

from pytorch_lightning.loggers import WandbLogger


def configure_wandb_environment(offline: bool = True) -> None:
    """Environment for wandb before a run starts: no console chatter or console capture, and
    with `offline` no network access at all (``WANDB_MODE=offline`` unless wandb is disabled),
    so a run never prompts for a login or waits for a server."""
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_CONSOLE", "off")
    if offline and os.environ.get("WANDB_MODE") != "disabled":
        os.environ["WANDB_MODE"] = "offline"


def wandb_logger(save_dir: str | os.PathLike, offline: bool = True, **kwargs) -> WandbLogger:
    """A `WandbLogger` writing its run to ``save_dir/wandb/``; offline unless `offline` is False.

    Sets the environment first (`configure_wandb_environment`). Other keyword arguments
    (project, name, group, tags, ...) go to `WandbLogger` and `wandb.init`.
    """
    configure_wandb_environment(offline)
    logger = WandbLogger(save_dir=str(save_dir), offline=offline, **kwargs)
    # Lightning passes anonymous=None to wandb.init, which recent wandb versions warn about.
    if logger._wandb_init.get("anonymous") is None:
        logger._wandb_init.pop("anonymous", None)
    return logger
