"""Dotted-key lookup in plain nested mappings (a resolved config read from JSON or YAML); an
OmegaConf DictConfig has its own, `OmegaConf.select`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["get_dotted"]


def get_dotted(config: Mapping[str, Any] | None, dotted: str) -> Any:
    """``config["a"]["b"]["c"]`` for ``"a.b.c"``, or None where a part is missing or a node on
    the way is not a mapping."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node
