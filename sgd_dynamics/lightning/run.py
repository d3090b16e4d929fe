"""Fit a classifier and record the run: status.json, summary.json, final metrics.

`train_and_measure` receives ready-made objects (data module, LightningModule, Trainer), so the
library does not depend on the configuration system; `train.py` at the repository root builds
them from the Hydra config.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import SIGTERMException

from sgd_dynamics.lifecycle.faults import fault_point
from sgd_dynamics.lifecycle.outcomes import RunInterrupted, RunStopped, as_run_stopped
from sgd_dynamics.lifecycle.stop import graceful_stop
from sgd_dynamics.lightning.checkpoint_io import checkpoint_files
from sgd_dynamics.lightning.epochs import completed_epochs
from sgd_dynamics.lightning.module import ClassifierModule
from sgd_dynamics.models import evaluate, num_parameters
from sgd_dynamics.run_folder.files import is_temp_file, write_json_atomic
from sgd_dynamics.run_folder.snapshots import SPECTRA_DIRNAME
from sgd_dynamics.run_folder.status import StatusFile
from sgd_dynamics.wandb_io.run_logging import log_run_artifact

SUMMARY_FILE = "summary.json"


@runtime_checkable
class DrawsAtRunEnd(Protocol):
    """What `train_and_measure` expects of a callback that draws figures at the end of training
    (`callbacks.spectral.SpectralSnapshots` implements it).

    Before fitting, `train_and_measure` sets ``defer_drawing = True`` on every callback of the
    trainer that has this interface: the callback then does not draw in its own
    ``on_train_end``. Once ``summary.json`` is written, `train_and_measure` calls
    ``draw_figures(trainer)``, so that a failure or a kill while drawing loses nothing.
    """

    defer_drawing: bool

    def draw_figures(self, trainer: pl.Trainer) -> None:
        """Draw the run's figures now and send them to the trainer's loggers."""


_QUIET_WARNINGS = (
    r".*does not have many workers.*",
    r".*is smaller than the logging interval.*",
    r".*exists and is not empty.*",
    r".*Checkpoint directory .* exists.*",
    r".*You're resuming from a checkpoint that ended.*",
    r".*Found a checkpoint.*",
    r".*There is a wandb run already in progress.*",
    r".*LeafSpec.*is deprecated.*",
)


def quiet_lightning() -> None:
    """Silence Lightning's start-up chatter and warnings that do not apply to small in-memory
    data sets; warnings that matter (and the progress bar) stay."""
    for pattern in _QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("pytorch_lightning", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _finish_wandb(failed: bool, run_dir: Path) -> None:
    """Log the run's snapshots as an artifact to the active wandb run and close it, so the next
    job of a sweep starts its own."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        log_run_artifact(wandb.run, run_dir)
        wandb.finish(exit_code=1 if failed else 0)


class _AtTrainStart(pl.Callback):
    """Calls `action` when training starts: after a resumed checkpoint has been restored.

    Part of `train_and_measure` (it inserts it first, to record "running"), not a configured
    callback, so it lives here and not in the `callbacks` package, which the library may not
    import.
    """

    def __init__(self, action: Callable[[], None]) -> None:
        self.action = action

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.action()


def _remove_temp_files(run_dir: Path) -> None:
    """Remove the temporary files that writes killed mid-way left in the run folder (its own
    files only: the run folder, checkpoints/ and spectra/)."""
    for folder in (run_dir, run_dir / "checkpoints", run_dir / SPECTRA_DIRNAME):
        for path in folder.glob(".*.tmp") if folder.is_dir() else ():
            if is_temp_file(path):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def _checkpoint_path(trainer: pl.Trainer) -> str | None:
    """The resumable checkpoint file of `trainer` (`checkpoint_files`), when it exists."""
    for path in checkpoint_files(trainer):
        if path.is_file():
            return str(path)
    return None


def train_and_measure(
    *,
    datamodule: pl.LightningDataModule,
    module: ClassifierModule,
    trainer: pl.Trainer,
    run_dir: str | os.PathLike,
    config: Mapping[str, Any] | None = None,
    ckpt_path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train `module` on `datamodule` with `trainer` and record the run in `run_dir`.

    ``status.json`` tells what the run is doing: "running" (from the start; on a resume only
    once the checkpoint has been restored, so a resume that cannot start leaves the previous
    status alone), then "completed", "interrupted" (SIGINT / SIGTERM), "diverged" or "failed"
    with the error. `config` (the resolved configuration) is logged to every logger. At the end,
    in this order: the last checkpoint (by the checkpoint callback, `checkpoint_files`),
    ``summary.json`` (the network evaluated on the full training set, with its noisy labels,
    and the test set; the wall time is the module's `training_seconds`), the figures and wandb
    charts of callbacks that draw at the end (`DrawsAtRunEnd`), then "completed": a failure
    or kill while drawing loses nothing. Only the global-zero process writes files; the active
    wandb run, if any, is finished even when training fails.

    Raises:
        `sgd_dynamics.lifecycle.outcomes.RunStopped` (interrupted, diverged, a run file that
        cannot be written) after recording it; any other error as it is.

    Returns:
        the summary: train_loss, train_acc, test_loss, test_acc, global_step, epoch
        (completed epochs, `sgd_dynamics.lightning.epochs`), n_train, n_test, n_params,
        wall_time_s (summed over resumed segments, each up to the checkpoint the next one
        resumed from), resumed_from.
    """
    run_dir = Path(run_dir)
    writes = trainer.is_global_zero
    resumed_from = None if ckpt_path is None else str(ckpt_path)
    status = StatusFile(run_dir, resumed_from, writes)

    def record_running() -> None:
        status.running()
        if writes:
            _remove_temp_files(run_dir)

    drawers = [c for c in trainer.callbacks if isinstance(c, DrawsAtRunEnd)]
    for callback in drawers:  # drawn here, after the summary
        callback.defer_drawing = True
    failed = True
    try:
        stoppable = bool(checkpoint_files(trainer))  # it acts on SIGINT / SIGTERM
        with graceful_stop(active=stoppable):
            if ckpt_path is None:
                record_running()
            else:
                trainer.callbacks.insert(0, _AtTrainStart(record_running))
            if config is not None:
                for logger in trainer.loggers:
                    logger.log_hyperparams(dict(config))
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
            if not status.owned:  # resumed at the last step: fit restored it and returned
                record_running()
            summary = {}
            if writes:
                summary = _write_summary(run_dir, datamodule, module, trainer, resumed_from)
            for callback in drawers:
                fault_point("figures")
                callback.draw_figures(trainer)
            status.completed(trainer.global_step)
        failed = False
        return summary
    except BaseException as exc:
        stopped = _as_stopped(exc, trainer, run_dir)
        error = str(stopped) if stopped else f"{type(exc).__name__}: {exc}".rstrip(": ")
        state = "failed" if stopped is None else stopped.status
        status.ended(state, error, trainer.global_step, _checkpoint_path(trainer))
        if stopped is not None and stopped is not exc:
            raise stopped from exc
        raise
    finally:
        _finish_wandb(failed, run_dir)


def _as_stopped(exc: BaseException, trainer: pl.Trainer, run_dir: Path) -> RunStopped | None:
    """`exc` as a `RunStopped` (interrupted, diverged, an unwritable run file), or None."""
    stopped = as_run_stopped(exc, str(run_dir))
    if stopped is None and isinstance(exc, KeyboardInterrupt | SystemExit) and trainer.interrupted:
        # Lightning's own ends: a second Ctrl-C (sys.exit(1)), or its SIGTERM exception
        signum = signal.SIGTERM if isinstance(exc, SIGTERMException) else signal.SIGINT
        stopped = RunInterrupted(signum, trainer.global_step, _checkpoint_path(trainer))
    return stopped


def _write_summary(
    run_dir: Path,
    datamodule: pl.LightningDataModule,
    module: ClassifierModule,
    trainer: pl.Trainer,
    resumed_from: str | None,
) -> dict[str, Any]:
    """Evaluate the network, write ``summary.json`` and log its numbers as ``final/*``."""
    summary = _summarize(datamodule, module, trainer, module.training_seconds())
    summary["resumed_from"] = resumed_from
    write_json_atomic(run_dir / SUMMARY_FILE, summary)
    metrics = {
        f"final/{k}": float(v) for k, v in summary.items() if k.startswith(("train", "test"))
    }
    metrics["epoch"] = float(summary["epoch"])
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=trainer.global_step)
        logger.save()
    return summary


def _summarize(
    datamodule: pl.LightningDataModule, module: ClassifierModule, trainer: pl.Trainer, wall: float
) -> dict[str, Any]:
    net = module.net
    train = evaluate(net, datamodule.eval_dataloader("train"))
    test = evaluate(net, datamodule.eval_dataloader("test"))
    return {
        "train_loss": train["loss"],
        "train_acc": train["acc"],
        "test_loss": test["loss"],
        "test_acc": test["acc"],
        "global_step": int(trainer.global_step),
        "epoch": completed_epochs(trainer),
        "n_train": train["n"],
        "n_test": test["n"],
        "n_params": num_parameters(net),
        "wall_time_s": round(wall, 3),
    }
