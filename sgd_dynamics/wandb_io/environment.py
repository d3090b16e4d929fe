"""The process environment wandb reads at ``wandb.init``: set once here for training runs (the
Lightning `WandbLogger`) and sweep reports (`sgd_dynamics.wandb_io.report_run`)."""

from __future__ import annotations

import os


def configure_wandb_environment(offline: bool = True, disable_git: bool = False) -> None:
    """No console chatter or console capture (``WANDB_SILENT``, ``WANDB_CONSOLE=off``, unless
    already set); with `offline` no network access at all (``WANDB_MODE=offline`` unless wandb
    is disabled), so nothing prompts for a login or waits for a server; with `disable_git` no
    git state recorded (``WANDB_DISABLE_GIT``, unless already set)."""
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_CONSOLE", "off")
    if disable_git:
        os.environ.setdefault("WANDB_DISABLE_GIT", "true")
    if offline and os.environ.get("WANDB_MODE") != "disabled":
        os.environ["WANDB_MODE"] = "offline"
