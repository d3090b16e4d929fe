"""Files of a run, written atomically, and JSON in and out.

Every file a run writes (snapshots, checkpoints, figures, JSON) goes through `atomic_write`: a
temporary file in the same folder, flushed and fsync'ed, then ``os.replace``, so a crash at any
moment leaves either the previous file or the new one, never a truncated file. Stray temporary
files (hidden, ending in ``.tmp``: `is_temp_file`) are ignored by every reader.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from sgd_dynamics.lifecycle.faults import fault_point
from sgd_dynamics.utils.safe_files import FileOverLimit, FileRefused, read_json_file


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
