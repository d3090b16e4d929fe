"""The check before a run resumes: the checkpoint is readable and fits the model.

A run folder is data, not code: resuming from it must never run what its files name.
Checkpoints are read with ``torch.load(weights_only=True)``, which unpickles tensors and plain
containers only. (The overrides replayed from a run folder are checked by
`sgd_dynamics.launch.overrides.check_replayed_overrides`, which parses them with Hydra.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from sgd_dynamics.utils.errors import ConfigError

__all__ = ["check_checkpoint"]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _missing_training_state(checkpoint: Mapping) -> list[str]:
    """The keys of the training state that Lightning restores on a resume and `checkpoint`
    lacks: without ``optimizer_states`` or ``lr_schedulers`` fit stops with a KeyError, and
    without ``loops`` (the fit loop's progress) it would silently start again at step 0."""
    loops = checkpoint.get("loops")
    missing = [] if isinstance(loops, Mapping) and "fit_loop" in loops else ["loops"]
    return missing + [
        key
        for key in ("optimizer_states", "lr_schedulers")
        if not isinstance(checkpoint.get(key), list)
    ]


def check_checkpoint(path: str | os.PathLike, module: nn.Module | None = None) -> None:
    """Refuse a checkpoint that cannot be resumed from, before anything is written.

    Reads `path` with ``torch.load(weights_only=True)`` on the CPU and checks that it is a
    Lightning checkpoint (a dict with a ``state_dict`` of tensors) that holds the training state
    (``loops``, ``optimizer_states``, ``lr_schedulers``) and, when `module` is given,
    that its ``state_dict`` has exactly the parameter names and shapes of ``module.state_dict()``.

    Raises:
        ConfigError: ``cannot read checkpoint <path>: <reason>``.
    """

    def refuse(reason: str) -> ConfigError:
        return ConfigError(f"cannot read checkpoint {path}: {reason}")

    file = Path(path)
    if not file.is_file():
        raise refuse("no such file" if not file.exists() else "not a file")
    if file.stat().st_size == 0:
        raise refuse("the file is empty")
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many kinds on a damaged file
        raise refuse(f"not a readable PyTorch checkpoint ({_first_line(exc)})") from None
    state = checkpoint.get("state_dict") if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise refuse("not a Lightning checkpoint (no state_dict of tensors)")
    if missing_state := _missing_training_state(checkpoint):
        raise refuse(
            "it holds the weights but not the training state a resume needs (no "
            f"{', '.join(missing_state)}): it was saved with weights only or not by a Trainer"
        )
    if module is None:
        return
    expected = {name: tuple(t.shape) for name, t in module.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in state.items()}
    if found == expected:
        return
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    differ = [n for n in sorted(set(found) & set(expected)) if found[n] != expected[n]]
    if differ:
        n = differ[0]
        detail = f"{n} has shape {found[n]} in the checkpoint and {expected[n]} in this run's model"
    elif missing:
        detail = f"it lacks {', '.join(missing)}"
    else:
        detail = f"it holds parameters this run's model does not have: {', '.join(extra)}"
    raise refuse(
        f"it was written by another model: {detail} (model.* and the data set must be those "
        "of the run that wrote it)"
    )
