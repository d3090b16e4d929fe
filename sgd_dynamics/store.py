"""Spectral snapshots on disk: atomic writes, reading back, a whole run's history as arrays.

A run folder holds one snapshot per file, ``RUN_DIR/spectra/step_XXXXXXXX.npz`` (the global
step, zero-padded to 8 digits). Every file is written atomically (a temporary file in the same
folder, flushed and fsync'ed, then ``os.replace``), so a crash at any moment leaves either the
previous file or the new one, never a truncated file; stray temporary files (hidden, ending in
``.tmp``) are ignored by every reader.

Keys of a snapshot (all plain numeric arrays; scalars are 0-d):

- required: ``step``, ``epoch``, ``train_loss``, ``train_acc`` (scalars); ``hf_top``,
  ``mt_top``, ``hp_top``, ``cosines`` (k,) in descending order; ``hp_bottom`` (k,) in ascending
  order (most negative first);
- dense method: ``hf_all``, ``mt_all``, ``hp_all`` (P,) in ascending order;
- optional: ``mb_top`` (k,) descending, and any other scalar (``trace_hf``, ``grad_norm``,
  the traces' standard errors ``trace_hf_stderr``, ``trace_mt_stderr``, ``trace_hp_stderr``,
  solver diagnostics, ...). ``cosines`` may end in NaN (undefined beyond M's numerical rank,
  docs/math.md); the order checks ignore NaN.
- optional, spectral densities (``sgd_dynamics.curvature.density``), for X in ``hf``, ``mt``,
  ``hp`` (H_f, M, H_p): ``X_density_nodes`` (N,) ascending and ``X_density_weights`` (N,), the
  spectral measure (1/P) Σ δ(λ - λ_i) as weighted atoms (weights sum to 1; estimated for H_f and
  H_p, exact for M and in the dense method); ``X_density_grid`` (G,) ascending and
  ``X_density`` (G,), the smoothed density on that grid; scalars ``hp_to_minus_hf_w1``
  (W1(H_p, -H_f) / (λmax(H_f) - λmin(H_f)), exact: tr(M) / P / spread when M's spectrum is),
  ``hp_to_minus_hf_w1_slq`` (the same from the estimated measures, iterative method),
  ``density_seconds``, ``density_spread``, ``density_linthresh`` (τ), ``density_width`` (σ),
  ``density_probes``, ``density_steps``, ``density_exact``. Runs without them load as before.

``load_run`` stacks a run's snapshots into arrays indexed by snapshot: scalars (S,), vectors
(S, k) padded with NaN where k differs, keys missing from some snapshots filled with NaN.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from sgd_dynamics.lifecycle.faults import fault_point
from sgd_dynamics.utils.safe_files import FileOverLimit, FileRefused, read_json_file, read_yaml

SPECTRA_DIRNAME = "spectra"
FIGURES_DIRNAME = "figures"
SNAPSHOT_PATTERN = re.compile(r"^step_(\d{8,})\.npz$")

REQUIRED_SCALARS = ("step", "epoch", "train_loss", "train_acc")
DESCENDING_VECTORS = ("hf_top", "mt_top", "hp_top", "cosines", "mb_top")
ASCENDING_VECTORS = (
    "hp_bottom",
    "hf_all",
    "mt_all",
    "hp_all",
    *(f"{op}_density_{what}" for op in ("hf", "mt", "hp") for what in ("nodes", "grid")),
)
REQUIRED_VECTORS = ("hf_top", "mt_top", "hp_top", "hp_bottom", "cosines")
FULL_SPECTRUM_KEYS = ("hf_all", "mt_all", "hp_all")
DENSITY_OPERATORS = ("hf", "mt", "hp")
DENSITY_KEYS = tuple(
    f"{op}_{suffix}"
    for op in DENSITY_OPERATORS
    for suffix in ("density_nodes", "density_weights", "density_grid", "density")
)


class RunFolderError(ValueError):
    """A folder is not a run (or sweep) folder, or holds no readable snapshots."""


# ----------------------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on clean exit fsync it and move it onto ``path``.

    The temporary file is hidden (``.NAME.XXXX.tmp``) in the same folder, so ``os.replace`` is
    atomic. If the body raises (or ``os.replace`` fails) the temporary file is removed and any
    previous ``path`` is left untouched. ``mode`` is ``"wb"`` or ``"w"`` (UTF-8 text).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        kwargs = {} if mode == "wb" else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            fault_point(f"write:{path.name}", path)  # test-only hook, see lifecycle.faults
            os.fsync(handle.fileno())
        os.chmod(tmp_name, _new_file_mode())  # mkstemp's 0600 -> what open() would give
        os.replace(tmp_name, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, os.fspath(path)) from exc
        raise
    _fsync_dir(path.parent)


def _new_file_mode() -> int:
    """0666 less the process umask: the permissions a plain ``open(path, "w")`` would give."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every platform allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically; numpy scalars/arrays allowed.

    Non-finite numbers (NaN, inf) are written as ``null``: the file is strict JSON.
    """
    with atomic_write(path, "w") as handle:
        json.dump(_finite_or_none(obj), handle, indent=2, allow_nan=False, default=_json_default)
        handle.write("\n")
    return Path(path)


def _finite_or_none(value: Any) -> Any:
    """`value` with every non-finite float (also numpy scalars and arrays) replaced by None."""
    if isinstance(value, np.ndarray | np.generic):
        value = value.tolist()
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def is_temp_file(path: Path) -> bool:
    """Whether ``path`` is a temporary file left by ``atomic_write`` (a crash mid-write)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


# ----------------------------------------------------------------------------- snapshots


def spectra_dir(run_dir: str | os.PathLike) -> Path:
    """``RUN_DIR/spectra``."""
    return Path(run_dir) / SPECTRA_DIRNAME


def snapshot_path(run_dir: str | os.PathLike, step: int) -> Path:
    """``RUN_DIR/spectra/step_XXXXXXXX.npz`` for a global step (8 digits, more if needed)."""
    return spectra_dir(run_dir) / f"step_{int(step):08d}.npz"


def _checked_arrays(arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Convert values to numeric numpy arrays and check the snapshot contract."""
    if not isinstance(arrays, Mapping):
        raise TypeError(f"a snapshot is a mapping of key -> array, got {type(arrays).__name__}")
    missing = [k for k in (*REQUIRED_SCALARS, *REQUIRED_VECTORS) if k not in arrays]
    if missing:
        raise ValueError(f"snapshot is missing required keys {missing}")
    out: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"snapshot keys must be identifiers, got {key!r}")
        if hasattr(value, "detach"):  # a torch tensor
            value = value.detach().cpu().numpy()
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise ValueError(
                f"snapshot key {key!r}: only bool/int/float arrays are stored, got {arr.dtype}"
            )
        if arr.ndim > 1:
            raise ValueError(f"snapshot key {key!r}: scalars or 1-d arrays only, got {arr.shape}")
        out[key] = arr
    for key in REQUIRED_SCALARS:
        if out[key].ndim != 0:
            raise ValueError(f"snapshot key {key!r} must be a scalar, got shape {out[key].shape}")
    step = out["step"]
    if step.dtype.kind == "f" and not float(step).is_integer():
        raise ValueError(f"snapshot step must be an integer, got {step.item()!r}")
    if int(step) < 0:
        raise ValueError(f"snapshot step must be >= 0, got {int(step)}")
    out["step"] = np.asarray(int(step), dtype=np.int64)
    for key in (*DESCENDING_VECTORS, *ASCENDING_VECTORS):
        if key not in out:
            continue
        vec = out[key]
        if vec.ndim != 1:
            raise ValueError(f"snapshot key {key!r} must be 1-d, got shape {vec.shape}")
        diffs = np.diff(vec[~np.isnan(vec)].astype(np.float64))
        descending = key in DESCENDING_VECTORS
        if (descending and np.any(diffs > 0)) or (not descending and np.any(diffs < 0)):
            order = "descending" if descending else "ascending"
            raise ValueError(f"snapshot key {key!r} must be sorted in {order} order")
    return out


def save_snapshot(run_dir: str | os.PathLike, arrays: Mapping[str, Any]) -> Path:
    """Write one snapshot atomically to ``RUN_DIR/spectra/step_XXXXXXXX.npz``; return its path.

    ``arrays`` maps key -> scalar or 1-d array (numpy, torch or Python numbers); the step is
    ``arrays["step"]``. Required keys and orders are in the module docstring; a missing key, a
    wrong shape or a wrong order raises ``ValueError``. Writing the same step again replaces the
    file atomically (a resumed run re-takes a snapshot).
    """
    checked = _checked_arrays(arrays)
    path = snapshot_path(run_dir, int(checked["step"]))
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **checked)
    return path


def load_snapshot(path: str | os.PathLike) -> dict[str, Any]:
    """Read one snapshot file: 0-d entries come back as numpy scalars, vectors as 1-d arrays."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: (data[key][()] if data[key].ndim == 0 else data[key]) for key in data}
    except FileNotFoundError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError, EOFError, ...
        raise RunFolderError(f"cannot read snapshot {path}: {exc}") from exc


def list_snapshots(run_dir: str | os.PathLike) -> list[Path]:
    """Snapshot files of a run, sorted by step (temporary files and other names ignored)."""
    folder = spectra_dir(run_dir)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = SNAPSHOT_PATTERN.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def snapshot_step(path: str | os.PathLike) -> int:
    """The step encoded in a snapshot file name."""
    match = SNAPSHOT_PATTERN.match(Path(path).name)
    if not match:
        raise ValueError(f"not a snapshot file name (step_XXXXXXXX.npz): {path}")
    return int(match.group(1))


def remove_snapshots_after(run_dir: str | os.PathLike, step: int) -> list[Path]:
    """Delete the snapshots with a step greater than ``step`` and stray temporary files.

    Resume policy: a run resumed from a checkpoint taken at global step ``step`` re-trains the
    steps after it, so snapshots written after the checkpoint by the interrupted run describe a
    trajectory that is about to be replaced; they are dropped. The snapshot at ``step`` itself
    describes the checkpointed weights and is kept. Returns the removed snapshot paths.
    """
    removed = []
    for path in list_snapshots(run_dir):
        if snapshot_step(path) > int(step):
            path.unlink()
            removed.append(path)
    folder = spectra_dir(run_dir)
    if folder.is_dir():
        for path in folder.iterdir():
            if is_temp_file(path):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
    return removed


# ----------------------------------------------------------------------------- a run's history


@dataclass
class RunHistory:
    """A run's snapshots stacked by snapshot index (S snapshots, sorted by step).

    ``steps`` (S,) int64. ``arrays[key]`` is float64: (S,) for scalar keys, (S, K) for vector
    keys where K is the longest length of that key over the snapshots; shorter vectors and
    snapshots missing the key are padded with NaN. ``history["hf_top"]`` is
    ``history.arrays["hf_top"]``; ``history["steps"]`` is ``history.steps``.
    """

    run_dir: Path
    steps: np.ndarray
    arrays: dict[str, np.ndarray]
    paths: list[Path] = field(default_factory=list)

    def __getitem__(self, key: str) -> np.ndarray:
        if key == "steps":
            return self.steps
        try:
            return self.arrays[key]
        except KeyError:
            raise KeyError(f"{key!r} is in none of the snapshots; keys: {self.keys()}") from None

    def __contains__(self, key: object) -> bool:
        return key == "steps" or key in self.arrays

    def __len__(self) -> int:
        return len(self.steps)

    def keys(self) -> list[str]:
        return ["steps", *self.arrays]

    @property
    def has_full_spectra(self) -> bool:
        """Whether at least one snapshot stores all P eigenvalues of H_f, M and H_p."""
        return self.full_spectrum_rows().size > 0

    def full_spectrum_rows(self) -> np.ndarray:
        """Indices of the snapshots that hold all three full spectra."""
        if not all(key in self.arrays for key in FULL_SPECTRUM_KEYS):
            return np.zeros(0, dtype=np.int64)
        ok = np.all([np.isfinite(self.arrays[k]).any(axis=1) for k in FULL_SPECTRUM_KEYS], axis=0)
        return np.flatnonzero(ok)

    @property
    def has_densities(self) -> bool:
        """Whether at least one snapshot stores the spectral densities of H_f, M and H_p."""
        return self.density_rows().size > 0

    def density_rows(self) -> np.ndarray:
        """Indices of the snapshots that hold the smoothed densities of H_f, M and H_p."""
        keys = [f"{op}_{what}" for op in DENSITY_OPERATORS for what in ("density_grid", "density")]
        if not all(key in self.arrays for key in keys):
            return np.zeros(0, dtype=np.int64)
        ok = np.all([np.isfinite(self.arrays[k]).any(axis=1) for k in keys], axis=0)
        return np.flatnonzero(ok)

    def density(self, row: int, operator: str) -> tuple[np.ndarray, np.ndarray]:
        """(grid, density) of ``operator`` (hf, mt or hp) at snapshot ``row``, padding dropped."""
        grid = self.arrays[f"{operator}_density_grid"][row]
        density = self.arrays[f"{operator}_density"][row]
        keep = np.isfinite(grid) & np.isfinite(density)
        return grid[keep], density[keep]


def stack_snapshots(snapshots: list[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Stack snapshot dicts: scalars to (S,), vectors to (S, K) float64, NaN where missing."""
    ndims: dict[str, int] = {}
    lengths: dict[str, int] = {}
    for snap in snapshots:
        for key, value in snap.items():
            arr = np.asarray(value)
            if ndims.setdefault(key, arr.ndim) != arr.ndim:
                raise RunFolderError(
                    f"key {key!r} is a scalar in some snapshots, a vector in others"
                )
            if arr.ndim == 1:
                lengths[key] = max(lengths.get(key, 0), arr.shape[0])
    out: dict[str, np.ndarray] = {}
    n = len(snapshots)
    for key, ndim in ndims.items():
        stacked = np.full((n,) if ndim == 0 else (n, lengths[key]), np.nan, dtype=np.float64)
        for row, snap in enumerate(snapshots):
            if key in snap:
                value = np.asarray(snap[key], dtype=np.float64)
                if ndim == 0:
                    stacked[row] = value
                else:
                    stacked[row, : value.shape[0]] = value
        out[key] = stacked
    return out


def load_run(run_dir: str | os.PathLike) -> RunHistory:
    """Load every snapshot of a run into a :class:`RunHistory` (see its docstring for shapes).

    Raises ``RunFolderError`` when ``RUN_DIR/spectra`` holds no snapshot or a file is unreadable
    or its stored step disagrees with its name.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"run folder {run_dir} does not exist or is not a folder")
    paths = list_snapshots(run_dir)
    if not paths:
        raise RunFolderError(
            f"no snapshots in {spectra_dir(run_dir)} (expected step_XXXXXXXX.npz files): "
            "not a run folder, or a run that took no spectral snapshot"
        )
    snapshots = []
    for path in paths:
        snap = load_snapshot(path)
        if "step" not in snap:
            raise RunFolderError(f"snapshot {path} has no 'step' key")
        if int(snap["step"]) != snapshot_step(path):
            raise RunFolderError(
                f"snapshot {path} stores step {int(snap['step'])}, not the step in its name"
            )
        snapshots.append(snap)
    arrays = stack_snapshots(snapshots)
    steps = np.array([int(s["step"]) for s in snapshots], dtype=np.int64)
    return RunHistory(run_dir=run_dir, steps=steps, arrays=arrays, paths=paths)


# ----------------------------------------------------------------------------- run metadata


def read_json(path: str | os.PathLike) -> dict[str, Any] | None:
    """A JSON object from ``path`` (read by `sgd_dynamics.utils.safe_files.read_json_file`), or
    None when the file is missing or not valid JSON.

    Raises:
        FileOverLimit: a file over the size or nesting limits.
    """
    try:
        obj = read_json_file(path, "a run's JSON file")
    except FileOverLimit:
        raise
    except FileRefused:
        return None
    return obj if isinstance(obj, dict) else None


def _resolve_plain_interpolations(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with its plain ``${key}`` interpolations resolved; a string that calls a resolver
    (``${oc.env:...}``, ``${hydra:...}``, ...) stays as written, as do interpolations that
    cannot be resolved: nothing of a run folder reads the environment or builds a node."""
    from omegaconf import OmegaConf

    from sgd_dynamics.utils.interpolation import UnparsableInterpolation, resolvers_in

    kept: dict[str, str] = {}  # placeholder -> the string as written

    def hide(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: hide(v) for k, v in node.items()}
        if isinstance(node, list):
            return [hide(v) for v in node]
        if isinstance(node, str) and "${" in node:
            try:
                calls = resolvers_in(node)
            except UnparsableInterpolation:
                calls = ["?"]
            if calls:
                token = f"\ue000{len(kept)}\ue000"
                kept[token] = node
                return token
        return node

    def show(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: show(v) for k, v in node.items()}
        if isinstance(node, list):
            return [show(v) for v in node]
        if isinstance(node, str) and "\ue000" in node:
            for token, text in kept.items():
                node = node.replace(token, text)
        return node

    try:
        cfg = OmegaConf.create(hide(config))
    except Exception:  # a value OmegaConf does not hold (a YAML timestamp)
        return config
    try:
        container = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # a missing key: every interpolation stays as written
        container = OmegaConf.to_container(cfg, resolve=False)
    return show(container)


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``RUN_DIR/.hydra/config.yaml`` as a plain dict (plain ``${key}`` interpolations resolved
    where they can be, resolver calls left as written), or None when absent or unreadable.
    Reads YAML only (`sgd_dynamics.utils.safe_files.read_yaml`); Hydra is not imported.

    Raises:
        FileOverLimit: a file over the size, alias or nesting limits.
    """
    path = Path(run_dir) / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    try:
        data = read_yaml(path, "a run's config.yaml")
    except FileOverLimit:
        raise
    except FileRefused:
        return None
    return _resolve_plain_interpolations(data) if isinstance(data, dict) else None


def read_run_overrides(run_dir: str | os.PathLike) -> list[str] | None:
    """``RUN_DIR/.hydra/overrides.yaml`` (a list of ``key=value`` strings), or None if absent or
    unreadable.

    Raises:
        FileOverLimit: a file over the size, alias or nesting limits.
    """
    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    try:
        data = read_yaml(path, "a run's overrides.yaml")
    except FileOverLimit:
        raise
    except FileRefused:
        return None
    if data is None:
        return []
    return [str(item) for item in data] if isinstance(data, list) else None
