"""Hydra callback: while a job of a sweep runs, every console line it prints starts with
``[job N] `` (N: Hydra's job number, its folder SWEEP_DIR/N), so that the lines of jobs running
side by side (joblib workers share the terminal) say which job printed them
(`sgd_dynamics.utils.console`)."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from sgd_dynamics.utils.console import set_job_label


def sweep_job_label(config: DictConfig) -> str:
    """``"[job N] "`` for job N of a sweep, ``""`` for a single run."""
    hydra = config.hydra
    if getattr(hydra.mode, "name", hydra.mode) != RunMode.MULTIRUN.name:  # RunMode or its name
        return ""
    return f"[job {hydra.job.num}] "


class JobConsole(Callback):
    """Labels a sweep job's console lines from its start to its end (Hydra calls it in the
    process that runs the job: a joblib or submitit worker, or the launching process)."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        set_job_label(sweep_job_label(config))

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        set_job_label("")
