"""Hydra callback: at the end of a sweep (``train.py -m ...``), print where its jobs are and
the command that compares them."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sgd_dynamics.utils.console import say


def report_command(sweep_dir: Path) -> str:
    """``<sgd-dynamics> report SWEEP_DIR``, with the ``sgd-dynamics`` script of the running
    interpreter's environment (relative to the working folder when inside it)."""
    script = Path(sys.executable).parent / "sgd-dynamics"
    if script.is_file():
        try:
            shown = (
                os.path.relpath(script) if script.resolve().is_relative_to(Path.cwd()) else script
            )
        except ValueError:
            shown = script
    else:
        shown = "sgd-dynamics"
    return f"{shlex.quote(str(shown))} report {shlex.quote(str(sweep_dir))}"


class SweepOutputs(Callback):
    """Prints ``Sweep outputs: SWEEP_DIR`` and ``Report: sgd-dynamics report SWEEP_DIR`` when
    every job of a multirun has ended."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        say(f"Sweep outputs: {sweep_dir}")
        say(f"Report: {report_command(sweep_dir)}")
