"""The record Hydra keeps in a run folder, read without Hydra: ``RUN_DIR/.hydra/config.yaml``
(the resolved config) and ``RUN_DIR/.hydra/overrides.yaml`` (the command line's overrides)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sgd_dynamics.utils.safe_files import FileOverLimit, FileRefused, read_yaml


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
