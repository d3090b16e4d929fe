"""What a run sends to Weights & Biases for review: spectra, charts, figures, the snapshot files.

All functions take a ``wandb`` run (``wandb.init(...)``, or ``WandbLogger.experiment``) and
plain arrays; wandb is imported only when one is called. Every record carries the training
step as ``trainer/global_step`` (the step metric Lightning's ``WandbLogger`` defines), so the
panels' x axis is the SGD step, not wandb's own log counter.

The workspace layout is the keys' prefixes (wandb makes one panel section per prefix before
the first ``/``), one of `SECTIONS`:

- ``train/``: the training metrics (``train/loss``, ``train/acc``, ``train/test_loss``, ...:
  `workspace_key` moves Lightning's ``test/*``, ``final/*`` and ``epoch`` here);
- ``spectra/``: at each snapshot (`charts_due`: every one of the first 64), line charts of
  the top-k eigenvalues of H_f, M, M_b and of H_p's k largest and k most negative (one series
  per index i, all snapshots so far), H_p's extremes ``spectra/hp_max`` and
  ``spectra/hp_min``, the largest eigenvalues, traces, loss and gradient norm on the spectral
  samples, the snapshot's seconds;
- ``alignment/``: at each snapshot, the line chart of the k principal-angle cosines between
  the top-k eigenspaces of H_f and M, ``cosines_1``, ``n_cos10_above_0.9``, ``mean_cos10``;
- ``densities/``: at each snapshot, histograms of the eigenvalues of H_f, H_p and -H_f on
  symlog bins and of M's nonzero eigenvalues on log bins (`sgd_dynamics.wandb_io.histogram_bins`:
  the bulk over several bins, the top eigenvalue in a bin of its own), the number of M's zero
  eigenvalues, and W1(H_p, -H_f) at the density snapshots;
- ``figures/``: the PNG figures at each drawing (every ``draw_every`` snapshots and at the
  end), so the media panel's step slider walks through training.

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
from sgd_dynamics.run_folder.snapshots import (
    RunHistory,
    list_snapshots,
    load_snapshot,
    snapshot_step,
    stack_snapshots,
)
from sgd_dynamics.wandb_io.histogram_bins import log_edges, spectrum_histogram, symlog_edges

STEP_METRIC = "trainer/global_step"
ARTIFACT_TYPE = "run-spectra"
M_ZERO_REL = 1e-8  # eigenvalues of M below this times its largest are zeros up to rounding
CHARTS_AT_EVERY_SNAPSHOT_UP_TO = 64  # then the line charts at fewer snapshots: `charts_due`

TRAIN, SPECTRA, ALIGNMENT, DENSITIES, FIGURES = SECTIONS = (
    "train",
    "spectra",
    "alignment",
    "densities",
    "figures",
)

CHARTS = {  # snapshot key -> (section, title, series name)
    "hf_top": (SPECTRA, "top-k eigenvalues of H_f", "λ{i}"),
    "mt_top": (SPECTRA, "top-k eigenvalues of M", "λ{i}"),
    "mb_top": (SPECTRA, "top-k eigenvalues of M_b (mini-batch)", "λ{i}"),
    "hp_top": (SPECTRA, "largest eigenvalues of H_p", "λ{i}"),
    "hp_bottom": (SPECTRA, "most negative eigenvalues of H_p", "λ{i} from the bottom"),
    "cosines": (ALIGNMENT, "principal-angle cosines, top-k of H_f vs M", "cos γ{i}"),
}
SCALAR_SECTION = {  # snapshot scalar -> its section
    "trace_hf": SPECTRA,
    "trace_mt": SPECTRA,
    "trace_hp": SPECTRA,
    "trace_mb": SPECTRA,
    "grad_norm": SPECTRA,
    "loss": SPECTRA,
    "seconds": SPECTRA,
    "hp_to_minus_hf_w1": DENSITIES,
    "density_seconds": DENSITIES,
}
_INDEXED_SCALAR = re.compile(r"^\w+/(?:" + "|".join(CHARTS) + r")_(\d+)$")
_LIGHTNING_KEYS = {"epoch": f"{TRAIN}/epoch"}  # what Lightning adds to every record


def scalar_key(name: str, index: int | None = None) -> str:
    """The logged key of snapshot quantity `name` (index i of a vector: ``name_i``), under its
    section: ``spectra/hf_top_1``, ``alignment/cosines_3``, ``densities/hp_to_minus_hf_w1``."""
    section = CHARTS[name][0] if name in CHARTS else SCALAR_SECTION[name]
    return f"{section}/{name}" + ("" if index is None else f"_{index}")


def workspace_key(name: str) -> str:
    """A training metric's key in the wandb workspace: keys of a section unchanged,
    ``test/loss`` -> ``train/test_loss``, ``final/test_acc`` -> ``train/final_test_acc``,
    ``epoch`` -> ``train/epoch``; ``trainer/global_step`` (the x axis) unchanged."""
    if name == STEP_METRIC or name.split("/", 1)[0] in SECTIONS and "/" in name:
        return name
    if name in _LIGHTNING_KEYS:
        return _LIGHTNING_KEYS[name]
    return f"{TRAIN}/" + name.replace("/", "_")


def define_step_metrics(run: Any) -> None:
    """Tie every section's keys to the SGD step; the step itself gets no panel."""
    run.define_metric(STEP_METRIC, hidden=True)
    for section in SECTIONS:
        run.define_metric(f"{section}/*", step_metric=STEP_METRIC)


def _finite(values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def spectrum_values(arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The eigenvalues a snapshot knows, per histogram name (finite values only, float64).

    Dense snapshots (``hf_all`` ...): all P eigenvalues of H_f, H_p and -H_f, and M's nonzero
    ones (above 1e-8 x its largest: at most n, M has rank <= n). Otherwise the top-k of H_f and
    M, H_p's top-k and bottom-k, and -H_f's bottom-k.
    """
    dense = "hf_all" in arrays and "mt_all" in arrays and "hp_all" in arrays
    hf = _finite(arrays["hf_all"] if dense else arrays["hf_top"])
    mt = _finite(arrays["mt_all"] if dense else arrays["mt_top"])
    if dense:
        hp = _finite(arrays["hp_all"])
    else:
        hp = np.unique(np.concatenate([_finite(arrays["hp_top"]), _finite(arrays["hp_bottom"])]))
    values = {"H_f": hf, "H_p": hp, "neg_H_f": -hf}
    if mt.size and mt.max() > 0:
        values["M_nonzero"] = mt[mt > M_ZERO_REL * mt.max()]
    return {name: v for name, v in values.items() if v.size}


def m_zero_count(arrays: Mapping[str, Any]) -> int | None:
    """How many of M's P eigenvalues are 0 up to rounding (dense snapshots; else None)."""
    if "mt_all" not in arrays:
        return None
    mt = _finite(arrays["mt_all"])
    return int(mt.size - spectrum_values(arrays).get("M_nonzero", np.empty(0)).size)


def histogram_pairs(arrays: Mapping[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``densities/<name>``: ``(counts, edges)`` of each of `spectrum_values`, on symlog bins
    (H_f, H_p, -H_f) or log bins (M's nonzero part)."""
    pairs = {}
    for name, values in spectrum_values(arrays).items():
        edges = log_edges(values) if name == "M_nonzero" else symlog_edges(values)
        pairs[f"{DENSITIES}/{name}"] = spectrum_histogram(values, edges)
    return pairs


def snapshot_histograms(arrays: Mapping[str, Any]) -> dict[str, Any]:
    """``densities/<name>``: a ``wandb.Histogram`` of each of `histogram_pairs`."""
    import wandb

    return {
        key: wandb.Histogram(np_histogram=pair) for key, pair in histogram_pairs(arrays).items()
    }


_CHART_CACHE: dict[Path, tuple[tuple[int, ...], dict[str, Any]]] = {}  # file -> (stat, values)


def chart_history(run_dir: str | os.PathLike) -> RunHistory:
    """The `CHARTS` vectors of every snapshot stored in `run_dir`, as a `RunHistory`; each file
    is read once while it is unchanged (inode, mtime and size), so a run's k-th snapshot reads
    one file, not k."""
    paths = list_snapshots(run_dir)
    snapshots = []
    for path in paths:
        stat = path.stat()
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # atomic writes: a new inode
        cached = _CHART_CACHE.get(path)
        if cached is None or cached[0] != key:
            snapshot = load_snapshot(path)
            values = {k: snapshot[k] for k in ("step", *CHARTS) if k in snapshot}
            cached = _CHART_CACHE[path] = (key, values)
        snapshots.append(cached[1])
    stacked = stack_snapshots(snapshots) if snapshots else {"step": np.empty(0)}
    steps = stacked.pop("step").astype(np.int64)
    return RunHistory(run_dir=Path(run_dir), steps=steps, arrays=stacked, paths=paths)


def line_series_charts(history: RunHistory) -> dict[str, Any]:
    """``<section>/<key>``: for each vector quantity of `CHARTS` the run holds, a line chart
    with one series per index i (x: the steps where that index is finite)."""
    charts = {}
    steps = history.steps.astype(np.int64)
    for key, (section, title, series_name) in CHARTS.items():
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
            charts[f"{section}/{key}"] = _line_series(xs, ys, names, title)
    return charts


def _line_series(xs: list, ys: list, names: list[str], title: str) -> Any:
    """``wandb.plot.line_series(xs, ys, keys=names, title=title, xname="step")``, the same
    table and chart, with the table's per-cell type inference off (columns of one type each:
    it costs about a millisecond per row, seconds per snapshot for k x S rows)."""
    import wandb

    data = [
        [x, name, y]
        for xx, yy, name in zip(xs, ys, names, strict=True)
        for x, y in zip(xx, yy, strict=True)
    ]
    table = wandb.Table(columns=["step", "lineKey", "lineVal"], data=data, allow_mixed_types=True)
    return wandb.plot_table(
        "wandb/lineseries/v0",
        table,
        {"step": "step", "lineKey": "lineKey", "lineVal": "lineVal"},
        {"title": title, "xname": "step"},
    )


def wandb_scalars(arrays: Mapping[str, Any], metrics: Mapping[str, float]) -> dict[str, float]:
    """The scalars worth a panel each: `metrics` but the per-index ``<section>/<key>_<i>``
    with i > 1 (those are drawn together in the line charts), H_p's extremes
    ``spectra/hp_max`` and ``spectra/hp_min``, and ``densities/M_zeros``."""
    kept = {}
    for name, value in metrics.items():
        match = _INDEXED_SCALAR.match(name)
        if match is None or match.group(1) == "1":
            kept[name] = value
    for name, key, pick in (("hp_max", "hp_top", np.max), ("hp_min", "hp_bottom", np.min)):
        values = _finite(arrays.get(key, []))
        if values.size:
            kept[f"{SPECTRA}/{name}"] = float(pick(values))
    zeros = m_zero_count(arrays)
    if zeros is not None:
        kept[f"{DENSITIES}/M_zeros"] = float(zeros)
    return kept


def charts_due(n_stored: int) -> bool:
    """Whether the line charts go with the snapshot that makes `n_stored` snapshots: every one
    up to `CHARTS_AT_EVERY_SNAPSHOT_UP_TO`, then every ceil(n / that)-th, so that a run of S
    snapshots writes O(S k) chart points per chart logged, about that many charts in all
    (each chart holds every snapshot so far: logging all of them would grow as S^2)."""
    every = -(-n_stored // CHARTS_AT_EVERY_SNAPSHOT_UP_TO)
    return n_stored <= CHARTS_AT_EVERY_SNAPSHOT_UP_TO or n_stored % every == 0


def log_snapshot(
    run: Any,
    run_dir: str | os.PathLike,
    arrays: Mapping[str, Any],
    metrics: Mapping[str, float],
    final: bool = False,
) -> None:
    """Log one snapshot at its step ``arrays["step"]``: scalars, histograms, and (when
    `charts_due`, or the `final` snapshot of the run) the line charts of every snapshot stored
    in `run_dir` so far, this one included."""
    record: dict[str, Any] = {**wandb_scalars(arrays, metrics), **snapshot_histograms(arrays)}
    history = chart_history(run_dir)
    if final or charts_due(len(history.steps)):
        record.update(line_series_charts(history))
    record[STEP_METRIC] = int(arrays["step"])
    run.log(record)


def log_drawings(run: Any, paths: Sequence[str | os.PathLike], step: int) -> None:
    """Log the PNG files `paths` as ``figures/<file stem>`` images at training step `step`."""
    import wandb

    if not paths:
        return
    record: dict[str, Any] = {f"{FIGURES}/{Path(p).stem}": wandb.Image(str(p)) for p in paths}
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
