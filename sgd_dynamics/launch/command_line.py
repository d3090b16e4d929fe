"""train.py's command line, checked before Hydra runs it: every value that would reach the
configuration either composes into a run that can train, or is refused with one line.

`check_command_line(argv)` reads the flags as Hydra does, composes conf/ with the overrides by
Hydra's own config loader (with ``-m``: every job of the sweep, expanded by Hydra's basic
sweeper, so that a bad value in job 3 stops the sweep before job 1 trains), and checks each
job's configuration: `config_schema.validate_config`, then `run_limits` (required sections,
Trainer arguments that would train nothing, threads, memory, disk) and the output folder.
Hydra's own errors (an unknown group option, a key that does not exist, an override its grammar
cannot parse, ``+`` on an existing key, ``~`` of a missing one, unknown flags) become one line
with a suggestion where one exists (``did you mean `batch_size`?``). Everything is raised as
`ConfigError`; ``train.py`` prints ``error: <message>`` and exits with status 2, before Hydra
creates anything.

`Composer` caches the composition of each set of group choices (the part of Hydra's
composition that reads the YAML files) and applies the value overrides to a copy with Hydra's
own function, so that checking a sweep of many jobs, or many command lines in the tests, costs
one composition per set of group choices.
"""

from __future__ import annotations

import argparse
import copy
import functools
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from sgd_dynamics.utils.errors import ConfigError
from sgd_dynamics.utils.suggest import did_you_mean

__all__ = ["CONFIG_DIR", "Composer", "check_command_line", "composer"]

CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"  # conf/ beside train.py
CONFIG_NAME = "train"
# flags Hydra answers without running a job, or that make it compose another config
PASSED_TO_HYDRA = (
    "help",
    "hydra_help",
    "shell_completion",
    "config_path",
    "config_dir",
    "experimental_rerun",
)
FLAGS_TEXT = (
    "train.py takes key=value overrides and Hydra's flags: -m/--multirun, --cfg job|hydra|all, "
    "--resolve, --package, --info, --help, --hydra-help, --version"
)
REMOTE_LAUNCHERS = ("submitit_slurm", "SlurmLauncher")  # jobs run on other machines
_MISSING = object()


# ----------------------------------------------------------------------------- messages
def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, without Hydra's pointers to its documentation."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("See https://", "Config search path"))]
    text = " ".join(lines) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_error(text: str, exc: BaseException) -> ConfigError:
    return ConfigError(
        f"cannot parse the override {text!r} ({one_line(exc, 160)}): write key=value; a value "
        "holding spaces, commas, quotes, brackets, braces, parentheses, = or non-ASCII letters "
        "goes in quotes: key='a, b'"
    )


def _flags(argv: Sequence[str]) -> argparse.Namespace:
    """The command line as Hydra's own argument parser reads it; an unknown flag or a missing
    flag value is a `ConfigError`."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()

    def error(message: str) -> None:
        raise ConfigError(f"{message}: {FLAGS_TEXT}")

    parser.error = error  # type: ignore[method-assign]
    return parser.parse_args(list(argv))


# ----------------------------------------------------------------------------- composition
class Composer:
    """Hydra's composition of `config_name` in `config_dir` (its `ConfigLoaderImpl`, the
    object ``hydra.main`` and ``hydra.compose`` use), for parsed overrides.

    The overrides that choose group options (``dataset=mnist``, ``~dataset``,
    ``hydra/launcher=joblib``) are composed once per distinct tuple and cached, errors
    included; the others are applied, one at a time, to a deep copy of that composition with
    Hydra's `_apply_overrides_to_config` (as Hydra's loader does after composing the groups),
    so that an error names the override that caused it. Hydra's split between the two kinds
    is kept: an override of a config group with a non-dict value chooses an option.
    """

    def __init__(self, config_dir: str | os.PathLike = CONFIG_DIR, config_name: str = CONFIG_NAME):
        from hydra._internal.config_loader_impl import ConfigLoaderImpl
        from hydra._internal.utils import create_config_search_path
        from hydra.core.utils import JobRuntime, setup_globals

        setup_globals()  # the ${now:} and ${hydra:} resolvers
        runtime = JobRuntime.instance()
        if "name" not in runtime.conf:
            runtime.set("name", config_name)
        self.config_name = config_name
        self.loader = ConfigLoaderImpl(create_config_search_path(str(Path(config_dir))))
        self._groups: dict[tuple[str, ...], DictConfig | Exception] = {}

    def is_group_choice(self, override) -> bool:
        """Whether Hydra treats `override` as the choice of a group option."""
        return not isinstance(override.value(), dict) and self.loader.repository.group_exists(
            override.key_or_group
        )

    def group_options(self, group: str) -> list[str]:
        from hydra.core.object_type import ObjectType

        return self.loader.get_group_options(group, results_filter=ObjectType.CONFIG)

    def _with_groups(self, lines: tuple[str, ...]) -> DictConfig:
        from hydra.types import RunMode

        if lines not in self._groups:
            try:
                with warnings.catch_warnings():  # Hydra warns again when it composes the run
                    warnings.simplefilter("ignore")
                    self._groups[lines] = self.loader.load_configuration(
                        self.config_name, list(lines), RunMode.RUN, from_shell=True
                    )
            except Exception as exc:  # Hydra's errors, kept to be raised again
                self._groups[lines] = exc
        result = self._groups[lines]
        if isinstance(result, Exception):
            raise result
        return result

    def compose(self, overrides: Sequence) -> DictConfig:
        """The composed configuration (with its ``hydra`` node) for parsed `overrides`.

        Raises:
            ConfigError: the override that Hydra refused, with what is accepted.
        """
        from hydra._internal.config_loader_impl import ConfigLoaderImpl

        groups = [o for o in overrides if self.is_group_choice(o)]
        try:
            base = self._with_groups(tuple(o.input_line for o in groups))
        except Exception as exc:
            raise self._group_error(groups, exc) from None
        values = [o for o in overrides if o not in groups]
        cfg = copy.deepcopy(base)
        for done, override in enumerate(values):
            try:
                ConfigLoaderImpl._apply_overrides_to_config([override], cfg)
            except Exception as exc:
                before = copy.deepcopy(base)  # the configuration the override was applied to
                ConfigLoaderImpl._apply_overrides_to_config(values[:done], before)
                raise _value_error(override, before, exc) from None
        return cfg

    def _group_error(self, groups: Sequence, exc: Exception) -> ConfigError:
        """The first group override whose addition makes the composition fail, explained."""
        from hydra.errors import MissingConfigException

        culprit = None
        for end in range(1, len(groups) + 1):
            try:
                self._with_groups(tuple(o.input_line for o in groups[:end]))
            except Exception as failed:
                culprit, exc = groups[end - 1], failed
                break
        if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
            group, _, option = exc.missing_cfg_file.rpartition("/")
            options = self.group_options(group) if group else []
            if options:
                return ConfigError(
                    f"{group}={option}: no such option of the group {group}; one of "
                    f"{', '.join(options)}{did_you_mean(option, options)}"
                )
        if culprit is None:
            return ConfigError(f"cannot compose the configuration: {one_line(exc)}")
        key = culprit.key_or_group
        if culprit.is_add() and not culprit.is_force_add() and not culprit.package:
            return ConfigError(
                f"{culprit.input_line}: the group {key} already has an option; choose another "
                f"with {key}=<option> (one of {', '.join(self.group_options(key))})"
            )
        return ConfigError(f"{culprit.input_line}: {one_line(exc)}")


def _children(cfg: DictConfig, path: str) -> list[str]:
    node = OmegaConf.select(cfg, path) if path else cfg
    return [str(k) for k in node.keys()] if isinstance(node, DictConfig) else []


def _all_keys(cfg: DictConfig, prefix: str = "") -> Iterator[str]:
    for key in cfg.keys():
        name = f"{prefix}{key}"
        yield name
        if name != "hydra" and isinstance(node := cfg._get_node(key), DictConfig):
            yield from _all_keys(node, f"{name}.")


def _key_suggestion(key: str, cfg: DictConfig) -> str:
    """``; did you mean `X`?`` over the schema's keys and the composed config's, else the
    keys of the section `key` would be in."""
    from sgd_dynamics.config_schema import KEYS, SECTIONS

    candidates = {*KEYS, *SECTIONS, *(k for k in _all_keys(cfg) if not k.startswith("hydra."))}
    if key.startswith("hydra."):
        candidates = {k for k in _all_keys(cfg.hydra, "hydra.")}
    suggestion = did_you_mean(key, candidates)
    if suggestion:
        return suggestion
    parent = key.rpartition(".")[0]
    names = _children(cfg, parent)
    if not names and parent:
        return f"; {parent} is not a section of the configuration"
    shown = ", ".join(n for n in names if n != "hydra")
    return f"; keys of {parent or 'the top level'}: {shown}"


def _value_error(override, cfg: DictConfig, exc: Exception) -> ConfigError:
    """Why Hydra refused to apply `override` to `cfg` (the configuration before it)."""
    from sgd_dynamics.launch.overrides import override_key

    key = override_key(override)
    value = OmegaConf.select(cfg, key, default=_MISSING, throw_on_resolution_failure=False)
    exists = value is not _MISSING
    text = override.input_line
    if override.package:
        return ConfigError(f"{text}: a package (@) applies only to a group option")
    if override.is_delete():
        if not exists:
            return ConfigError(
                f"{text}: there is no key {key} to delete" + _key_suggestion(key, cfg)
            )
        return ConfigError(
            f"{text}: {key} is {_shown(cfg, key)}, not {override.value()}; delete it with ~{key}"
        )
    if override.is_add() and not override.is_force_add() and exists:
        return ConfigError(
            f"{text}: {key} already exists; set it with {key}=... (+ adds a key that does not "
            "exist, ++ adds or sets)"
        )
    if not exists and not override.is_add():
        how = ""
        if key.startswith("trainer.") and key.count(".") == 1:
            how = f"; a Trainer argument is added with +{key}=..."
        return ConfigError(f"{text}: unknown key{_key_suggestion(key, cfg)}{how}")
    return ConfigError(f"{text}: {one_line(exc)}")


def _shown(cfg: DictConfig, key: str) -> str:
    from sgd_dynamics.config_schema import format_value

    node = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
    if isinstance(node, DictConfig):
        return format_value(OmegaConf.to_container(node, resolve=False))
    return format_value(node)


@functools.lru_cache(maxsize=4)
def composer(config_dir: str = str(CONFIG_DIR), config_name: str = CONFIG_NAME) -> Composer:
    """One `Composer` per config folder and name, kept for the process."""
    return Composer(config_dir, config_name)


# ----------------------------------------------------------------------------- sweeps
def _parse(texts: Sequence[str]) -> list:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    parsed = []
    for text in texts:
        try:
            parsed.extend(parser.parse_overrides([text]))
        except OverrideParseException as exc:
            raise _parse_error(text, exc) from None
    return parsed


def sweep_jobs(overrides: Sequence) -> list[list]:
    """The overrides of each job of a sweep, as Hydra's basic sweeper expands them: the
    Cartesian product of the swept task overrides, each job after Hydra's own overrides."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    hydra_own = [o for o in overrides if o.is_hydra_override()]
    task = [o for o in overrides if not o.is_hydra_override()]
    try:
        (batches,) = BasicSweeper.split_arguments(task, None)
    except Exception as exc:
        raise ConfigError(f"cannot expand the sweep: {one_line(exc)}") from None
    texts = [o.input_line for o in hydra_own]
    return [_parse([*texts, *job]) for job in batches]


# ----------------------------------------------------------------------------- one job
@contextmanager
def _hydra_config(cfg: DictConfig) -> Iterator[None]:
    """`HydraConfig` set to `cfg`'s (the ``${hydra:...}`` resolver reads it), then restored."""
    from hydra.core.hydra_config import HydraConfig

    instance = HydraConfig.instance()
    previous = instance.cfg
    instance.set_config(cfg)
    try:
        yield
    finally:
        instance.cfg = previous


def _resolved(cfg: DictConfig, key: str) -> str:
    try:
        value = OmegaConf.select(cfg, key, throw_on_missing=True)
    except Exception as exc:
        raise ConfigError(f"{key}: cannot be resolved: {one_line(exc)}") from None
    return "" if value is None else str(value)


def _output_folder(cfg: DictConfig, job: int | None, cwd: str | os.PathLike) -> str:
    """The job's output folder, as Hydra will make it (sweep folder / job number in a sweep);
    set as ``hydra.runtime.output_dir`` (``run_dir``), with the job number."""
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        if job is not None:
            cfg.hydra.job.num = job
        cfg.hydra.job.id = f"check_{job or 0}"
        folder = _resolved(cfg, "hydra.run.dir" if job is None else "hydra.sweep.dir")
        if job is not None:
            folder = str(Path(folder, _resolved(cfg, "hydra.sweep.subdir")))
        cfg.hydra.runtime.output_dir = os.path.normpath(Path(cwd, folder).absolute())
    return folder


@functools.lru_cache(maxsize=1)
def trainer_arguments() -> tuple[str, ...]:
    """The argument names of `pytorch_lightning.Trainer` (open keys of ``trainer``)."""
    import inspect

    import pytorch_lightning as pl

    return tuple(inspect.signature(pl.Trainer).parameters)


def check_output_folder(folder: str, key: str, cwd: str | os.PathLike) -> None:
    """The run (or sweep) folder: not empty, not the current folder or one holding it (a run
    would write its files among others), and one this process can create files in."""
    from sgd_dynamics.run_folder.location import unwritable_output

    here = Path(cwd).absolute()
    path = Path(os.path.normpath(Path(here, folder).absolute())) if folder.strip() else here
    if not folder.strip() or path == here or path in here.parents:
        raise ConfigError(
            f"{key}={folder!r}: is the current folder or holds it; a run's files need a folder "
            "of their own (the default is outputs/...)"
        )
    if (problem := unwritable_output(folder, cwd)) is not None:
        raise ConfigError(f"{key}: {problem}")


def check_job(cfg: DictConfig, job: int | None = None, cwd: str | os.PathLike = ".") -> dict:
    """Check one composed job configuration (with its ``hydra`` node, which is taken out of
    `cfg` as Hydra does for the job; `job`: its number in a sweep, None for a single run):
    `validate_config`, the `run_limits` checks, the output folder, the checkpoint to resume
    from (`resume_guard.check_checkpoint`, without the model). Returns the validated
    configuration as plain containers.

    Raises:
        ConfigError: ``<key>=<value>: <what is accepted>``.
    """
    from sgd_dynamics.config_schema import validate_config
    from sgd_dynamics.launch import run_limits

    launcher = str(OmegaConf.select(cfg, "hydra.launcher._target_", default="") or "")
    folder = _output_folder(cfg, job, cwd)
    key = "hydra.run.dir" if job is None else "hydra.sweep.dir"
    check_output_folder(str(Path(folder).parent) if job is not None else folder, key, cwd)
    with _hydra_config(cfg):
        with read_write(cfg), open_dict(cfg):
            del cfg["hydra"]  # as Hydra passes it to the job
        config = validate_config(cfg, trainer_arguments=trainer_arguments())
    run_limits.check_required(config)
    run_limits.check_training_loop(config["trainer"])
    run_limits.check_sizes(config)
    run_limits.check_data_files(config, cwd)
    if isinstance(ckpt := config.get("ckpt_path"), str):  # readable, with the training state
        from sgd_dynamics.launch.resume_guard import check_checkpoint

        check_checkpoint(ckpt if Path(ckpt).is_absolute() or str(cwd) == "." else Path(cwd, ckpt))
    if not any(name in launcher for name in REMOTE_LAUNCHERS):  # this machine runs the job
        run_limits.check_threads(config["threads"])
        run_limits.check_devices(config["trainer"])
        run_limits.check_memory(config)
    run_limits.check_disk(config, Path(cwd, folder))
    return config


# ----------------------------------------------------------------------------- entry
def check_command_line(
    argv: Sequence[str],
    config_dir: str | os.PathLike = CONFIG_DIR,
    cwd: str | os.PathLike = ".",
) -> int:
    """Check train.py's command line `argv` before Hydra runs it (module docstring); returns
    the number of jobs checked (0 when Hydra answers the command itself: --help, --version,
    another config folder; and in a DDP process that Lightning re-launched, whose parent
    checked the same command line).

    Raises:
        ConfigError: the one-line reason the command line cannot make a run.
    """
    if os.environ.get("LOCAL_RANK", "0") != "0" or "--version" in argv:
        return 0
    try:
        return _check(argv, Path(config_dir), cwd)
    except ConfigError as exc:
        raise ConfigError(printable(str(exc))) from None


def _check(argv: Sequence[str], config_dir: Path, cwd: str | os.PathLike) -> int:
    flags = _flags(argv)
    if any(getattr(flags, name, None) for name in PASSED_TO_HYDRA) or not config_dir.is_dir():
        return 0
    overrides = _parse(flags.overrides)
    modes = [str(o.value()).upper() for o in overrides if o.key_or_group == "hydra.mode"]
    multirun = flags.multirun or modes[-1:] == ["MULTIRUN"]
    if multirun:
        jobs = sweep_jobs(overrides)
    else:
        for override in overrides:
            if override.is_sweep_override():
                raise ConfigError(
                    f"{override.input_line}: several values make a sweep, which runs with -m "
                    "(python train.py -m ...); a list is key=[a,b], a text holding a comma "
                    "goes in quotes: key='a,b'"
                )
        jobs = [overrides]
    build = composer(str(config_dir.resolve()), flags.config_name or CONFIG_NAME)
    for number, job in enumerate(jobs):
        where = f"sweep job {number} ({' '.join(o.input_line for o in job)}): " if multirun else ""
        try:
            cfg = build.compose(job)
            if not flags.cfg and getattr(flags, "info", None) is None:
                check_job(cfg, number if multirun else None, cwd)
        except ConfigError as exc:
            raise ConfigError(f"{where}{exc}") from None
    return len(jobs)


def printable(message: str) -> str:
    """`message` on one line: control characters (a newline in a value) written as escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
