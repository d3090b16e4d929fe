"""Lightning callback: spectral snapshots of H_f, M and H_p while SGD trains.

At each scheduled global step (always step 0 and the last step) the callback computes
:func:`sgd_dynamics.curvature.compute_spectra` on a fixed set of training samples (with their
possibly noisy labels, from the data module's ``spectral_samples``), writes the snapshot
atomically to ``RUN_DIR/spectra/step_XXXXXXXX.npz``, logs it at the global step (wandb:
histograms, line charts, scalars: `sgd_dynamics.wandb_io.run_logging`; other loggers: scalars),
and every ``draw_every`` snapshots and at the end of training draws the figures into
``RUN_DIR/figures/`` and logs them to wandb as images at their step. A snapshot longer than
``progress_every`` seconds prints progress lines (operation, products done, elapsed).

It never changes the training trajectory: the curvature work runs on detached copies of the
parameters, inside a forked RNG state, with gradients enabled whatever Lightning's inference
mode, and the model's train/eval state is left as found.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from callbacks.last_checkpoint import parameters_are_finite
from callbacks.snapshot_logging import log_drawings, log_snapshot
from sgd_dynamics.config_schema import check_setting
from sgd_dynamics.curvature import compute_spectra
from sgd_dynamics.curvature.operators.distributed import Reduction
from sgd_dynamics.curvature.options import SpectraOptions
from sgd_dynamics.curvature.progress import reporting
from sgd_dynamics.lightning.epochs import completed_epochs
from sgd_dynamics.lightning.run import DrawsAtRunEnd
from sgd_dynamics.plots import draw_run_figures
from sgd_dynamics.run_folder.snapshots import (
    list_snapshots,
    remove_snapshots_after,
    save_snapshot,
    snapshot_path,
)
from sgd_dynamics.schedule import AUTO, auto_log_points, density_steps, snapshot_steps
from sgd_dynamics.wandb_io import run_logging

log = logging.getLogger("sgd_dynamics.spectral")


class SpectralSnapshots(pl.Callback, DrawsAtRunEnd):
    """Take spectral snapshots on a fixed sample set during training.

    It draws the figures at the end of training, or, when `train_and_measure` runs it,
    after the summary (the `sgd_dynamics.lightning.run.DrawsAtRunEnd` interface).

    Args:
        run_dir: the run's output folder; snapshots go to ``run_dir/spectra``.
        k: number of top eigenpairs (and principal angles) per snapshot.
        method: ``"dense"`` (exact matrices, all P eigenvalues), ``"iterative"`` or ``"auto"``.
        n_samples: size of the fixed spectral subset of the training set (None: all of it).
        dtype: ``"float64"`` or ``"float32"``, the precision of the curvature computation.
        every_n_steps: a snapshot every this many global steps (None: off).
        log_points: about this many log-spaced snapshot steps (``"auto"``: one per 100 steps,
            10 to 30, `sgd_dynamics.schedule.auto_log_points`; None: off).
        chunk_size: samples per chunk in the operators (None: the engine's default).
        warm_start: start each iterative solve from the previous snapshot's eigenvectors.
        hp_method: H_p's extremes in the iterative method: ``"solve"`` (converged), ``"ritz"``
            (Rayleigh-Ritz estimates on the top spaces of H_f and M: k extra products instead
            of a solve; residuals stored as ``hp_max_residual``) or ``"none"`` (NaN).
        draw_every: draw the figures (and log them to wandb) every this many snapshots, and at
            the end (0: only at the end); each drawing reads every snapshot and writes the PNGs
            (a few seconds).
        draw_at_end: draw the figures (and log them to wandb) at the end of training; off
            saves a few seconds per job in large sweeps (``sgd-dynamics plot`` draws later).
        progress_every: inside a snapshot, a progress line every this many seconds.
        density: also the spectral densities of H_f, M and H_p and W1(H_p, -H_f) at
            ``density_points`` of the snapshots (docs/densities.md).
        density_points: how many snapshots get densities: log-spaced among the snapshot steps,
            always including the last (`sgd_dynamics.schedule.density_steps`).
    """

    def __init__(
        self,
        run_dir: str | Path,
        k: int = 15,
        method: str = "auto",
        n_samples: int | None = 2000,
        dtype: str = "float64",
        every_n_steps: int | None = None,
        log_points: int | str | None = AUTO,
        chunk_size: int | None = None,
        warm_start: bool = True,
        hp_method: str = "solve",
        draw_every: int = 8,
        draw_at_end: bool = True,
        progress_every: float = 5.0,
        density: bool = False,
        density_points: int = 4,
    ) -> None:
        super().__init__()
        try:  # the settings of compute_spectra, checked by the engine's own options type
            self.options = SpectraOptions(
                k=k, method=method, dtype=dtype, chunk_size=chunk_size, hp_method=hp_method
            )
        except ValueError as error:
            raise ValueError(f"spectral.{error}") from None
        for name, value in (
            ("n_samples", n_samples),
            ("progress_every", progress_every),
            ("density_points", density_points),
        ):  # the callback's own settings, checked by the rule of their key in the schema
            check_setting(f"spectral.{name}", value)
        self.run_dir = Path(run_dir)
        self.n_samples = n_samples
        self.every_n_steps = every_n_steps
        self.log_points = log_points
        self.warm_start = warm_start
        self.draw_every = int(draw_every)
        self.draw_at_end = bool(draw_at_end)
        self.defer_drawing = False  # set by train_and_measure: it calls draw_figures itself
        self.progress_every = float(progress_every)
        self.density = bool(density)
        self.density_points = density_points
        self._density_steps: set[int] = set()
        self._schedule: set[int] = set()
        self._samples: tuple[torch.Tensor, torch.Tensor] | None = None
        self._previous = None
        self._last_taken = -1
        self._n_taken = 0
        self._drawn_at = -1  # the step of the last drawing: the end does not redraw it
        self._to_take = 0  # snapshots this process is to take (set when training starts)
        self._taken_here = 0

    # ------------------------------------------------------------------ Lightning hooks
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        last = _last_step(trainer)
        self._schedule = set(snapshot_steps(last, self.every_n_steps, self.log_points))
        if self.density:
            self._density_steps = set(density_steps(sorted(self._schedule), self.density_points))
        inputs, targets = trainer.datamodule.spectral_samples(self.n_samples)
        self._samples = (inputs, targets)
        step = trainer.global_step
        if trainer.is_global_zero and step > 0:
            stale = remove_snapshots_after(self.run_dir, step)
            if stale:
                log.info("resumed at step %d: removed %d stale snapshot(s)", step, len(stale))
        take_now = step in self._schedule and not self._on_disk(step, trainer)
        self._to_take = sum(1 for s in self._schedule if s > step) + take_now
        if trainer.is_global_zero:
            log.info(self._plan_line(step - 1 if take_now else step, last, len(targets)))
        if take_now:
            self._snapshot(trainer, pl_module)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if trainer.global_step in self._schedule and trainer.global_step > self._last_taken:
            self._snapshot(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step > self._last_taken and not self._on_disk(
            trainer.global_step, trainer
        ):
            self._snapshot(trainer, pl_module)
        if not self.defer_drawing:
            self.draw_figures(trainer)

    def draw_figures(self, trainer: pl.Trainer) -> None:
        """Draw the run's figures from its snapshots (when `draw_at_end`) and send them with the
        line charts to wandb (global-zero process only). Called at the end of training, or by
        `sgd_dynamics.lightning.run.train_and_measure` after it has written the summary when it
        sets `defer_drawing`."""
        if trainer.is_global_zero:
            self._draw(trainer, figures=self.draw_at_end)

    def state_dict(self) -> dict[str, Any]:
        return {"last_taken": self._last_taken, "n_taken": self._n_taken}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._last_taken = int(state_dict.get("last_taken", -1))
        self._n_taken = int(state_dict.get("n_taken", 0))

    # ------------------------------------------------------------------ work
    def _plan_line(self, after: int, last: int, n_samples: int) -> str:
        """The start-up line: how many snapshots, at which steps, how spaced; the time per
        snapshot follows the second (`_pace_line`): it depends on the machine and the solver."""
        steps = sorted(s for s in self._schedule if s > after)
        if not steps:
            return f"spectral: no snapshot left to take up to step {last}"
        spacing = []
        if self.log_points is not None:
            points = auto_log_points(last) if self.log_points == AUTO else self.log_points
            spacing.append(f"{points} log-spaced points")
        if self.every_n_steps is not None:
            spacing.append(f"every {self.every_n_steps} steps")
        return (
            f"spectral: {len(steps)} snapshots at steps {steps[0]}..{steps[-1]}"
            f" ({' and '.join(spacing) or 'first and last'}) on {n_samples} samples"
            f" (k={self.options.k}, method={self.options.method});"
            " time per snapshot: estimated after the second"
        )

    def _pace_line(self, seconds: float) -> str | None:
        """After the second snapshot this process takes (the first includes one-time set-up):
        about how long the others will take at its pace."""
        left = self._to_take - self._taken_here
        if self._taken_here != 2 or left <= 0:
            return None
        return (
            f"spectral: about {seconds:.1f} s per snapshot (the second one's time), so about"
            f" {left * seconds:.0f} s for the other {left}"
        )

    def _on_disk(self, step: int, trainer: pl.Trainer) -> bool:
        """Whether the snapshot of `step` is stored, as rank 0 sees it (broadcast under DDP, so
        that every rank takes the same snapshots: they share the collectives)."""
        stored = snapshot_path(self.run_dir, step).exists()
        return bool(trainer.strategy.broadcast(stored, src=0))

    def _snapshot(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        assert self._samples is not None, "on_train_start was not called"
        net = pl_module.net
        device = next(net.parameters()).device
        inputs, targets = (t.to(device) for t in self._samples)
        step = trainer.global_step
        if not parameters_are_finite(net):  # the same on every rank: parameters are replicated
            self._last_taken = step
            log.warning("snapshot at step %d skipped: the parameters are not all finite", step)
            return
        started = time.perf_counter()
        rng_devices = [device.index or 0] if device.type == "cuda" else []
        progress = (
            reporting(log.info, self.progress_every, prefix=f"snapshot step {step}: ")
            if trainer.is_global_zero
            else contextlib.nullcontext()
        )
        with (
            progress,
            torch.random.fork_rng(devices=rng_devices),
            torch.inference_mode(False),
            torch.enable_grad(),
        ):
            spectra = compute_spectra(
                net,
                inputs,
                targets,
                batch_size=_batch_size(trainer),
                warm_start=self._previous if self.warm_start else None,
                distributed=_reduction(trainer),
                options=replace(self.options, density=step in self._density_steps),
            )
        seconds = time.perf_counter() - started
        self._previous = spectra
        self._last_taken = step
        self._n_taken += 1
        self._taken_here += 1
        if not trainer.is_global_zero:
            return
        arrays = dict(spectra.to_arrays())
        arrays.update(
            step=step,
            epoch=completed_epochs(trainer),
            train_loss=arrays["loss"],
            train_acc=arrays["accuracy"],
            batch_size=_batch_size(trainer) or -1,
            seconds=seconds,
        )
        save_snapshot(self.run_dir, arrays)
        final = step >= max(self._schedule, default=step)
        log_snapshot(trainer, self.run_dir, arrays, _scalar_metrics(arrays), final=final)
        n_aligned = int((arrays["cosines"][:10] > 0.9).sum())
        log.info(
            "snapshot step %d: loss %.4g, H_f top %.4g, M top %.4g, cos>0.9 %d/%d (%.2f s)",
            step,
            float(arrays["loss"]),
            float(arrays["hf_top"][0]),
            float(arrays["mt_top"][0]),
            n_aligned,
            min(10, len(arrays["cosines"])),
            seconds,
        )
        if (pace := self._pace_line(seconds)) is not None:
            log.info(pace)
        if "hp_to_minus_hf_w1" in arrays:
            log.info(
                "snapshot step %d: densities in %.2f s, W1(H_p, -H_f) / spread = %.4g",
                step,
                float(arrays["density_seconds"]),
                float(arrays["hp_to_minus_hf_w1"]),
            )
        if self.draw_every and self._n_taken % self.draw_every == 0:
            self._draw(trainer)

    def _draw(self, trainer: pl.Trainer, figures: bool = True) -> None:
        """Draw the figures (unless not `figures`) and send them to wandb at the step."""
        if not figures or self._drawn_at == trainer.global_step:
            return
        if not list_snapshots(self.run_dir):
            return
        self._drawn_at = trainer.global_step
        paths = draw_run_figures(self.run_dir)
        if paths:
            log.info("figures: %s", ", ".join(str(p) for p in paths))
        log_drawings(trainer, paths, trainer.global_step)


def _last_step(trainer: pl.Trainer) -> int:
    """The global step training will stop at: ``max_steps``, else the estimate from epochs."""
    if trainer.max_steps is not None and trainer.max_steps > 0:
        return int(trainer.max_steps)
    estimated = trainer.estimated_stepping_batches
    if not math.isfinite(estimated):
        raise ValueError("spectral snapshots need trainer.max_steps or trainer.max_epochs")
    return int(estimated)


def _reduction(trainer: pl.Trainer) -> Reduction | None:
    """Under DDP (world_size > 1): every rank computes the snapshot on its shard of the spectral
    samples and the products are all-reduced (`sgd_dynamics.curvature.operators`), so every
    rank must take the same snapshots; only rank 0 writes them."""
    if trainer.world_size <= 1:
        return None
    return Reduction(rank=trainer.global_rank, world_size=trainer.world_size)


def _batch_size(trainer: pl.Trainer) -> int | None:
    datamodule = getattr(trainer, "datamodule", None)
    return getattr(datamodule, "batch_size", None)


def _scalar_metrics(arrays: dict[str, Any]) -> dict[str, float]:
    """Scalars for the loggers, each under its workspace section (`run_logging.scalar_key`):
    top eigenvalues and cosines per index, traces, alignment summary, densities' W1."""
    metrics: dict[str, float] = {}
    for key in run_logging.CHARTS:
        if key in arrays:
            for i, value in enumerate(arrays[key], start=1):
                if math.isfinite(float(value)):  # NaN: undefined cosine (docs/math.md), skipped
                    metrics[run_logging.scalar_key(key, i)] = float(value)
    for key in run_logging.SCALAR_SECTION:
        if key in arrays:
            metrics[run_logging.scalar_key(key)] = float(arrays[key])
    cosines = [c for c in map(float, arrays["cosines"][:10]) if math.isfinite(c)]  # defined
    metrics[f"{run_logging.ALIGNMENT}/n_cos10_above_0.9"] = float(sum(c > 0.9 for c in cosines))
    if cosines:
        metrics[f"{run_logging.ALIGNMENT}/mean_cos10"] = sum(cosines) / len(cosines)
    return metrics
