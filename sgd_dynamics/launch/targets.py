"""What `hydra.utils.instantiate` may build: the check of the resolved configuration.

`build` resolves the composed configuration once, to plain dicts and lists
(`sgd_dynamics.config_schema.validate_config`), checks it with `check_instantiable` and builds
every part from those checked containers, so that what is checked is what is built. The rule,
for every mapping anywhere in the configuration (open sections such as ``trainer.*`` and
lists included), whatever wrote it (conf/, the command line, a replayed override, a value that
an interpolation or resolver produced):

- ``_target_`` names one of the project's classes (`config_schema.allowed_targets`);
- ``_partial_`` appears only where conf/ puts it (``optimizer._partial_: true``);
- ``_args_``, ``_recursive_`` and ``_convert_``, which conf/ never uses, do not appear;
- no string still reads as an OmegaConf interpolation (``${...}``) or missing value (``???``):
  `instantiate` would resolve it a second time, after the check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sgd_dynamics.config_schema import KEYS, allowed_targets, format_value
from sgd_dynamics.utils.errors import ConfigError

__all__ = ["INSTANTIATE_KEYS", "check_instantiable", "check_node"]

TARGET, PARTIAL = "_target_", "_partial_"
UNUSED_KEYS = ("_args_", "_recursive_", "_convert_")
INSTANTIATE_KEYS = (TARGET, PARTIAL, *UNUSED_KEYS)  # the keys hydra.utils.instantiate reads


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _check_string(path: str, text: str) -> None:
    if text == "???":  # OmegaConf's missing value: built, it would be read as one
        raise ConfigError(f"{path}=???: a value (??? is OmegaConf's mark of a missing one)")
    if "${" in text:
        raise ConfigError(
            f"{path}={text}: a value that still reads as an OmegaConf interpolation after "
            "resolution would be resolved again when the run is built; write the value itself"
        )


def _check_key(path: str, key: object, value: object, allowed: frozenset[str]) -> None:
    where = _join(path, key)
    if key == TARGET:
        if not (isinstance(value, str) and value in allowed):
            raise ConfigError(
                f"{where}={format_value(value)}: one of the classes of the project's configs "
                f"({', '.join(sorted(allowed))}); nothing else is built"
            )
    elif key == PARTIAL:
        if where not in KEYS or not KEYS[where].kind.accepts(value):
            raise ConfigError(
                f"{where}={format_value(value)}: _partial_ is accepted only where the "
                "project's configs set it (optimizer._partial_=true)"
            )
    elif key in UNUSED_KEYS:
        raise ConfigError(
            f"{where}={format_value(value)}: {key} is not accepted (the project's configs never "
            "use it)"
        )


def _walk(node: Any, path: str, allowed: frozenset[str]) -> None:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if isinstance(key, str):
                _check_string(f"{path} (a key)" if path else "a key", key)
            _check_key(path, key, value, allowed)
            _walk(value, _join(path, key), allowed)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            _walk(value, f"{path}[{index}]", allowed)
    elif isinstance(node, str):
        _check_string(path, node)


def check_instantiable(config: Mapping[str, Any], allowed: frozenset[str] | None = None) -> None:
    """Check the resolved configuration `config` (plain dicts and lists, as `validate_config`
    returns it) against the rule of this module, before anything is built from it.

    Args:
        config: the resolved configuration, without Hydra's own ``hydra`` section.
        allowed: the accepted ``_target_`` values (default: `allowed_targets`).

    Raises:
        ConfigError: ``<key path>=<value>: <what is accepted>`` for the first key that breaks
            the rule.
    """
    check_node(config, "", allowed)


def check_node(node: Any, path: str, allowed: frozenset[str] | None = None) -> None:
    """`check_instantiable` for `node`, the value at the key path `path` (``""``: the top).

    Raises:
        ConfigError: ``<key path>=<value>: <what is accepted>``.
    """
    allowed = allowed_targets() if allowed is None else allowed
    parent, _, last = path.rpartition(".")
    if last in INSTANTIATE_KEYS:  # the value of a ``_target_`` key itself (``model._target_``)
        _check_key(parent, last, node, allowed)
    _walk(node, path, allowed)
