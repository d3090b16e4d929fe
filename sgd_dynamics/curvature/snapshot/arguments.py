"""Checks of the per-call arguments of a snapshot (the samples, k against P, the batch size
against n, the previous snapshot of a warm start): one clear ValueError per kind of bad input.
The settings are checked by `options.SpectraOptions`."""

from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import Tensor

from ..operators.functional import FunctionalModel

__all__ = ["prepare_data", "check_k", "check_batch_size", "check_warm_start"]


def check_k(k: object, n_params: int) -> int:
    """The number of eigenpairs: an integer with 1 <= k <= P."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= n_params:
        raise ValueError(
            f"k must be an integer with 1 <= k <= P = {n_params} (the number of parameters), "
            f"got {k!r}"
        )
    return int(k)


def check_batch_size(batch_size: object, n_samples: int) -> int | None:
    """None, or a mini-batch size b with 1 <= b <= n."""
    if batch_size is None:
        return None
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, numbers.Integral)
        or not 1 <= batch_size <= n_samples
    ):
        raise ValueError(
            f"batch_size must be None or an integer with 1 <= b <= n = {n_samples} "
            f"(the number of samples), got {batch_size!r}"
        )
    return int(batch_size)


def _is_numeric_sequence(value: object) -> bool:
    """A (nested) list of plain numbers, which numpy turns into a numeric array."""
    if any(isinstance(item, (Tensor, dict, tuple)) for item in value):  # type: ignore[attr-defined]
        return False
    try:
        return np.asarray(value).dtype.kind in "biuf"
    except (ValueError, TypeError):
        return False


def prepare_data(fm: FunctionalModel, inputs: object, targets: object) -> tuple[Tensor, Tensor]:
    """Validate (inputs, targets) and return them on the model's device.

    inputs: (n, ...) tensor or array, finite; floating inputs are cast to the computation dtype.
        The engine slices and batches one tensor: a model that takes several inputs (a dict, a
        tuple) is measured through a wrapper module that takes one tensor and unpacks it.
    targets: (n,) integer class labels in [0, C), C >= 2 the number of logits the model returns.
    Returns (x, y) with y int64.
    """
    if isinstance(inputs, (dict, tuple)) or (
        isinstance(inputs, list) and not _is_numeric_sequence(inputs)
    ):
        raise ValueError(
            f"inputs must be one tensor (n, ...), got a {type(inputs).__name__}: the engine "
            "slices and batches a single tensor; wrap the model in an nn.Module whose forward "
            "takes one tensor (e.g. the inputs concatenated) and unpacks it"
        )
    if not isinstance(inputs, Tensor):
        array = np.asarray(inputs)
        if array.dtype == object:
            raise ValueError(
                f"inputs must be a numeric tensor or array (n, ...), got {type(inputs).__name__} "
                "holding non-numeric objects"
            )
        inputs = torch.as_tensor(array)
    if not isinstance(targets, Tensor):
        targets = torch.as_tensor(np.asarray(targets))
    if inputs.ndim < 1 or inputs.shape[0] == 0:
        raise ValueError(
            f"inputs must hold at least one sample (shape (n, ...)), got shape "
            f"{tuple(inputs.shape)}"
        )
    if targets.ndim != 1:
        raise ValueError(
            f"targets must be a 1-D tensor of class labels, got shape {tuple(targets.shape)}"
        )
    if targets.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"inputs and targets must have the same length, got {inputs.shape[0]} inputs and "
            f"{targets.shape[0]} targets"
        )
    if targets.dtype == torch.bool or targets.is_floating_point() or targets.is_complex():
        raise ValueError(f"targets must be integer class labels (int64), got dtype {targets.dtype}")
    if inputs.is_complex() or inputs.dtype == torch.bool:
        raise ValueError(f"inputs must be real numbers, got dtype {inputs.dtype}")
    if inputs.is_floating_point() and not bool(torch.isfinite(inputs).all()):
        bad = int((~torch.isfinite(inputs)).reshape(inputs.shape[0], -1).any(dim=1).sum())
        raise ValueError(f"inputs hold NaN or infinite values ({bad} sample(s)): remove them")
    x = inputs.to(device=fm.device, dtype=fm.dtype if inputs.is_floating_point() else None)
    y = targets.to(device=fm.device, dtype=torch.int64)
    if x.is_inference():  # made under torch.inference_mode: autograd cannot save it
        x = x.clone()
    if y.is_inference():
        y = y.clone()
    with torch.no_grad():
        probe = fm.logits(fm.theta, x[:1])
    if probe.ndim != 2 or probe.shape[0] != 1:
        raise ValueError(
            "model(inputs) must return logits of shape (n, C); for one sample it returned shape "
            f"{tuple(probe.shape)}"
        )
    n_classes = probe.shape[1]
    if n_classes < 2:
        raise ValueError(
            f"model(inputs) returns {n_classes} logit(s) per sample: the cross-entropy over one "
            "class is constant (0), so its curvature is zero; a classifier needs C >= 2 logits"
        )
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= n_classes:
        raise ValueError(
            f"targets must lie in [0, C) with C = {n_classes} classes (the model's logits), "
            f"found labels in [{low}, {high}]"
        )
    return x, y


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
