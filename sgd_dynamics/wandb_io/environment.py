"""The process environment wandb reads at ``wandb.init``: set once here for training runs (the
Lightning `WandbLogger`) and sweep reports (`sgd_dynamics.wandb_io.report_run`)."""

from __future__ import annotations

import os

SERVICE = "WANDB_SERVICE"  # how wandb hands its service process to the processes it starts


def inherited_service(value: str | None) -> bool:
    """Whether a ``WANDB_SERVICE`` value names a wandb service that another process started
    (its second field is the starting process's id: ``<version>-<pid>-<transport>-<address>``)."""
    if not value:
        return False
    fields = value.split("-", 2)
    return len(fields) < 2 or fields[1] != str(os.getpid())


def configure_wandb_environment(offline: bool = True, disable_git: bool = False) -> None:
    """No console chatter or console capture (``WANDB_SILENT``, ``WANDB_CONSOLE=off``, unless
    already set); with `offline` no network access at all (``WANDB_MODE=offline`` unless wandb
    is disabled), so nothing prompts for a login or waits for a server; with `disable_git` no
    git state recorded (``WANDB_DISABLE_GIT``, unless already set).

    A ``WANDB_SERVICE`` inherited from the process that started this one (a notebook, a test
    or a launcher that used wandb itself) is dropped, so that the run starts its own wandb
    service: a run killed with SIGKILL leaves its stream registered in a shared service, and
    the resumed run, continuing the same run id there, would be refused ("run ID ... is in
    use")."""
    if inherited_service(os.environ.get(SERVICE)):
        del os.environ[SERVICE]
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_CONSOLE", "off")
    if disable_git:
        os.environ.setdefault("WANDB_DISABLE_GIT", "true")
    if offline and os.environ.get("WANDB_MODE") != "disabled":
        os.environ["WANDB_MODE"] = "offline"
