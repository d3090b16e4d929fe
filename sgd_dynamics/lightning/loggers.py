"""Lightning loggers set up for unattended runs that may be stopped and resumed.

Both loggers keep one record of the run across its training segments (a segment: one process,
from the start or from a checkpoint to its end). A resumed segment replays, with the same
values, the steps between its checkpoint and the last step the previous segment reached; each
logger records a (step, key) only once, the first time:

- `wandb_logger`: one wandb run per run folder (`sgd_dynamics.wandb_io.segments`): the id is
  stored in the run folder and every segment continues that run; keys that an earlier segment
  logged at a step are not logged again, and what a killed segment logged but wandb had not
  yet written is logged again from the run's journal (`sgd_dynamics.wandb_io.journal`).
- `csv_logger`: one file, ``RUN_DIR/csv/metrics.csv``, appended to by every segment; rows and
  keys already in it are not written again.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

from sgd_dynamics.wandb_io import journal, segments
from sgd_dynamics.wandb_io.environment import configure_wandb_environment
from sgd_dynamics.wandb_io.journal import JournalWriter
from sgd_dynamics.wandb_io.run_logging import workspace_key

logger = logging.getLogger(__name__)


class SectionedWandbLogger(WandbLogger):
    """A `WandbLogger` that files every training metric under a workspace section
    (`sgd_dynamics.wandb_io.run_logging.workspace_key`: ``test/acc`` -> ``train/test_acc``)."""

    def log_metrics(self, metrics, step=None) -> None:
        super().log_metrics({workspace_key(k): v for k, v in metrics.items()}, step=step)


class SegmentWandbLogger(SectionedWandbLogger):
    """A `WandbLogger` whose run is the run folder's (`segments.run_id`, ``resume="allow"``),
    seen through `segments.SegmentRun` so that a resumed segment logs no (step, key) that an
    earlier segment logged. The id is written to the run folder once wandb has started (only
    the global-zero process starts it)."""

    def __init__(self, run_dir: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(save_dir=str(run_dir), **kwargs)
        self._run_dir = Path(run_dir)

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is None:
            run_id = segments.run_id(self._run_dir)
            self._wandb_init["id"] = self._id = run_id
            logged = segments.earlier_keys(self._run_dir, run_id)
            run = WandbLogger.experiment.fget(self)
            segments.store_run_id(self._run_dir, run.id)
            segment = segments.SegmentRun(run, logged, JournalWriter(self._run_dir))
            restored = segment.restore(journal.missing(self._run_dir, logged))
            if restored:
                logger.info(
                    "wandb: %d value(s) an earlier segment logged but wandb had not written "
                    "when it stopped were logged again from %s",
                    restored,
                    journal.journal_path(self._run_dir),
                )
            self._experiment = segment
        return self._experiment


def wandb_logger(
    save_dir: str | os.PathLike, offline: bool = True, **kwargs: Any
) -> SegmentWandbLogger:
    """A `SegmentWandbLogger` writing its run to ``save_dir/wandb/`` (``save_dir``: the run
    folder); offline unless `offline` is False.

    Sets the environment first (`configure_wandb_environment`). Other keyword arguments
    (project, name, group, tags, ...) go to `WandbLogger` and `wandb.init`.
    """
    configure_wandb_environment(offline)
    logger = SegmentWandbLogger(save_dir, offline=offline, **kwargs)
    # Lightning passes anonymous=None to wandb.init, which recent wandb versions warn about.
    if logger._wandb_init.get("anonymous") is None:
        logger._wandb_init.pop("anonymous", None)
    return logger


class AppendingCSVWriter(ExperimentWriter):
    """Lightning's CSV writer, appending to an existing ``metrics.csv`` (Lightning's deletes
    it) and dropping the (step, key) values the file already holds."""

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        self.recorded: dict[int, set[str]] = defaultdict(set)
        path = Path(self.metrics_file_path)
        if path.is_file():
            with path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                self.metrics_keys = sorted(reader.fieldnames or [])
                for row in reader:
                    if row.get("step", "") != "":
                        step = int(float(row["step"]))
                        self.recorded[step].update(k for k, v in row.items() if v not in ("", None))

    def _check_log_dir_exists(self) -> None:
        """Keep the file of the earlier segments (Lightning removes it)."""

    def log_metrics(self, metrics_dict: Mapping[str, Any], step: int | None = None) -> None:
        done = self.recorded.get(step, set()) if step is not None else set()
        kept = {k: v for k, v in metrics_dict.items() if k not in done}
        if kept:
            super().log_metrics(kept, step)


class AppendingCSVLogger(CSVLogger):
    """Lightning's `CSVLogger` writing ``<save_dir>/<name>/metrics.csv`` (no version folder)
    through `AppendingCSVWriter`: one file for the run, whatever its segments."""

    def __init__(self, save_dir: str | os.PathLike, name: str = "csv", **kwargs: Any) -> None:
        super().__init__(save_dir=str(save_dir), name=name, version="", **kwargs)

    @property
    def log_dir(self) -> str:
        return self.root_dir

    @property
    @rank_zero_experiment
    def experiment(self) -> AppendingCSVWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingCSVWriter(log_dir=self.log_dir)
        return self._experiment


def csv_logger(
    save_dir: str | os.PathLike, name: str = "csv", flush_logs_every_n_steps: int = 1, **kwargs: Any
) -> CSVLogger:
    """An `AppendingCSVLogger`: ``save_dir/name/metrics.csv`` (one row per logging call, a
    ``step`` column), ``save_dir/name/hparams.yaml``; rows reach the file every
    `flush_logs_every_n_steps` steps (1: a killed run loses no row it had logged)."""
    return AppendingCSVLogger(
        save_dir, name=name, flush_logs_every_n_steps=flush_logs_every_n_steps, **kwargs
    )
