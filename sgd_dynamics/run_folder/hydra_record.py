"""The record Hydra keeps in a run folder, read without Hydra: ``RUN_DIR/.hydra/config.yaml``
(the resolved config) and ``RUN_DIR/.hydra/overrides.yaml`` (the command line's overrides)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``RUN_DIR/.hydra/config.yaml`` as a plain dict (interpolations resolved where they can
    be), or None when absent or unreadable. Reads YAML only; Hydra is not imported."""
    path = Path(run_dir) / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    from omegaconf import OmegaConf

    try:
        cfg = OmegaConf.load(path)
    except Exception:
        return None
    try:
        container = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an interpolation that needs Hydra's resolvers
        container = OmegaConf.to_container(cfg, resolve=False)
    return container if isinstance(container, dict) else None


def read_run_overrides(run_dir: str | os.PathLike) -> list[str] | None:
    """``RUN_DIR/.hydra/overrides.yaml`` (a list of ``key=value`` strings), or None if absent."""
    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except (yaml.YAMLError, UnicodeDecodeError):
        return None
    if data is None:
        return []
    return [str(item) for item in data] if isinstance(data, list) else None
