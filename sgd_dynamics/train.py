"""Fit a classifier and record the run: status.json, summary.json, final metrics.

`run` receives ready-made objects (data module, LightningModule, Trainer), so the library
does not depend on the configuration system; `train.py` at the repository root builds them
from the Hydra config.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from sgd_dynamics.models import num_parameters
from sgd_dynamics.store import write_json_atomic
from sgd_dynamics.wandb_review import log_run_artifact

STATUS_FILE = "status.json"
SUMMARY_FILE = "summary.json"

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


@torch.no_grad()
def evaluate(net: nn.Module, loader: DataLoader) -> dict[str, float]:
    """Mean cross-entropy and accuracy of `net` over every batch of `loader`.

    Returns {"loss": (1/n) sum_i -log softmax(z_i)[y_i], "acc": fraction of argmax hits, "n": n}.
    The network is evaluated in eval mode and put back in the mode it was in.
    """
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    total_loss, correct, n = 0.0, 0, 0
    try:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits = net(x)
            total_loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(dim=-1) == y).sum())
            n += y.shape[0]
    finally:
        net.train(was_training)
    return {"loss": total_loss / n, "acc": correct / n, "n": n}


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def write_failed_status(run_dir: str | os.PathLike, error: str) -> None:
    """Record in ``run_dir/status.json`` a run that failed before training started."""
    write_json_atomic(
        Path(run_dir) / STATUS_FILE,
        {"status": "failed", "started": _now(), "finished": _now(), "error": error},
    )


def _finish_wandb(failed: bool, run_dir: Path) -> None:
    """Log the run's snapshots as an artifact to the active wandb run and close it, so the next
    job of a sweep starts its own."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        log_run_artifact(wandb.run, run_dir)
        wandb.finish(exit_code=1 if failed else 0)


def run(
    *,
    datamodule: pl.LightningDataModule,
    module: pl.LightningModule,
    trainer: pl.Trainer,
    run_dir: str | os.PathLike,
    config: Mapping[str, Any] | None = None,
    ckpt_path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train `module` on `datamodule` with `trainer` and record the run in `run_dir`.

    Writes ``status.json`` ("running" at the start, then "completed", or "failed" with the
    error), logs `config` (the resolved configuration) to every logger, resumes from
    `ckpt_path` when given, and at the end evaluates the network on the full training set
    (with its noisy labels) and the test set and writes ``summary.json``. Only the global-zero
    process writes files. The active wandb run, if any, is finished even when training fails.

    Returns:
        the summary: train_loss, train_acc, test_loss, test_acc, global_step, epoch,
        n_train, n_test, n_params, wall_time_s (summed over resumed segments, each up to the
        checkpoint the next one resumed from), resumed_from.
    """
    run_dir = Path(run_dir)
    writes = trainer.is_global_zero
    start = time.perf_counter()
    status = {
        "status": "running",
        "started": _now(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "resumed_from": None if ckpt_path is None else str(ckpt_path),
    }
    if writes:
        write_json_atomic(run_dir / STATUS_FILE, status)
    failed = True
    try:
        if config is not None:
            for logger in trainer.loggers:
                logger.log_hyperparams(dict(config))
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        summary: dict[str, Any] = {}
        if writes:
            before = float(getattr(module, "seconds_before_resume", 0.0))  # from the checkpoint
            wall = before + time.perf_counter() - start
            summary = _summarize(datamodule, module, trainer, wall)
            summary["resumed_from"] = status["resumed_from"]
            write_json_atomic(run_dir / SUMMARY_FILE, summary)
            metrics = {
                f"final/{k}": float(v)
                for k, v in summary.items()
                if k.startswith(("train", "test"))
            }
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)
                logger.save()
            write_json_atomic(
                run_dir / STATUS_FILE,
                {
                    **status,
                    "status": "completed",
                    "finished": _now(),
                    "global_step": trainer.global_step,
                },
            )
        failed = False
        return summary
    except BaseException as exc:
        if writes:
            if isinstance(exc, SystemExit) and trainer.interrupted:
                message = "KeyboardInterrupt: training was interrupted"
            else:
                message = f"{type(exc).__name__}: {exc}".rstrip(": ")
            write_json_atomic(
                run_dir / STATUS_FILE,
                {**status, "status": "failed", "finished": _now(), "error": message},
            )
        raise
    finally:
        _finish_wandb(failed, run_dir)


def _summarize(
    datamodule: pl.LightningDataModule, module: pl.LightningModule, trainer: pl.Trainer, wall: float
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
        "epoch": int(trainer.current_epoch),
        "n_train": train["n"],
        "n_test": test["n"],
        "n_params": num_parameters(net),
        "wall_time_s": round(wall, 3),
    }
