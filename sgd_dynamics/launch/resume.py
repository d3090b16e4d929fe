"""The command line of a resumed run: ``train.py ckpt_path=RUN_DIR/checkpoints/X.ckpt ...``
continues RUN_DIR with the run's own overrides.

Hydra rewrites RUN_DIR/.hydra/{config,hydra,overrides}.yaml before the job starts, with the
resumed command's settings. `resume_argv` keeps their bytes, so that a resume refused while the
run is built (`restore_run_record`) leaves the run's record, and the overrides the next resume
replays, as they were."""

from __future__ import annotations

from pathlib import Path

from hydra.errors import OverrideParseException

from sgd_dynamics.launch.overrides import check_replayed_overrides, override_key, parse_overrides
from sgd_dynamics.run_folder.location import run_dir_of_checkpoint
from sgd_dynamics.utils.commands import override_argument
from sgd_dynamics.utils.safe_files import FileRefused, read_yaml

__all__ = ["resume_argv", "restore_run_record"]

_RECORD_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")
_saved_record: dict[Path, bytes] = {}  # RUN_DIR/.hydra files as they were before this resume


def _save_run_record(run_dir: Path) -> None:
    _saved_record.clear()
    for name in _RECORD_FILES:
        path = run_dir / ".hydra" / name
        if path.is_file():
            _saved_record[path] = path.read_bytes()


def restore_run_record() -> None:
    """Write back, atomically, the RUN_DIR/.hydra files saved by this process's `resume_argv`
    (Hydra has rewritten them with a resume that was then refused); nothing when this process
    resumed nothing."""
    from sgd_dynamics.run_folder.files import atomic_write

    for path, content in _saved_record.items():
        if not path.is_file() or path.read_bytes() != content:
            with atomic_write(path) as handle:
                handle.write(content)
    _saved_record.clear()


def resume_argv(argv: list[str]) -> list[str]:
    """Rewrite the command line of ``ckpt_path=RUN_DIR/checkpoints/X.ckpt`` to continue RUN_DIR:
    the run's own overrides first (from RUN_DIR/.hydra/overrides.yaml, refused by
    `check_replayed_overrides` when they name foreign code), then the new ones (which win), then
    ``hydra.run.dir=RUN_DIR``. Other command lines (flags such as ``-m``, an explicit
    ``hydra.run.dir``, no checkpoint of a run folder) are returned unchanged.

    Raises:
        ConfigError: replayed overrides that are refused, or a checkpoint that cannot be read.
        FileRefused: an overrides.yaml that is not a plain YAML list within the limits of
            `sgd_dynamics.utils.safe_files`.
    """
    if any(a.startswith("-") for a in argv) or not any("ckpt_path" in a for a in argv):
        return argv
    try:
        parsed = parse_overrides(argv)
    except OverrideParseException:  # Hydra reports it, with its grammar's message
        return argv
    keys = {override_key(o) for o in parsed}
    ckpt = [o.value() for o in parsed if override_key(o) == "ckpt_path" and not o.is_delete()]
    if "hydra.run.dir" in keys or not ckpt or ckpt[-1] in ("", None):
        return argv
    run_dir = run_dir_of_checkpoint(str(ckpt[-1]))
    if run_dir is None:
        return argv
    from sgd_dynamics.launch.resume_guard import check_checkpoint  # loads torch: only when resuming

    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    original = read_yaml(overrides_file, "a run's overrides.yaml")  # data: nothing resolved
    if original is None:
        original = []
    if not isinstance(original, list):
        raise FileRefused(f"{overrides_file}: not a list of overrides (key=value lines)")
    check_replayed_overrides(original, overrides_file, replaced=keys)
    check_checkpoint(str(ckpt[-1]))  # before Hydra rewrites anything in RUN_DIR
    _save_run_record(run_dir)
    replayed = zip(original, parse_overrides(original), strict=True)
    kept = [text for text, override in replayed if override_key(override) not in keys]
    return [*kept, *argv, override_argument("hydra.run.dir", run_dir.resolve())]
