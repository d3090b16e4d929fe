"""Hydra command-line overrides, parsed by Hydra's own grammar (`OverridesParser`).

The one place the launch layer reads overrides: the resume command line (which keys a new
command line sets), the overrides replayed from a run folder, and the output folder a command
line names (checked before Hydra creates it). (`sgd_dynamics.report`, which
must not import Hydra, reads the overrides of finished runs with its own plain
``key=value`` split: those were written by Hydra and need no grammar.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import OverrideParseException

from sgd_dynamics.utils.errors import ConfigError

__all__ = [
    "DEFAULT_OUTPUT_FOLDER",
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


def output_folder(argv: Sequence[str]) -> str:
    """The folder train.py's command line `argv` writes into, as far as it is known before
    Hydra runs: the value of the last ``hydra.run.dir`` override (``hydra.sweep.dir`` with
    ``-m``/``--multirun`` or ``hydra.mode=MULTIRUN``) as Hydra's grammar reads it (``+``/``++``
    prefixes, quotes, escapes), cut at its first ``${`` (interpolations resolve later);
    `DEFAULT_OUTPUT_FOLDER` when no override sets it. Flags, their values and arguments Hydra
    cannot parse are passed over, never raised: Hydra reports those itself."""
    parsed = []
    for text in (str(a) for a in argv):
        if text.startswith("-"):
            continue
        try:
            (override,) = parse_overrides([text])
        except OverrideParseException:
            continue
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


def _refusal(override: Override, allowed: frozenset[str]) -> str | None:
    """Why `override` must not be replayed, or None."""
    key = override_key(override)
    if key == "hydra" or key.startswith(("hydra.", "hydra/")):
        return "it changes Hydra's own configuration, which a run's overrides never do"
    if "_target_" not in override.input_line:
        return None
    value = None if override.is_delete() else override.value()
    if key.endswith("._target_") and isinstance(value, str) and value in allowed:
        return None
    classes = ", ".join(sorted(allowed))
    return f"it names code outside the classes of the project's configs ({classes})"


def check_replayed_overrides(overrides: Sequence[str], source: str | os.PathLike) -> None:
    """Refuse overrides read from a run folder (`source`, its ``.hydra/overrides.yaml``) that
    could make a resumed run execute code the project's configs do not name.

    A run folder is data, not code: resuming from it must never run what its files name.
    Refused: an override of Hydra's own configuration (a key starting with ``hydra``: Hydra
    instantiates its callbacks itself), and any override that mentions ``_target_`` unless it is
    ``<key>._target_=<class>`` with a class of `allowed_targets` (the classes conf/ uses; a dict
    value holding ``_target_`` is refused as a whole), and a line Hydra cannot parse.

    Raises:
        ConfigError: naming `source`, the override, and what is accepted.
    """
    from sgd_dynamics.config_schema import allowed_targets  # loads torch: only on a resume

    allowed = allowed_targets()
    for text in (str(o) for o in overrides):
        try:
            reason = _refusal(parse_overrides([text])[0], allowed)
        except OverrideParseException as exc:
            reason = f"Hydra cannot parse it ({str(exc).splitlines()[0]})"
        if reason is not None:
            raise ConfigError(
                f"{source}: refusing to replay the override {text!r}: {reason}. Remove that "
                "line if you did not write it, or start a new run"
            )
