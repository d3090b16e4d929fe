"""Lightning loggers set up for unattended runs."""

from __future__ import annotations

import os

from pytorch_lightning.loggers import WandbLogger

from sgd_dynamics.wandb_io.environment import configure_wandb_environment
from sgd_dynamics.wandb_io.run_logging import workspace_key


class SectionedWandbLogger(WandbLogger):
    """A `WandbLogger` that files every training metric under a workspace section
    (`sgd_dynamics.wandb_io.run_logging.workspace_key`: ``test/acc`` -> ``train/test_acc``)."""

    def log_metrics(self, metrics, step=None) -> None:
        super().log_metrics({workspace_key(k): v for k, v in metrics.items()}, step=step)


def wandb_logger(save_dir: str | os.PathLike, offline: bool = True, **kwargs) -> WandbLogger:
    """A `WandbLogger` writing its run to ``save_dir/wandb/``; offline unless `offline` is False.

    Sets the environment first (`configure_wandb_environment`). Other keyword arguments
    (project, name, group, tags, ...) go to `WandbLogger` and `wandb.init`.
    """
    configure_wandb_environment(offline)
    logger = SectionedWandbLogger(save_dir=str(save_dir), offline=offline, **kwargs)
    # Lightning passes anonymous=None to wandb.init, which recent wandb versions warn about.
    if logger._wandb_init.get("anonymous") is None:
        logger._wandb_init.pop("anonymous", None)
    return logger
