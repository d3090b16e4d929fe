"""Commands that train.py prints for the user to run: quoted for Hydra's override grammar and
for the shell, so that they work for any path a run folder may have.

A value travels through three readers before it reaches the run's configuration: the shell
(``shlex.quote`` undoes itself under ``shlex.split`` and POSIX shells), Hydra's override grammar
(a single-quoted string: backslashes are literal except an odd run before a quote, which
escapes it, and a run at the end of the string, which is halved) and OmegaConf (``${`` starts an
interpolation; ``\\${`` is a literal ``${``, and the backslashes right before it are doubled).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import unicodedata
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "hydra_quoted",
    "original_command",
    "override_argument",
    "remember_original_command",
    "train_command",
    "unusable_run_folder_path",
]

_BACKSLASHES_BEFORE_INTERPOLATION = re.compile(r"(\\*)\$\{")
_BACKSLASHES_BEFORE_QUOTE = re.compile(r"(\\*)'")
_TRAILING_BACKSLASHES = re.compile(r"(\\+)\Z")
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_./+-]+")
_original_argv: list[str] | None = None


def hydra_quoted(text: str) -> str:
    """`text` as a value of Hydra's override grammar whose value in the composed configuration,
    after OmegaConf's interpolation, is exactly `text`: as it is when it is a plain path (ASCII
    letters, digits, ``_ . + -`` and at least one ``/``, which no number, boolean or null has),
    else single-quoted with Hydra's and OmegaConf's escapes."""
    if _PLAIN_PATH.fullmatch(text) and "/" in text:
        return text
    literal = _BACKSLASHES_BEFORE_INTERPOLATION.sub(lambda m: m.group(1) * 2 + "\\${", text)
    body = _BACKSLASHES_BEFORE_QUOTE.sub(lambda m: m.group(1) * 2 + "\\'", literal)
    body = _TRAILING_BACKSLASHES.sub(lambda m: m.group(1) * 2, body)
    return f"'{body}'"


def override_argument(key: str, value: str | os.PathLike) -> str:
    """The command-line argument ``key=value`` (`hydra_quoted`), not yet quoted for a shell."""
    return f"{key}={hydra_quoted(os.fspath(value))}"


def train_command(arguments: Sequence[str]) -> str:
    """The shell command that runs this Python with the entry point (``sys.argv[0]``) and
    `arguments`, each quoted for the shell."""
    script = str(Path(sys.argv[0]).resolve())
    return shlex.join([sys.executable, script, *arguments])


def remember_original_command(argv: Sequence[str]) -> None:
    """Keep the command line the user typed (before train.py rewrites it), for
    `original_command`."""
    global _original_argv
    _original_argv = [str(a) for a in argv]


def original_command() -> str | None:
    """The command the user typed (`remember_original_command`), quoted for the shell, or None
    when this process has not recorded it."""
    return None if _original_argv is None else train_command(_original_argv)


def unusable_run_folder_path(path: str | os.PathLike) -> str | None:
    """Why a run folder may not have the path `path`, or None. A run folder's path must be
    text that Hydra can hold and a command can give back: UTF-8, without control characters
    (newlines, tabs, ...) and without ``${`` (Hydra stores the folder in its configuration, where
    ``${`` would start an interpolation)."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return f"run folder {text!r}: its path is not UTF-8 text: rename it"
    if any(unicodedata.category(c) == "Cc" for c in text):
        return f"run folder {text!r}: its path holds a control character: rename it"
    if "${" in text:
        return f"run folder {text}: its path holds '${{', which Hydra reads as an interpolation"
    return None
