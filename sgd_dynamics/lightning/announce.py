"""What train.py prints about a run's life cycle: how to resume it, and how it ended."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from sgd_dynamics.lifecycle.outcomes import RunDiverged, RunInterrupted, RunStopped
from sgd_dynamics.lightning.checkpoint_io import checkpoint_files
from sgd_dynamics.utils.console import say


def resume_command(checkpoint: str | os.PathLike) -> str:
    """The shell command that continues the run of `checkpoint` (``RUN_DIR/checkpoints/X``):
    this Python and script with ``ckpt_path=`` (train.py replays the run's own overrides)."""
    script = str(Path(sys.argv[0]).resolve())
    return shlex.join([sys.executable, script, f"ckpt_path={Path(checkpoint).resolve()}"])


def announce_resume(trainer: pl.Trainer) -> None:
    """Print, before training starts, the command that resumes the run if it is stopped (also
    by SIGKILL, when nothing can be printed any more); global-zero process only."""
    paths = checkpoint_files(trainer)
    if paths and trainer.is_global_zero:
        say(f"if interrupted, resume with: {resume_command(paths[0])}")


def announce_outputs(run_dir: str | os.PathLike) -> None:
    """The run's closing line ``Outputs: <run folder>``, from the global-zero process only."""
    if rank_zero_only.rank == 0:
        say(f"Outputs: {run_dir}")


def exit_for(exc: BaseException, in_sweep: bool = False) -> bool:
    """For a `RunStopped`: print its line(s) (global-zero process) and exit with its code,
    except for a diverged job of a sweep (`in_sweep`), which returns True so that the other
    jobs still run (its status.json says "diverged"). Any other exception: False (the caller
    re-raises it)."""
    if not isinstance(exc, RunStopped):
        return False
    if rank_zero_only.rank == 0:
        if isinstance(exc, RunInterrupted):
            print(str(exc), file=sys.stderr)
            if exc.checkpoint is not None:
                print(f"resume with: {resume_command(exc.checkpoint)}", file=sys.stderr)
        else:
            print(f"error: {exc}", file=sys.stderr)
        sys.stderr.flush()
    if in_sweep and isinstance(exc, RunDiverged):
        return True
    sys.exit(exc.exit_code)
