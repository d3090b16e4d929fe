"""Checkpoint files written atomically in their own folder, and the trainer's resumable one.

Lightning's `TorchCheckpointIO` writes through fsspec, which stages the file in the system's
temporary folder and moves it into place: on another file system the move is a copy, and a
kill during the copy leaves a truncated checkpoint where the previous good one was. Here the
file is written as every run file is (`sgd_dynamics.run_folder.files.atomic_write`): a hidden
temporary file beside the target, flushed and fsync'ed, then renamed onto it. A kill at any
moment leaves the previous checkpoint or the new one, never a partial file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from sgd_dynamics.run_folder.files import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """`TorchCheckpointIO` whose `save_checkpoint` writes atomically beside the target (local
    paths only; loading and removing are Lightning's). Pass it as
    ``Trainer(plugins=[AtomicCheckpointIO()])`` (conf/trainer/default.yaml does)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        with atomic_write(path, "wb") as handle:
            torch.save(checkpoint, handle)


def checkpoint_files(trainer: pl.Trainer) -> list[Path]:
    """The files of the callbacks of `trainer` that keep a resumable checkpoint and act on
    SIGINT / SIGTERM: those with a true ``keeps_resumable_checkpoint`` attribute and a ``path``
    (`callbacks.last_checkpoint.LastCheckpoint`; found by these attributes, so that the library
    does not import the callbacks package)."""
    return [
        Path(c.path) for c in trainer.callbacks if getattr(c, "keeps_resumable_checkpoint", False)
    ]
