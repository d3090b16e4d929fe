"""Write a CIFAR-shaped synthetic data set in the CIFAR-10 file format, for runs where the real
files are absent: ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch}, pickled dicts with
b"data" (n, 3072) uint8 channel-major and b"labels" (list of ints in [0, 9]), as published.

Each class c has a fixed random 3×32×32 template T_c (uint8 levels); an image of class c is
clip(T_c + noise, 0, 255) with Gaussian noise of standard deviation `--noise` levels, so the
classes are learnable but overlap. Not CIFAR-10: a stand-in with its shape and format.

    python scripts/write_cifar_shaped.py ROOT [--per-batch 1000] [--noise 90] [--seed 0]
    python train.py experiment=paper_cifar10 dataset.root=ROOT
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np

BATCHES = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]


def write_cifar_shaped(root: Path, per_batch: int, noise: float, seed: int) -> Path:
    """Write the six batches (per_batch images each) under root; return their folder."""
    rng = np.random.default_rng(seed)
    templates = rng.uniform(0, 255, (10, 3072))
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name in BATCHES:
        labels = rng.integers(0, 10, per_batch)
        images = templates[labels] + rng.normal(0.0, noise, (per_batch, 3072))
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in labels],
            b"data": np.clip(np.rint(images), 0, 255).astype(np.uint8),
            b"filenames": [f"synthetic_{i}.png".encode() for i in range(per_batch)],
        }
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--per-batch", type=int, default=1000, help="images per batch file")
    parser.add_argument("--noise", type=float, default=90.0, help="noise std in uint8 levels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.per_batch < 1 or not args.noise >= 0:
        parser.error("--per-batch must be >= 1 and --noise >= 0")
    print(write_cifar_shaped(args.root, args.per_batch, args.noise, args.seed))


if __name__ == "__main__":
    main()
