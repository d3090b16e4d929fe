"""Helpers for the reliability tests: train.py in a subprocess with an injected fault, the
resume command it printed, and comparisons of two run folders."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from pipeline.pipeline_helpers import train_env

REPO_ROOT = Path(__file__).resolve().parents[2]

# A small Gauss-10 run with dense spectra (MLP 20-8-10, P = 258): 120 steps of batch 5
# (20 steps per epoch), a snapshot every 20 steps, a checkpoint every 25 steps.
SMALL_RUN = [
    "logger=none",
    "model.width=8",
    "trainer.max_steps=120",
    "trainer.val_check_interval=50",
    "spectral.method=dense",
    "spectral.k=5",
    "spectral.log_points=null",
    "spectral.every_n_steps=20",
    "callbacks.checkpoint.every_n_steps=25",
    "callbacks.checkpoint.every_n_seconds=null",
    "callbacks.progress=null",
]
STEPS_PER_EPOCH = 20
RESUME_PREFIX = "if interrupted, resume with: "


def train(
    args: list[str], cwd: Path, fault: str | None = None, command: list[str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``python train.py ARGS`` (or `command`) in `cwd`, offline, one thread, with
    ``SGD_DYNAMICS_FAULT=fault`` when given."""
    env = train_env()
    env.pop("SGD_DYNAMICS_FAULT", None)
    if fault is not None:
        env["SGD_DYNAMICS_FAULT"] = fault
    argv = command or [sys.executable, str(REPO_ROOT / "train.py"), *args]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def resume_command(result: subprocess.CompletedProcess) -> list[str]:
    """The command train.py printed before training, as an argv."""
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith(RESUME_PREFIX)]
    assert len(lines) == 1, result.stdout + result.stderr
    return shlex.split(lines[0].removeprefix(RESUME_PREFIX))


def strict_json(path: Path) -> object:
    """json.loads that refuses NaN and Infinity, as strict parsers do."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{path}: non-standard JSON constant {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def checkpoint_state(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


def assert_same_results(run_dir: Path, reference: Path) -> None:
    """Snapshots (every array but the timing), summary.json (but wall time and resume origin)
    and final parameters of `run_dir` equal those of `reference`, bit for bit."""
    snapshots = sorted(p.name for p in (run_dir / "spectra").glob("step_*.npz"))
    assert snapshots == sorted(p.name for p in (reference / "spectra").glob("step_*.npz"))
    for name in snapshots:
        ours, theirs = (
            load_arrays(run_dir / "spectra" / name),
            load_arrays(reference / "spectra" / name),
        )
        assert ours.keys() == theirs.keys(), name
        for key in ours.keys() - {"seconds"}:
            np.testing.assert_array_equal(ours[key], theirs[key], err_msg=f"{name}: {key}")
    ours, theirs = strict_json(run_dir / "summary.json"), strict_json(reference / "summary.json")
    for summary in (ours, theirs):
        del summary["wall_time_s"], summary["resumed_from"]
    assert ours == theirs
    ours, theirs = (
        checkpoint_state(run_dir)["state_dict"],
        checkpoint_state(reference)["state_dict"],
    )
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
