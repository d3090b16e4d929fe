"""The starting blocks a previous snapshot (`warm_start`) gives the iterative solvers."""

from __future__ import annotations

import torch
from torch import Tensor


def check_warm_start(warm_start: object, n_params: int) -> dict[str, Tensor]:
    """Starting blocks {hf, mt, hp, mt_gram} from a previous snapshot (Spectra or an object/dict
    with hf_vecs, mt_vecs and optionally hp_top_vecs, hp_bottom_vecs, mt_sample_vecs)."""
    if warm_start is None:
        return {}
    get = warm_start.get if isinstance(warm_start, dict) else lambda n: getattr(warm_start, n, None)
    blocks: dict[str, Tensor] = {}
    for key, names in (
        ("hf", ("hf_vecs",)),
        ("mt", ("mt_vecs",)),
        ("hp", ("hp_top_vecs", "hp_bottom_vecs")),
    ):
        parts = [get(name) for name in names]
        parts = [torch.as_tensor(p) for p in parts if p is not None]
        if not parts:
            continue
        for p in parts:
            if p.ndim != 2 or p.shape[0] != n_params:
                raise ValueError(
                    f"warm_start vectors must have shape (P, j) with P = {n_params}, got "
                    f"{tuple(p.shape)}: the previous snapshot was taken on another model"
                )
        blocks[key] = torch.cat(parts, dim=1)
    sample_vecs = get("mt_sample_vecs")
    if sample_vecs is not None:  # (n, j) on the Gram side: used when n matches
        blocks["mt_gram"] = torch.as_tensor(sample_vecs)
    if not isinstance(warm_start, dict) and not any(
        hasattr(warm_start, name) for name in ("hf_vecs", "mt_vecs")
    ):
        raise ValueError("warm_start must be a previous Spectra (or have hf_vecs / mt_vecs)")
    return blocks
