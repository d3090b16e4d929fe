"""What a run sends to Weights & Biases for review: spectra, charts, figures, the snapshot files.

All functions take a ``wandb`` run (``wandb.init(...)``, or ``WandbLogger.experiment``) and
plain arrays; wandb is imported only when one is called. Every record carries the training
step as ``trainer/global_step`` (the step metric Lightning's ``WandbLogger`` defines), so the
panels' x axis is the SGD step, not wandb's own log counter.

Logged at each snapshot (`log_snapshot`):

- ``spectrum/H_f``, ``spectrum/M``, ``spectrum/H_p``, ``spectrum/neg_H_f``: ``wandb.Histogram``
  of the eigenvalues, all P of each with the dense method; with the iterative method what is
  known (the top k of H_f and M, the k largest and k smallest of H_p). ``neg_H_f`` is -H_f, the
  spectrum H_p approaches once M has collapsed; ``spectrum/log10_M_nonzero`` is the histogram
  of log10 of M's eigenvalues above 1e-8 x its largest (at most n of them: M has rank <= n);
- the scalars of the snapshot (traces, loss, alignment summary, ``*_1``: the largest
  eigenvalue and first cosine) under ``spectral/``.

Logged at each drawing (`log_drawings`: every ``draw_every`` snapshots and at the end):

- ``charts/<key>`` for ``hf_top``, ``mt_top``, ``hp_top``, ``hp_bottom``, ``cosines``,
  ``mb_top``: one line chart per quantity, one series per index i over the steps stored so far
  (``wandb.plot.line_series`` from the run's snapshot files; the panel shows the latest);
- the PNG figures as ``figures/<name>`` images at their step, so the media panel's step
  slider walks through training.

`log_run_artifact` stores the run's ``spectra/``
folder, ``summary.json``, its config and figures as a versioned artifact of type
``run-spectra``, which `sgd_dynamics.run_folder.snapshots.load_run` reads once downloaded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sgd_dynamics.run_folder.location import FIGURES_DIRNAME
from sgd_dynamics.run_folder.snapshots import RunHistory, list_snapshots, load_run, snapshot_step

STEP_METRIC = "trainer/global_step"
ARTIFACT_TYPE = "run-spectra"
HISTOGRAM_BINS = 64
M_ZERO_REL = 1e-8  # eigenvalues of M below this times its largest are zeros up to rounding

CHARTS = {
    "hf_top": ("top-k eigenvalues of H_f", "λ{i}"),
    "mt_top": ("top-k eigenvalues of M", "λ{i}"),
    "hp_top": ("largest eigenvalues of H_p", "λ{i}"),
    "hp_bottom": ("most negative eigenvalues of H_p", "λ{i} from the bottom"),
    "cosines": ("principal-angle cosines, top-k of H_f vs M", "cos γ{i}"),
    "mb_top": ("top-k eigenvalues of M_b (mini-batch)", "λ{i}"),
}
_INDEXED_SCALAR = re.compile(r"^spectral/(?:" + "|".join(CHARTS) + r")_(\d+)$")


def define_step_metrics(run: Any) -> None:
    """Tie ``spectral/*``, ``spectrum/*``, ``charts/*`` and ``figures/*`` to the SGD step."""
    run.define_metric(STEP_METRIC)
    for prefix in ("spectral", "spectrum", "charts", "figures"):
        run.define_metric(f"{prefix}/*", step_metric=STEP_METRIC)


def _finite(values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def spectrum_values(arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The eigenvalues a snapshot knows, per histogram name (finite values only, float64).

    Dense snapshots (``hf_all`` ...): all P eigenvalues of H_f, M, H_p and -H_f. Otherwise the
    top-k of H_f and M, H_p's top-k and bottom-k, and -H_f's bottom-k. ``log10_M_nonzero``:
    log10 of M's eigenvalues above 1e-8 x its largest.
    """
    dense = "hf_all" in arrays and "mt_all" in arrays and "hp_all" in arrays
    hf = _finite(arrays["hf_all"] if dense else arrays["hf_top"])
    mt = _finite(arrays["mt_all"] if dense else arrays["mt_top"])
    if dense:
        hp = _finite(arrays["hp_all"])
    else:
        hp = np.unique(np.concatenate([_finite(arrays["hp_top"]), _finite(arrays["hp_bottom"])]))
    values = {"H_f": hf, "M": mt, "H_p": hp, "neg_H_f": -hf}
    if mt.size and mt.max() > 0:
        values["log10_M_nonzero"] = np.log10(mt[mt > M_ZERO_REL * mt.max()])
    return {name: v for name, v in values.items() if v.size}


def snapshot_histograms(arrays: Mapping[str, Any]) -> dict[str, Any]:
    """``spectrum/<name>``: a ``wandb.Histogram`` of each of `spectrum_values`."""
    import wandb

    return {
        f"spectrum/{name}": wandb.Histogram(values.tolist(), num_bins=HISTOGRAM_BINS)
        for name, values in spectrum_values(arrays).items()
    }


def line_series_charts(history: RunHistory) -> dict[str, Any]:
    """``charts/<key>``: for each vector quantity of `CHARTS` the run holds, a line chart with
    one series per index i (x: the steps where that index is finite)."""
    import wandb

    charts = {}
    steps = history.steps.astype(np.int64)
    for key, (title, series_name) in CHARTS.items():
        if key not in history:
            continue
        values = history[key]  # (S, k)
        xs, ys, names = [], [], []
        for i in range(values.shape[1]):
            keep = np.isfinite(values[:, i])
            if keep.any():
                xs.append(steps[keep].tolist())
                ys.append(values[keep, i].tolist())
                names.append(series_name.format(i=i + 1))
        if names:
            charts[f"charts/{key}"] = wandb.plot.line_series(
                xs=xs, ys=ys, keys=names, title=title, xname="step"
            )
    return charts


def wandb_scalars(metrics: Mapping[str, float]) -> dict[str, float]:
    """The scalars worth a panel each: everything but the per-index ``spectral/<key>_<i>``
    with i > 1 (those are drawn together in the ``charts/`` panels)."""
    kept = {}
    for name, value in metrics.items():
        match = _INDEXED_SCALAR.match(name)
        if match is None or match.group(1) == "1":
            kept[name] = value
    return kept


def log_snapshot(run: Any, arrays: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
    """Log one snapshot at its step ``arrays["step"]``: histograms and scalars."""
    record: dict[str, Any] = {**wandb_scalars(metrics), **snapshot_histograms(arrays)}
    record[STEP_METRIC] = int(arrays["step"])
    run.log(record)


def log_drawings(
    run: Any, run_dir: str | os.PathLike, paths: Sequence[str | os.PathLike], step: int
) -> None:
    """Log at training step `step` the line charts of all snapshots stored in `run_dir` and
    the PNG files `paths` as ``figures/<file stem>`` images."""
    import wandb

    record: dict[str, Any] = line_series_charts(load_run(run_dir))
    record.update({f"figures/{Path(p).stem}": wandb.Image(str(p)) for p in paths})
    record[STEP_METRIC] = int(step)
    run.log(record)


def artifact_name(run_dir: str | os.PathLike) -> str:
    """``spectra-<run folder>`` (``spectra-<sweep>-<job>`` for a sweep job), with characters
    wandb does not accept in artifact names replaced by ``-``."""
    from sgd_dynamics.run_folder.location import run_name

    return "spectra-" + re.sub(r"[^A-Za-z0-9_.-]", "-", run_name(run_dir))


def log_run_artifact(run: Any, run_dir: str | os.PathLike) -> Any | None:
    """Log ``run_dir``'s snapshots as a new version of the artifact `artifact_name`.

    Contents, as in the run folder: ``spectra/step_*.npz``, ``summary.json``,
    ``status.json``, ``.hydra/config.yaml`` and ``.hydra/overrides.yaml``, ``figures/*.png``
    (those that exist). A collaborator fetches it with
    ``wandb.Api().artifact("<entity>/<project>/spectra-<run>:latest").download()`` and reads
    the folder with ``load_run``. Returns the artifact, or None when no snapshot is stored.
    """
    import wandb

    run_dir = Path(run_dir)
    snapshots = list_snapshots(run_dir)
    if not snapshots:
        return None
    steps = [snapshot_step(p) for p in snapshots]
    artifact = wandb.Artifact(
        artifact_name(run_dir),
        type=ARTIFACT_TYPE,
        description=(
            f"spectral snapshots of {run_dir.name}: "
            "load with sgd_dynamics.run_folder.snapshots.load_run"
        ),
        metadata={"n_snapshots": len(steps), "first_step": steps[0], "last_step": steps[-1]},
    )
    for path in snapshots:
        artifact.add_file(str(path), name=str(path.relative_to(run_dir)))
    for name in ("summary.json", "status.json", ".hydra/config.yaml", ".hydra/overrides.yaml"):
        if (run_dir / name).is_file():
            artifact.add_file(str(run_dir / name), name=name)
    for path in sorted((run_dir / FIGURES_DIRNAME).glob("*.png")):
        artifact.add_file(str(path), name=str(path.relative_to(run_dir)))
    run.log_artifact(artifact)
    return artifact
