"""What train.py prints about a run's life cycle: how to resume it, and how it ended."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pytorch_lightning.utilities.rank_zero import rank_zero_only

from sgd_dynamics.lifecycle.outcomes import RunDiverged, RunInterrupted, RunStopped
from sgd_dynamics.utils.commands import original_command, override_argument, train_command
from sgd_dynamics.utils.console import say


def resume_command(checkpoint: str | os.PathLike) -> str:
    """The shell command that continues the run of `checkpoint` (``RUN_DIR/checkpoints/X``):
    this Python and script with ``ckpt_path=`` (train.py replays the run's own overrides),
    quoted for Hydra's grammar and the shell (`sgd_dynamics.utils.commands`)."""
    return train_command([override_argument("ckpt_path", Path(checkpoint).resolve())])


def announce_resume(checkpoint: str | os.PathLike) -> None:
    """Print the command that resumes the run if it is stopped (also by SIGKILL, when nothing
    can be printed any more). Called once `checkpoint` exists (by the checkpoint callback when
    training starts), from the global-zero process."""
    line = f"if interrupted, resume with: {resume_command(checkpoint)}"
    from tqdm import tqdm  # Lightning's progress bars are tqdm's

    if getattr(tqdm, "_instances", None):  # a bar is on the console: print above it
        tqdm.write(line, file=sys.stdout)
        sys.stdout.flush()
    else:
        say(line)


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
            elif (command := original_command()) is not None:
                print(f"no checkpoint to resume from: start again with: {command}", file=sys.stderr)
        else:
            print(f"error: {exc}", file=sys.stderr)
        sys.stderr.flush()
    if in_sweep and isinstance(exc, RunDiverged):
        return True
    sys.exit(exc.exit_code)
