"""Helpers for the pipeline tests: tiny data files in the real formats, the train.py entry
point, subprocess runs."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def load_entry_point():
    """The launch layer that train.py runs (`sgd_dynamics.launch`: build, resume_argv,
    user_error), with the OmegaConf resolvers the configs use registered."""
    import sgd_dynamics.launch as launch

    launch.register_resolvers()
    return launch


def config_options(skip: tuple[str, ...] = ("hydra",)) -> list[tuple[str, str]]:
    """(group, option) for every yaml file of every group of conf/ but those of `skip`."""
    conf = REPO_ROOT / "conf"
    return sorted(
        (d.name, f.stem)
        for d in conf.iterdir()
        if d.is_dir() and d.name not in skip
        for f in d.glob("*.yaml")
    )


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array, written out by hand from the format's definition:
    0, 0, type 0x08, ndim, big-endian uint32 sizes, raw bytes."""
    assert array.dtype == np.uint8
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    return header + array.tobytes(order="C")


def write_mnist_files(root: Path, n_train: int, n_test: int, seed: int = 0, gz: bool = True):
    """Four IDX files (images n x 28 x 28 uint8, labels uint8 0..9) in `root`; returns arrays."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (root / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (root / name).write_bytes(data)
    return arrays


def write_cifar_files(root: Path, n_per_batch: int, seed: int = 0):
    """cifar-10-batches-py/{data_batch_1..5,test_batch} as the published files are: pickled
    dicts with bytes keys, b"data" (n, 3072) uint8 channel-major, b"labels" a list of ints."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"img{i}.png".encode() for i in range(n_per_batch)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        batches[name] = (data, np.asarray(labels))
    return batches


def train_env() -> dict[str, str]:
    """The environment of a test's ``train.py`` subprocess: offline wandb, one thread."""
    env = dict(os.environ)
    env.update(
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONWARNINGS="ignore",
    )
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def run_train(args: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``python REPO/train.py ARGS`` in `cwd` (outputs/ lands there), offline, one thread."""
    env = train_env()
    return subprocess.run(
        [PYTHON, str(REPO_ROOT / "train.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def outputs_line(stdout: str) -> Path:
    """The run folder from train.py's closing line ``Outputs: <folder>``."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith("Outputs: ")]
    assert len(lines) == 1, stdout
    return Path(lines[0].removeprefix("Outputs: "))
