"""Reading the YAML and JSON files of a run or sweep folder, which are data from outside.

Every such file (``.hydra/config.yaml``, ``.hydra/overrides.yaml``, ``multirun.yaml``,
``status.json``, ``summary.json``, logged wandb tables) is read through `read_yaml` or
`read_json_file`, which refuse, with a `FileRefused` naming the file:

- a file larger than `MAX_BYTES` (the project writes a few kilobytes);
- text that is not UTF-8;
- YAML with an anchor (``&a``) or an alias (``*a``): Hydra never writes them, and aliases are
  how a small file expands into a huge one ("billion laughs");
- nesting deeper than `MAX_DEPTH` (mappings and lists inside each other);
- YAML tags beyond the plain types (PyYAML's safe loader: mappings, lists, strings, numbers,
  booleans, null, timestamps).

Nothing in a file is executed or resolved here: OmegaConf interpolations stay text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sgd_dynamics.utils.errors import SetupError

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "FileOverLimit",
    "FileRefused",
    "parse_json",
    "read_json_file",
    "read_yaml",
]

MAX_BYTES = 1 << 20  # 1 MiB
MAX_DEPTH = 64


class FileRefused(SetupError):
    """A file of a run or sweep folder that is not read: missing, too large, not UTF-8,
    malformed, or with YAML anchors, aliases or nesting beyond the limits. The message starts
    with the file's path."""


class FileOverLimit(FileRefused):
    """A file refused for its size, its YAML anchors or aliases, or its nesting depth: never one
    the project wrote, whatever the caller does with files it cannot read."""


def _read_text(path: Path, what: str) -> str:
    """The UTF-8 text of `path`, at most `MAX_BYTES` of it."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise FileRefused(f"{path}: no such file ({what})") from None
    except IsADirectoryError:
        raise FileRefused(f"{path}: not a file ({what})") from None
    except OSError as exc:
        raise FileRefused(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_BYTES:
        raise FileOverLimit(
            f"{path}: larger than {MAX_BYTES} bytes, which {what} never is; refused unread"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRefused(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _check_depth(value: object, path: object, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise FileOverLimit(f"{path}: nested deeper than {MAX_DEPTH} levels; refused")
    if isinstance(value, dict):
        for item in value.values():
            _check_depth(item, path, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_depth(item, path, depth + 1)


def _plain_loader(path: Path):
    """A PyYAML safe loader that refuses anchors, aliases and deep nesting while it composes
    the document, before anything is built from it."""
    import yaml

    class PlainLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                mark = event.start_mark
                raise FileOverLimit(
                    f"{path}: a YAML anchor or alias at line {mark.line + 1}, which the "
                    "project's files never hold; refused"
                )
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise FileOverLimit(f"{path}: nested deeper than {MAX_DEPTH} levels; refused")
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return PlainLoader


def read_yaml(path: str | os.PathLike, what: str = "a run folder's YAML file") -> Any:
    """The document of the YAML file `path` as plain dicts, lists and scalars (None for an
    empty file); `what` names the file's role in messages.

    Raises:
        FileRefused: missing, larger than `MAX_BYTES`, not UTF-8, malformed YAML, anchors or
            aliases, nesting deeper than `MAX_DEPTH`.
    """
    import yaml

    path = Path(path)
    text = _read_text(path, what)
    loader = _plain_loader(path)(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FileRefused(f"{path}: not valid YAML ({first})") from None
    except RecursionError:
        raise FileOverLimit(f"{path}: nested deeper than {MAX_DEPTH} levels; refused") from None
    finally:
        loader.dispose()


def read_json_file(path: str | os.PathLike, what: str = "a run folder's JSON file") -> Any:
    """The JSON document of `path` (NaN and Infinity accepted, as Python writes them).

    Raises:
        FileRefused: missing, larger than `MAX_BYTES`, not UTF-8, not valid JSON, nesting
            deeper than `MAX_DEPTH`.
    """
    path = Path(path)
    return parse_json(_read_text(path, what), path)


def parse_json(text: str, source: str | os.PathLike) -> Any:
    """The JSON document `text` read from `source` (a file, or a record in one), within the
    limits of `read_json_file`.

    Raises:
        FileRefused: longer than `MAX_BYTES`, not valid JSON, nesting deeper than `MAX_DEPTH`.
    """
    if len(text) > MAX_BYTES:
        raise FileOverLimit(f"{source}: a JSON document larger than {MAX_BYTES} bytes; refused")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileRefused(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise FileOverLimit(f"{source}: nested deeper than {MAX_DEPTH} levels; refused") from None
    _check_depth(value, source)
    return value
