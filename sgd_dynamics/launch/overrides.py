"""Hydra command-line overrides, parsed by Hydra's own grammar (`OverridesParser`).

The one place the launch layer reads overrides: the resume command line (which keys a new
command line sets), the overrides replayed from a run folder (`check_replayed_overrides`: data
for the schema's keys, never resolved), the resolvers a typed override may call
(`check_typed_resolvers`), and the output folder a command line names (checked before Hydra
creates it). (`sgd_dynamics.report`, which
must not import Hydra, reads the overrides of finished runs with its own plain
``key=value`` split: those were written by Hydra and need no grammar.)
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Collection, Iterator, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import OverrideParseException

from sgd_dynamics.utils.errors import ConfigError
from sgd_dynamics.utils.interpolation import UnparsableInterpolation, resolvers_in

__all__ = [
    "COMMAND_LINE_RESOLVERS",
    "DEFAULT_OUTPUT_FOLDER",
    "check_typed_resolvers",
    "check_replayed_overrides",
    "output_folder",
    "override_key",
    "parse_overrides",
]

DEFAULT_OUTPUT_FOLDER = "outputs"  # where conf/train.yaml's hydra.run.dir and sweep.dir start


def parse_overrides(overrides: Sequence[str]) -> list[Override]:
    """Each ``key=value``, ``+key=value``, ``~key``, ``group=option`` as Hydra parses it.

    Raises:
        hydra.errors.OverrideParseException: on an override Hydra's grammar refuses.
    """
    return OverridesParser.create().parse_overrides([str(o) for o in overrides])


def override_key(override: Override) -> str:
    """The key or config group an override sets, without its ``+``/``++``/``~`` prefix
    (``+trainer.precision=64`` -> ``trainer.precision``; ``dataset=mnist`` -> ``dataset``)."""
    package = f"@{override.package}" if override.package else ""
    return f"{override.key_or_group}{package}"


def _parsed_arguments(argv: Sequence[str]) -> Iterator[tuple[str, Override]]:
    """Each argument of `argv` that is an override Hydra's grammar parses, with its text;
    flags (``-m``, ``--help``, ...) and arguments Hydra cannot parse are passed over: Hydra
    reports those itself."""
    for text in (str(a) for a in argv):
        if text.startswith("-"):
            continue
        try:
            (override,) = parse_overrides([text])
        except OverrideParseException:
            continue
        yield text, override


def output_folder(argv: Sequence[str]) -> str:
    """The folder train.py's command line `argv` writes into, as far as it is known before
    Hydra runs: the value of the last ``hydra.run.dir`` override (``hydra.sweep.dir`` with
    ``-m``/``--multirun`` or ``hydra.mode=MULTIRUN``) as Hydra's grammar reads it (``+``/``++``
    prefixes, quotes, escapes), cut at its first ``${`` (interpolations resolve later);
    `DEFAULT_OUTPUT_FOLDER` when no override sets it. Flags, their values and arguments Hydra
    cannot parse are passed over, never raised: Hydra reports those itself."""
    parsed = []
    for _, override in _parsed_arguments(argv):
        if not (override.is_delete() or override.is_sweep_override()):
            parsed.append(override)
    modes = [str(o.value()).upper() for o in parsed if override_key(o) == "hydra.mode"]
    multirun = "-m" in argv or "--multirun" in argv or modes[-1:] == ["MULTIRUN"]
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    folder = DEFAULT_OUTPUT_FOLDER
    for override in parsed:
        if override_key(override) == key and isinstance(
            value := override.value(), (str, int, float)
        ):
            folder = str(value)  # numbers as OmegaConf reads them: str()
    return folder.split("${")[0]


# resolvers an override typed on the command line may call: the project's own (conf/'s wandb
# names) and Hydra's (``${hydra:...}``, ``${now:...}``); plain ``${key}`` interpolations too
COMMAND_LINE_RESOLVERS = ("hydra", "now", "run_name", "sweep_name")
# a config group's option: a file name of conf/<group>/ (``dataset=mnist``, ``logger=[wandb,csv]``)
_OPTION_NAME = re.compile(r"[A-Za-z0-9_]+")


def _strings(value: object) -> Iterator[str]:
    """Every string in a parsed override value: in lists, dict keys and values, and sweeps
    (``a,b``, ``choice(...)``, ``glob(...)``: their Hydra dataclasses)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            yield from _strings(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _strings(getattr(value, field.name))


def _value(override: Override) -> object:
    return override.value() if override.value_type is not None else None


def check_typed_resolvers(argv: Sequence[str]) -> None:
    """Refuse a command-line override whose value calls a resolver other than
    `COMMAND_LINE_RESOLVERS` (``${oc.env:...}``, ``${oc.decode:...}``, ``${oc.create:...}``,
    ``${oc.select:...}``, ...): what they produce (the environment's values, nodes built from
    text) would be written into the run folder's record and wandb. Plain ``${key}``
    interpolations are accepted. Flags and arguments Hydra cannot parse are passed over (Hydra
    reports those itself).

    Raises:
        ConfigError: ``<override>: <what is accepted>``.
    """
    accepted = ", ".join(COMMAND_LINE_RESOLVERS)
    for text, override in _parsed_arguments(argv):
        for string in _strings(_value(override)):
            try:
                names = resolvers_in(string)
            except UnparsableInterpolation as exc:
                raise ConfigError(
                    f"{text}: OmegaConf cannot parse the interpolation in {string!r} ({exc})"
                ) from None
            refused = [name for name in names if name not in COMMAND_LINE_RESOLVERS]
            if refused:
                raise ConfigError(
                    f"{text}: the resolver {refused[0]} is not accepted in an override: values "
                    "read from the environment or built from text would be recorded in the run "
                    f"folder and in wandb; accepted: plain ${{key}} interpolations and the "
                    f"resolvers {accepted} (to pass an environment variable, let the shell "
                    'expand it: key="$VARIABLE")'
                )


def _replayable_keys(trainer_arguments: Collection[str]) -> tuple[frozenset[str], frozenset[str]]:
    """(keys a replayed override may set or delete, config groups it may choose)."""
    from sgd_dynamics.config_schema import (
        CONFIG_GROUPS,
        KEYS,
        PATH,
        RESERVED_TRAINER_ARGUMENTS,
        SCHEMA,
        SECTIONS,
    )

    folders = {k.name for k in SCHEMA if k.set_by_group and k.kind is PATH}  # = run_dir, ...
    trainer = {f"trainer.{a}" for a in trainer_arguments if a not in RESERVED_TRAINER_ARGUMENTS}
    keys = (set(KEYS) | set(SECTIONS) | trainer) - folders
    return frozenset(keys), frozenset(CONFIG_GROUPS)


def _refusal(
    override: Override, keys: frozenset[str], groups: frozenset[str], allowed: frozenset[str]
) -> str | None:
    """Why `override` must not be replayed, or None."""
    key = override_key(override)
    if key == "hydra" or key.startswith(("hydra.", "hydra/")):
        return "it changes Hydra's own configuration, which a run's overrides never do"
    if override.is_sweep_override():
        return "it is a sweep, and a run's overrides hold one value each"
    value = _value(override)
    if any("${" in string for string in _strings(value)):
        return (
            "its value holds an OmegaConf interpolation (${...}); a replayed value is data, "
            "never resolved"
        )
    if key in groups:
        names = value if isinstance(value, list) else [value]
        if all(n is None or (isinstance(n, str) and _OPTION_NAME.fullmatch(n)) for n in names):
            return None
        return f"a config group's option is a name of conf/{key}/"
    if key not in keys:
        return (
            "it sets a key outside the project's configuration schema (the keys of "
            "sgd_dynamics.config_schema.SCHEMA, its config groups and Lightning Trainer "
            "arguments as trainer.<argument>; folders derived from the run folder are not "
            "replayed)"
        )
    from sgd_dynamics.launch.targets import check_node

    try:
        check_node(value, key, allowed)
    except ConfigError as exc:
        return str(exc)
    return None


def check_replayed_overrides(
    overrides: Sequence[str],
    source: str | os.PathLike,
    trainer_arguments: Collection[str] | None = None,
    replaced: Collection[str] = (),
) -> None:
    """Refuse overrides read from a run folder (`source`, its ``.hydra/overrides.yaml``) that
    are not plain data for the keys of the project's configuration.

    A run folder is data, not code: resuming from it must never run what its files name, nor
    read the environment. Each line must parse with Hydra's grammar and:

    - set or delete a key of `sgd_dynamics.config_schema.SCHEMA` (or one of its sections), a
      Lightning Trainer argument as ``trainer.<argument>`` (`trainer_arguments`; default: the
      parameters of ``pytorch_lightning.Trainer`` other than ``logger`` and ``callbacks``), or
      choose a config group's option by name; not a folder the configuration derives from the
      run folder (``trainer.default_root_dir``, ``logger.*.save_dir``, ...), not Hydra's own
      configuration (``hydra.*``: Hydra instantiates its callbacks itself);
    - hold one value (no sweep) with no OmegaConf interpolation or resolver call anywhere in it
      (``${...}``, escaped or not, in any string, list, dict key or value): nothing of a run
      folder is resolved;
    - name, in any ``_target_`` it holds, only classes of `allowed_targets` (checked again,
      after resolution, when the run is built: `sgd_dynamics.launch.targets`).

    A line whose key is in `replaced` (the keys the new command line sets: the line is dropped,
    not replayed) only needs to parse.

    Raises:
        ConfigError: naming `source`, the override, and why it is refused.
    """
    from sgd_dynamics.config_schema import allowed_targets  # loads torch: only on a resume

    if trainer_arguments is None:
        import inspect

        import pytorch_lightning as pl

        trainer_arguments = inspect.signature(pl.Trainer).parameters
    keys, groups = _replayable_keys(trainer_arguments)
    allowed = allowed_targets()
    for text in overrides:
        if not isinstance(text, str):
            reason = f"it is a {type(text).__name__}, not a line key=value"
        else:
            try:
                override = parse_overrides([text])[0]
            except OverrideParseException as exc:
                reason = f"Hydra cannot parse it ({str(exc).splitlines()[0]})"
            else:
                dropped = override_key(override) in replaced
                reason = None if dropped else _refusal(override, keys, groups, allowed)
        if reason is not None:
            raise ConfigError(
                f"{source}: refusing to replay the override {text!r}: {reason}. If you did not "
                "write it, start a new run; if you did, set that key on the resume's command "
                "line (key=value), which replaces the line"
            )
